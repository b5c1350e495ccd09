"""Accuracy metrics and binomial intervals against hand-worked values and scikit-learn."""

import math

import numpy as np
import pytest
from sklearn import metrics as sk

from qa.metrics import accuracy as acc
from qa.metrics.intervals import binomial_interval, bonferroni_level


def _wilson_by_hand(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval from its textbook formula, independent of scipy's binomtest."""
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    return centre - half, centre + half


@pytest.mark.parametrize(
    ("k", "n", "method", "expected"),
    [
        (8, 10, "wilson", (0.4902, 0.9433)),
        (95, 100, "wilson", (0.8882, 0.9785)),
        (8, 10, "clopper_pearson", (0.4439, 0.9748)),
        (95, 100, "clopper_pearson", (0.8872, 0.9836)),
        # Clopper-Pearson at the edges has a closed form: 1 - (alpha/2)^(1/n) and (alpha/2)^(1/n)
        (0, 10, "clopper_pearson", (0.0, 1 - 0.025**0.1)),
        (10, 10, "clopper_pearson", (0.025**0.1, 1.0)),
    ],
)
def test_intervals_match_hand_worked_values(k, n, method, expected):
    low, high = binomial_interval(k, n, 0.95, method)
    assert low == pytest.approx(expected[0], abs=1e-4)
    assert high == pytest.approx(expected[1], abs=1e-4)


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_matches_the_textbook_formula(confidence):
    from scipy.stats import norm

    z = norm.ppf(0.5 + confidence / 2)
    for k, n in [(0, 7), (1, 7), (3, 7), (7, 7), (50, 120), (119, 120)]:
        assert binomial_interval(k, n, confidence) == pytest.approx(
            _wilson_by_hand(k, n, z), abs=1e-9
        )


@pytest.mark.parametrize(
    ("method", "scipy_method"), [("wilson", "wilson"), ("clopper_pearson", "exact")]
)
def test_intervals_equal_scipy_binomtest(method, scipy_method):
    """qa evaluates the intervals with scipy.special only (scipy.stats costs a cold run more than
    its gates): the numbers must stay scipy.stats.binomtest's."""
    from scipy.stats import binomtest

    for confidence in (0.8, 0.9, 0.95, 0.99, 0.999):
        for k, n in [(1, 7), (3, 7), (6, 7), (50, 120), (9_871, 10_000), (3, 100_000)]:
            ci = binomtest(k, n).proportion_ci(confidence, method=scipy_method)
            got = binomial_interval(k, n, confidence, method)
            assert got == pytest.approx((ci.low, ci.high), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("method", ["wilson", "clopper_pearson"])
def test_interval_edges_are_exact_and_ordered(method):
    assert binomial_interval(0, 20, 0.95, method)[0] == 0.0
    assert binomial_interval(20, 20, 0.95, method)[1] == 1.0
    for k in range(21):
        low, high = binomial_interval(k, 20, 0.95, method)
        assert 0.0 <= low <= k / 20 <= high <= 1.0
    narrow, wide = binomial_interval(5, 20, 0.8, method), binomial_interval(5, 20, 0.99, method)
    assert wide[0] < narrow[0] and narrow[1] < wide[1]
    assert all(math.isnan(x) for x in binomial_interval(0, 0, 0.95, method))


def test_clopper_pearson_is_wider_than_wilson_here():
    wilson, exact = binomial_interval(30, 40), binomial_interval(30, 40, method="clopper_pearson")
    assert exact[0] < wilson[0] and wilson[1] < exact[1]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((3, 2, 0.95, "wilson"), "0 <= k <= n"),
        ((1, 2, 1.0, "wilson"), "confidence"),
        ((1, 2, 0.95, "wald"), "method"),
    ],
)
def test_interval_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        binomial_interval(*args)


def _random(seed: int, n: int = 500, classes: int = 7):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), labels] += rng.uniform(0, 2)
    return logits, labels


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_scikit_learn(seed):
    logits, labels = _random(seed)
    classes = logits.shape[1]
    pred = acc.predictions(logits)
    everything = list(range(classes))
    assert acc.top_k_accuracy(logits, labels, 1) == pytest.approx(sk.accuracy_score(labels, pred))
    for k in (2, 3, 6):
        assert acc.top_k_accuracy(logits, labels, k) == pytest.approx(
            sk.top_k_accuracy_score(labels, logits, k=k, labels=everything)
        )
    np.testing.assert_array_equal(
        acc.confusion_matrix(labels, pred, classes),
        sk.confusion_matrix(labels, pred, labels=everything),
    )
    recall, correct, support = acc.per_class_recall(labels, pred, classes)
    np.testing.assert_allclose(recall, sk.recall_score(labels, pred, average=None))
    np.testing.assert_array_equal(support, np.bincount(labels, minlength=classes))
    np.testing.assert_array_equal(correct, np.round(recall * support))
    assert acc.macro_f1(labels, pred, classes) == pytest.approx(
        sk.f1_score(labels, pred, average="macro")
    )
    cm = sk.confusion_matrix(labels, pred, labels=everything)
    rate, k, n = acc.confusion_rate(labels, pred, 2, 5)
    assert (k, n) == (cm[2, 5], cm[2].sum())
    assert rate == pytest.approx(cm[2, 5] / cm[2].sum())


def test_macro_f1_leaves_out_classes_absent_from_labels_and_predictions_like_sklearn():
    labels = np.array([0, 0, 1, 1, 3, 3])  # class 2 and 4 absent; 3 never predicted
    pred = np.array([0, 1, 1, 1, 0, 0])
    assert acc.macro_f1(labels, pred, 5) == pytest.approx(
        sk.f1_score(labels, pred, average="macro", zero_division=0)
    )
    recall, _, support = acc.per_class_recall(labels, pred, 5)
    assert support[2] == 0 and math.isnan(recall[2])
    assert math.isnan(acc.macro_f1(labels[:0], pred[:0], 5))


def test_ties_go_to_the_lower_class_index_like_argmax():
    logits = np.zeros((3, 4))
    labels = np.array([0, 1, 3])
    np.testing.assert_array_equal(acc.topk_correct(logits, labels, 1), [True, False, False])
    np.testing.assert_array_equal(acc.topk_correct(logits, labels, 2), [True, True, False])
    assert acc.top_k_accuracy(logits, labels, 1) == pytest.approx(
        np.mean(acc.predictions(logits) == labels)
    )


def test_topk_is_monotone_and_complete():
    logits, labels = _random(11, classes=6)
    values = [acc.top_k_accuracy(logits, labels, k) for k in range(1, 7)]
    assert values == sorted(values) and values[-1] == 1.0
    with pytest.raises(ValueError, match="positive int"):
        acc.topk_correct(logits, labels, 0)


def test_confusion_rate_of_an_absent_class_is_nan():
    rate, k, n = acc.confusion_rate(np.array([0, 1]), np.array([1, 1]), 2, 1)
    assert (k, n) == (0, 0) and math.isnan(rate)


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_binomial_bounds_are_one_sided_at_the_confidence(confidence):
    from scipy.stats import beta

    from qa.metrics.intervals import binomial_bounds

    # Clopper-Pearson's one-sided bounds are Beta quantiles at 1 - c and c
    low, high = binomial_bounds(37, 50, confidence, "clopper_pearson")
    assert low == pytest.approx(beta.ppf(1 - confidence, 37, 14), rel=1e-9)
    assert high == pytest.approx(beta.ppf(confidence, 38, 13), rel=1e-9)


def test_binomial_bounds_refuse_a_confidence_that_bounds_nothing():
    from qa.metrics.intervals import binomial_bounds

    for confidence in (0.5, 0.3, 1.0):
        with pytest.raises(ValueError, match=r"Expected `confidence` in \(0.5, 1\)"):
            binomial_bounds(5, 10, confidence)


def test_macro_f1_rows_is_sklearns_macro_f1_of_each_row():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 6, (7, 50))
    pred = np.where(rng.random((7, 50)) < 0.6, labels, rng.integers(0, 6, (7, 50)))
    pred[0] = 0  # a row predicting one class; class absent from labels and predictions left out
    expected = [sk.f1_score(y, yhat, average="macro") for y, yhat in zip(labels, pred, strict=True)]
    np.testing.assert_allclose(acc.macro_f1_rows(labels, pred, 6), expected)
    assert acc.macro_f1_rows(labels[0], pred[0], 6) == pytest.approx(expected[:1])


def test_bootstrap_of_macro_f1_resamples_the_statistic_itself():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 300)
    pred = np.where(rng.random(300) < 0.7, labels, rng.integers(0, 4, 300))
    low, high = acc.bootstrap_macro_f1(labels, pred, 4, 0.95, 2000, 0)
    # the percentile interval of a seeded loop over resamples with scikit-learn's macro-F1
    draws = np.random.default_rng(1).integers(0, 300, (2000, 300))
    reference = [sk.f1_score(labels[i], pred[i], average="macro") for i in draws]
    # one-sided 95% bounds: the 5% and 95% quantiles of the resampled macro-F1
    assert low == pytest.approx(np.quantile(reference, 0.05), abs=0.01)
    assert high == pytest.approx(np.quantile(reference, 0.95), abs=0.01)
    assert acc.bootstrap_macro_f1(labels, labels, 4, 0.95, 200, 0) == (1.0, 1.0)
    assert np.isnan(acc.bootstrap_macro_f1(labels[:1], pred[:1], 4, 0.95, 200, 0)).all()


def test_a_resample_drawn_as_pair_counts_scores_as_the_samples_it_counts():
    """bootstrap_macro_f1 draws each resample as counts of (label, prediction) pairs: the
    macro-F1 of those counts is scikit-learn's of the samples they stand for."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 5, 400)
    pred = np.where(rng.random(400) < 0.6, labels, rng.integers(0, 5, 400))
    pairs, counts = np.unique(labels * 5 + pred, return_counts=True)
    draws = rng.multinomial(400, counts / 400, size=20)
    values = acc._macro_f1_of_counts(pairs // 5, pairs % 5, draws, 5)
    for draw, value in zip(draws, values, strict=True):
        y, yhat = np.repeat(pairs // 5, draw), np.repeat(pairs % 5, draw)
        assert value == pytest.approx(sk.f1_score(y, yhat, average="macro"), abs=1e-12)


@pytest.mark.parametrize(("confidence", "tests", "expected"), [(0.95, 1, 0.95), (0.95, 5, 0.99)])
def test_bonferroni_level_splits_the_error_rate_evenly(confidence, tests, expected):
    # hand-worked: (1 - 0.95) / 5 = 0.01 per test, so each holds at 0.99
    assert bonferroni_level(confidence, tests) == pytest.approx(expected)
    with pytest.raises(ValueError, match="tests"):
        bonferroni_level(confidence, 0)
