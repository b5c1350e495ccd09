"""A bootstrap distribution kept in the run's cache folder (qa.metrics.bootstrap.remembered):
a re-run at another confidence draws nothing again and gives the bounds a fresh bootstrap
gives; other data, another seed or a damaged entry means drawing again."""

import json

import numpy as np
import pytest

from qa.metrics import bootstrap
from qa.metrics.accuracy import bootstrap_macro_f1
from qa.metrics.calibration import bootstrap_metric_bounds


@pytest.fixture
def draws(monkeypatch) -> list:
    """Every bootstrap distribution drawn, by the number of resamples."""
    seen = []
    real = bootstrap._distribution

    def counted(statistic, data, n_resamples, *rest):
        seen.append(n_resamples)
        return real(statistic, data, n_resamples, *rest)

    monkeypatch.setattr(bootstrap, "_distribution", counted)
    return seen


def _logits(seed=0, n=500):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 4, n)


def _nll(logits, labels, confidence, seed=0):
    return bootstrap_metric_bounds(
        "nll", logits, labels, 15, "width", confidence, n_resamples=200, seed=seed
    )


def test_a_kept_distribution_serves_every_confidence_and_other_data_draws_again(tmp_path, draws):
    logits, labels = _logits()
    fresh = {c: _nll(logits, labels, c) for c in (0.9, 0.95)}
    assert len(draws) == 2
    draws.clear()
    with bootstrap.distributions_kept_in(tmp_path):
        assert _nll(logits, labels, 0.9) == fresh[0.9]
        assert _nll(logits.copy(), labels.copy(), 0.95) == fresh[0.95]
        assert len(draws) == 1  # the second confidence read the kept distribution
        nudged = logits.copy()
        nudged[7, 2] = np.nextafter(nudged[7, 2], np.float32(np.inf))
        _nll(nudged, labels, 0.95)
        _nll(logits, labels, 0.95, seed=1)
        assert len(draws) == 3


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: {**e, "columns": {"values": [v * 1.01 for v in e["columns"]["values"]]}},
        lambda e: {"checksum": "0" * 64, "columns": e["columns"]},
        lambda e: {**e, "columns": {"values": e["columns"]["values"][:-1]}},
    ],
)
def test_a_damaged_distribution_is_drawn_again(tmp_path, draws, damage):
    logits, labels = _logits()
    fresh = _nll(logits, labels, 0.95)
    with bootstrap.distributions_kept_in(tmp_path):
        _nll(logits, labels, 0.95)
        (entry,) = tmp_path.rglob("*.json")
        entry.write_text(json.dumps(damage(json.loads(entry.read_text()))))
        assert _nll(logits, labels, 0.95) == fresh
    assert len(draws) == 3


def test_macro_f1s_distribution_is_kept_by_its_label_prediction_counts(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 800)
    pred = np.where(rng.random(800) < 0.7, labels, rng.integers(0, 5, 800))
    fresh = bootstrap_macro_f1(labels, pred, 5, 0.9, 300, 0)
    with bootstrap.distributions_kept_in(tmp_path):
        assert bootstrap_macro_f1(labels, pred, 5, 0.95, 300, 0) != fresh
        monkeypatch.setattr(np.random, "default_rng", None)  # nothing may be drawn now
        assert bootstrap_macro_f1(labels[::-1], pred[::-1], 5, 0.9, 300, 0) == fresh
