"""Pure metric functions: numpy arrays in, numbers out; no thresholds, no I/O.

Thresholds live in the suite and judging lives in `qa.checks`; these functions only count.
Modules import scipy lazily, inside the functions that need it, so `qa validate` stays fast.
"""
