"""Label issues by confident learning (Northcutt, Jiang and Chuang, JAIR 2021): which given
labels disagree confidently with out-of-sample predicted probabilities.

The core is written here in numpy so that the check needs no optional install; it follows
cleanlab's `filter.find_label_issues` with its defaults (`filter_by="prune_by_noise_rate"`,
`frac_noise=1`, `min_examples_per_class=1`) step by step, and tests/test_metrics_label_issues.py
checks the flagged sets are cleanlab's on the same probabilities:

1. per-class thresholds: t_j = the mean probability of class j over the samples labelled j
   (their self-confidence), 2 for a class no sample carries (so none is counted in it);
2. the confident joint C[i][j]: samples labelled i whose probability of j reaches t_j (the
   argmax among several such j), every diagonal entry at least 1, then calibrated: each row
   scaled to its label count, the whole to N, rounded keeping the row totals;
3. prune by noise rate: for given label i and every other class j, the C[i][j] samples
   labelled i with the largest margin p_j - p_i are issues (after keeping at least one sample
   per class on the diagonal);
4. a sample whose given label is (within 1e-6) its most probable class is never an issue.

`cross_validated_probabilities` gives out-of-sample probabilities on data a model was trained
on (K-fold cross-validation of a multinomial logistic regression on its logits).
"""

import numpy as np

EPS = 1e-6  # cleanlab's FLOATING_POINT_COMPARISON: fuzzy equality of probabilities
MIN_THRESHOLD = 2 * EPS  # thresholds are clipped from below, above the fuzzy comparison
ABSENT = 2.0  # the threshold of a class no sample is labelled with: no probability reaches it


def confident_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per class j, the mean probability of j over the samples labelled j (K,)."""
    labels = np.asarray(labels)
    t = [
        probs[labels == j, j].mean() if (labels == j).any() else ABSENT
        for j in range(probs.shape[1])
    ]
    return np.clip(np.asarray(t, dtype=np.float64), MIN_THRESHOLD, None)


def round_preserving_row_totals(matrix: np.ndarray) -> np.ndarray:
    """Round every row to integers whose sum is the row's rounded sum: the entries furthest
    below (or above) their rounding move first (cleanlab's round_preserving_sum)."""
    rows = []
    for floats in np.asarray(matrix, dtype=np.float64):
        ints = floats.round()
        target, total = np.sum(floats).round(), np.sum(ints).round()
        while abs(total - target) > EPS:
            diff = np.round(target - total)
            step = -1 if diff < 0 else 1
            changes = min(int(abs(diff)), len(floats))
            for i in np.argsort(floats - ints)[::-step][:changes]:
                ints[i] += step
            total = np.sum(ints).round()
        rows.append(ints)
    return np.asarray(rows).astype(int)


def confident_joint(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The calibrated confident joint (K, K): row = given label, column = confident true class;
    each row sums to its label count and the whole to N."""
    labels = np.asarray(labels)
    k = probs.shape[1]
    confident = probs >= confident_thresholds(labels, probs) - EPS
    several = confident.sum(axis=1) > 1
    guess = np.where(several, probs.argmax(axis=1), confident.argmax(axis=1))
    some = confident.any(axis=1)
    # built as the transpose of (true, given) counts, as cleanlab builds it from a confusion
    # matrix: the memory order decides numpy's summation order, hence the last bit of the
    # calibrated counts, hence which of two tied counts rounds up
    by_guess = np.zeros((k, k), dtype=np.int64)
    np.add.at(by_guess, (guess[some], labels[some]), 1)
    joint = by_guess.T
    np.fill_diagonal(joint, joint.diagonal().clip(min=1))
    counts = np.bincount(labels, minlength=k)
    scaled = (joint.T / np.clip(joint.sum(axis=1), 1e-100, None) * counts).T
    scaled = scaled / np.clip(scaled.sum(), 1e-100, None) * counts.sum()
    return round_preserving_row_totals(scaled)


def _prune_counts(joint: np.ndarray) -> np.ndarray:
    """How many of each given class (column) to prune as each true class (row): the transposed
    joint with every diagonal entry at least 1, the difference taken evenly from that column's
    non-zero noise counts and the fractions dropped (cleanlab's _keep_at_least_n_per_class with
    n=1, whose last step truncates)."""
    counts = joint.T.astype(np.float64)
    diagonal = counts.diagonal()
    kept = np.maximum(diagonal, 1)
    noise_entries = np.maximum(np.count_nonzero(counts, axis=0) - 1.0, 1.0)
    pruned = counts - (kept - diagonal) / noise_entries
    pruned[pruned < 0] = 0
    np.fill_diagonal(pruned, kept)
    return pruned.astype(int)


def find_label_issues(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """A boolean mask (N,): the samples whose given label confident learning flags, given
    out-of-sample probabilities `probs` (N, K) (rows summing to 1) and int labels (N,);
    computed in float64."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    prune = _prune_counts(confident_joint(labels, probs))
    issues = np.zeros(len(labels), dtype=bool)
    for given in range(probs.shape[1]):
        members = np.flatnonzero(labels == given)
        if len(members) <= 1:  # a class keeps its only sample
            continue
        mask = np.zeros(len(members), dtype=bool)
        for true in range(probs.shape[1]):
            n = prune[true, given]
            if true != given and n > 0:
                margin = probs[members, true] - probs[members, given]
                mask[np.argsort(-margin)[:n]] = True  # cleanlab's order, ties included
        issues[members] = mask
    bumped = probs.copy()
    bumped[np.arange(len(labels)), labels] += EPS
    issues[bumped.argmax(axis=1) == labels] = False
    return issues


def ranked_issues(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The indices of the flagged samples, worst first: by self-confidence (the probability of
    the given label), lowest first, ties in sample order."""
    labels = np.asarray(labels, dtype=np.int64)
    flagged = np.flatnonzero(find_label_issues(labels, probs))
    self_confidence = np.asarray(probs)[flagged, labels[flagged]]
    return flagged[np.argsort(self_confidence, kind="stable")]


def cross_validated_probabilities(
    features: np.ndarray, labels: np.ndarray, n_classes: int, folds: int, seed: int
) -> np.ndarray:
    """Out-of-sample class probabilities (N, K) for every sample: a multinomial logistic
    regression on standardised `features` (a model's logits), fitted on the other folds of a
    stratified, seeded `folds`-fold split and applied to the held-out one. Columns are the
    classes 0..n_classes-1; a class absent from a fold's training part gets 0 there.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.zeros((len(labels), n_classes))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit, held in split.split(features, labels):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        model.fit(features[fit], labels[fit])
        probs[np.ix_(held, model.classes_)] = model.predict_proba(features[held])
    return probs
