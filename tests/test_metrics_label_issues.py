"""Confident learning (qa.metrics.label_issues) by hand and against cleanlab on the same
probabilities: real digits predictions with injected label noise, and Dirichlet draws."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from qa.metrics import label_issues as li

cleanlab_filter = pytest.importorskip("cleanlab.filter")
cleanlab_count = pytest.importorskip("cleanlab.count")

# Nine samples of three classes; sample 2 is a 1 labelled 0, sample 6 a 1 the model reads,
# unsure, as a 0. Thresholds: t0 = (.9 + .7 + .1) / 3, t1 = (.8 + .7 + .6 + .4) / 4 = .625,
# t2 = (.8 + .7) / 2 = .75. Confident: 0, 1 in class 0; 2, 3, 4 in class 1 (5: .6 < .625;
# 6: .55 < t0 and .4 < t1); 7 in class 2 (8: .7 < .75). Joint rows (given 0, 1, 2):
# [2 1 0], [0 2 0], [0 0 1]; calibrated to the label counts 3, 4, 2: [2 1 0], [0 4 0],
# [0 0 2]. One sample labelled 0 is pruned as a 1: the largest p1 - p0 among 0, 1, 2 is 2's.
# Sample 6 disagrees with its label but not confidently: it is not flagged.
HAND_PROBS = np.array(
    [
        [0.9, 0.05, 0.05],
        [0.7, 0.2, 0.1],
        [0.1, 0.8, 0.1],
        [0.1, 0.8, 0.1],
        [0.2, 0.7, 0.1],
        [0.3, 0.6, 0.1],
        [0.55, 0.4, 0.05],
        [0.1, 0.1, 0.8],
        [0.2, 0.1, 0.7],
    ]
)
HAND_LABELS = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2])


def test_a_hand_worked_case():
    t = li.confident_thresholds(HAND_LABELS, HAND_PROBS)
    assert t == pytest.approx([1.7 / 3, 0.625, 0.75])
    joint = li.confident_joint(HAND_LABELS, HAND_PROBS)
    assert joint.tolist() == [[2, 1, 0], [0, 4, 0], [0, 0, 2]]
    assert np.flatnonzero(li.find_label_issues(HAND_LABELS, HAND_PROBS)).tolist() == [2]
    assert li.ranked_issues(HAND_LABELS, HAND_PROBS).tolist() == [2]
    assert (cleanlab_count.compute_confident_joint(HAND_LABELS, HAND_PROBS) == joint).all()
    assert np.flatnonzero(_cleanlab(HAND_LABELS, HAND_PROBS)).tolist() == [2]


def test_a_class_keeps_its_only_sample_and_an_absent_class_gets_no_threshold():
    probs = np.array([[0.1, 0.9, 0.0], [0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.85, 0.15, 0.0]])
    labels = np.array([0, 1, 1, 1])  # the only 0 looks like a 1; no sample is labelled 2
    assert li.confident_thresholds(labels, probs)[2] == li.ABSENT
    assert not li.find_label_issues(labels, probs)[0]
    assert (li.find_label_issues(labels, probs) == _cleanlab(labels, probs)).all()


def _cleanlab(labels, probs) -> np.ndarray:
    with warnings.catch_warnings():  # "may not flag all label issues in class ..."
        warnings.simplefilter("ignore")
        return cleanlab_filter.find_label_issues(labels, probs, n_jobs=1)


def _same_as_cleanlab(labels, probs) -> np.ndarray:
    mine = li.find_label_issues(labels, probs)
    joint = cleanlab_count.compute_confident_joint(labels, probs)
    assert (li.confident_joint(labels, probs) == joint).all()
    assert (mine == _cleanlab(labels, probs)).all(), (mine.sum(), _cleanlab(labels, probs).sum())
    return mine


@pytest.mark.parametrize("noise", [0.05, 0.2, 0.35])
def test_digits_with_injected_noise_match_cleanlab_and_find_the_flips(noise):
    """Out-of-sample probabilities of a logistic regression on the real 8x8 digits whose
    labels were flipped at random; the flags are cleanlab's and mostly the flips."""
    digits = load_digits()
    rng = np.random.default_rng(int(noise * 100))
    flipped = rng.random(len(digits.target)) < noise
    labels = np.where(
        flipped, (digits.target + rng.integers(1, 10, flipped.size)) % 10, digits.target
    )
    model = LogisticRegression(C=0.05, max_iter=500)  # strongly regularised: converges fast
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    probs = cross_val_predict(model, digits.data / 16, labels, cv=folds, method="predict_proba")
    mine = _same_as_cleanlab(labels, probs)
    precision = (mine & flipped).sum() / mine.sum()
    recall = (mine & flipped).sum() / flipped.sum()
    assert precision > 0.7 and recall > 0.7, (precision, recall)


@pytest.mark.parametrize("seed", range(12))
def test_dirichlet_probabilities_match_cleanlab(seed):
    """Random class counts, sharpness and noise; every third case leaves a class unlabelled."""
    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(2, 15)), int(rng.integers(10, 1500))
    true = rng.integers(0, k, n)
    concentration = np.full((n, k), rng.uniform(0.05, 3))
    concentration[np.arange(n), true] += rng.uniform(0, 20)
    probs = np.vstack([rng.dirichlet(c) for c in concentration])
    labels = np.where(rng.random(n) < rng.uniform(0, 0.4), rng.integers(0, k, n), true)
    if seed % 3 == 0:
        labels[labels == k - 1] = 0
    _same_as_cleanlab(labels, probs)


def test_cross_validated_probabilities_are_sklearns_out_of_fold_predictions():
    digits = load_digits()
    features, labels = digits.data[:300, ::4], digits.target[:300]
    probs = li.cross_validated_probabilities(features, labels, 10, folds=4, seed=3)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    folds = StratifiedKFold(4, shuffle=True, random_state=3)
    expected = cross_val_predict(model, features, labels, cv=folds, method="predict_proba")
    np.testing.assert_allclose(probs, expected, atol=1e-12)
    assert np.allclose(probs.sum(axis=1), 1)


def test_ranked_issues_put_the_lowest_self_confidence_first():
    probs = np.array([[0.3, 0.7], [0.05, 0.95], [0.9, 0.1], [0.95, 0.05], [0.2, 0.8]] * 4)
    labels = np.array([0, 0, 0, 0, 1] * 4)
    ranked = li.ranked_issues(labels, probs)
    assert set(ranked) == set(np.flatnonzero(li.find_label_issues(labels, probs)))
    assert probs[ranked, labels[ranked]].tolist() == sorted(probs[ranked, labels[ranked]])
    assert probs[ranked[0], 0] == 0.05
