"""Evidence: slices restrict the eval split's views only, whether in memory or in files."""

import numpy as np

from qa.evidence import CLEAN, Evidence, Stored, View

TRAIN = View(split="train")


def test_a_slice_masks_eval_views_and_keeps_other_splits_whole(tmp_path):
    rng = np.random.default_rng(0)
    eval_logits, train_logits = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))  # same length
    np.save(tmp_path / "eval.npy", eval_logits.astype(np.float32))
    np.save(tmp_path / "train.npy", train_logits.astype(np.float32))
    keep = np.array([1, 0, 1, 1, 0, 0], dtype=bool)
    for arrays in (
        {CLEAN: eval_logits, TRAIN: train_logits},
        {CLEAN: Stored(tmp_path / "eval.npy"), TRAIN: Stored(tmp_path / "train.npy")},
    ):
        ev = Evidence(["a", "b", "c"], np.arange(6) % 3, [f"{i}" for i in range(6)], arrays)
        part = ev.subset(keep)
        np.testing.assert_allclose(part.logits(CLEAN), eval_logits[keep], rtol=1e-6)
        np.testing.assert_allclose(part.logits(TRAIN), train_logits, rtol=1e-6)
        twice = part.subset(np.array([0, 1, 1], dtype=bool))  # a slice of a slice
        np.testing.assert_allclose(twice.logits(CLEAN), eval_logits[[2, 3]], rtol=1e-6)
