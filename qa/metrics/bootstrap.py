"""The one bootstrap every interval in qa goes through: percentile, seeded, vectorised.

It is scipy.stats.bootstrap's percentile method, step for step (the same index draws from
the same generator, the same quantiles; tests/test_metrics_bootstrap.py holds the two equal),
written out here because every gated run computes one and importing scipy.stats costs a cold
run more than all its bootstraps together.

Percentile rather than BCa: BCa's jackknife costs n evaluations of the statistic, too slow
for large evals, and the binned calibration errors' bias makes its acceleration unreliable.

A bootstrap distribution is a function of the statistic, the data, the number of resamples
and the seed, not of the confidence a gate asks of it. A caller that names what it resamples
(`memo`: the statistic and a digest of its data, `arrays_digest`) has the distribution kept
in the run's cache folder while `distributions_kept_in` is in effect (`qa run` sets it), as
checked JSON in the cache's table format: a re-run after a threshold or confidence edit draws
nothing again. An entry that fails its checksum, or is not n_resamples numbers, is a miss.
"""

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path

import numpy as np

from qa import cache
from qa.metrics.intervals import two_sided_level

_STORE: ContextVar[Path | None] = ContextVar("qa_bootstrap_store", default=None)

DRAWS_PER_BATCH = 1 << 20  # resampled indices drawn at once when the caller sets no batch


def bootstrap_bounds(
    statistic,
    data: tuple[np.ndarray, ...],
    confidence: float,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    vectorized: bool = False,
    paired: bool = False,
    batch: int | None = None,
    memo: dict | None = None,
) -> tuple[float, float]:
    """(lower, upper): one-sided `confidence` bounds of `statistic` over `data`, percentile.

    Both are the ends of the two-sided percentile interval at level 2c - 1, so each is the
    bound a gate at confidence c compares. `paired` resamples the arrays of `data` together.
    A `vectorized` statistic takes (resamples, n) arrays and an `axis` keyword; `batch` bounds
    how many resamples are drawn at once (memory and speed; never the result). `memo` names
    the statistic and its data (JSON values) so that the distribution can be kept (`remembered`).
    """

    def draw() -> np.ndarray:
        return _distribution(statistic, data, n_resamples, seed, vectorized, paired, batch)

    if memo is None:
        return percentile_bounds(draw(), confidence)
    parts = {**memo, "n_resamples": n_resamples, "seed": seed, "paired": paired}
    return percentile_bounds(remembered(parts, n_resamples, draw), confidence)


def _distribution(statistic, data, n_resamples, seed, vectorized, paired, batch) -> np.ndarray:
    """The statistic over `n_resamples` seeded resamples of `data` (scipy's draws)."""
    samples = [np.asarray(sample) for sample in data]
    if any(sample.shape[-1] < 2 for sample in samples):
        raise ValueError("each sample in `data` must contain two or more observations")
    if not vectorized:
        statistic = _per_row(statistic)
    if paired:
        statistic = _at_indices(statistic, samples)
        samples = [np.arange(samples[0].shape[-1])]
    rng = np.random.default_rng(seed)
    # The generator's stream does not depend on how the draws are split, so batches change
    # only speed: about a million indices at a time stay in the CPU's caches.
    step = batch or max(1, min(n_resamples, DRAWS_PER_BATCH // samples[0].shape[-1]))
    values = []
    for start in range(0, n_resamples, step):
        size = min(step, n_resamples - start)
        resampled = [s[..., rng.integers(0, s.shape[-1], (size, s.shape[-1]))] for s in samples]
        values.append(np.asarray(statistic(*resampled, axis=-1), dtype=np.float64))
    return np.concatenate(values)


@contextlib.contextmanager
def distributions_kept_in(cache_dir: str | Path | None) -> Iterator[None]:
    """Within the block, named bootstrap distributions are read from and written to
    `cache_dir` (None: none are kept)."""
    token = _STORE.set(None if cache_dir is None else Path(cache_dir))
    try:
        yield
    finally:
        _STORE.reset(token)


def remembered(parts: dict, size: int, draw: Callable[[], np.ndarray]) -> np.ndarray:
    """The bootstrap distribution `parts` names (JSON values: the statistic, a digest of its
    data, the resamples and seed): `draw()`'s, or the one the run's cache folder kept. Kept
    only when finite (the table format holds no NaN)."""
    store = _STORE.get()
    if store is None:
        return draw()
    key = cache.entry_key({"bootstrap": parts})
    kept = cache.read_table(store, key)
    values = None if kept is None else kept.get("values")
    if isinstance(values, list) and len(values) == size and all(type(v) is float for v in values):
        return np.array(values, dtype=np.float64)
    drawn = draw()
    if len(drawn) == size and np.isfinite(drawn).all():
        with contextlib.suppress(OSError, ValueError):  # the cache only saves time
            cache.write_table(store, key, {"values": drawn.tolist()})
    return drawn


def arrays_digest(*arrays: np.ndarray) -> str:
    """sha256 of arrays' dtypes, shapes and bytes: what a kept distribution was drawn from."""
    h = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        h.update(f"{array.dtype.str}{array.shape}\0".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def percentile_bounds(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """(lower, upper) one-sided `confidence` bounds from a bootstrap distribution: its
    (1 - c) and c quantiles, the ends of the two-sided percentile interval at 2c - 1."""
    alpha = (1 - two_sided_level(confidence)) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def index_bootstrap_bounds(
    statistic,
    n: int,
    confidence: float,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    vectorized: bool = False,
    batch: int | None = None,
    memo: dict | None = None,
) -> tuple[float, float]:
    """`bootstrap_bounds` of `statistic(indices)` over resampled sample indices 0..n-1.

    For statistics of several arrays judged on the same samples (paired models, every view
    of a sample): resampling indices keeps each sample's values together. A `vectorized`
    statistic takes a (resamples, n) index array and an `axis` keyword.
    """
    return bootstrap_bounds(
        statistic,
        (np.arange(n),),
        confidence,
        n_resamples=n_resamples,
        seed=seed,
        vectorized=vectorized,
        batch=batch,
        memo=memo,
    )


def _per_row(statistic):
    """A statistic of 1-D samples applied to each resample (row) in turn."""

    def rows(*samples, axis=-1):
        return np.array([statistic(*row) for row in zip(*samples, strict=True)])

    return rows


def _at_indices(statistic, samples: list[np.ndarray]):
    """A statistic of `samples` as a statistic of the resampled indices into all of them."""

    def at(indices, axis=-1):
        return statistic(*[sample[..., indices] for sample in samples], axis=axis)

    return at
