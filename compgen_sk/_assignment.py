"""The best slot permutation per sample: one helper for the losses and the readouts."""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.optimize import linear_sum_assignment

# Permutations enumerated at most (7 slots); more slots use the Hungarian
# algorithm sample by sample.
_MAX_PERMUTATIONS = 5040
# Cost-array elements per chunk when enumerating permutations.
_CHUNK_ELEMENTS = 2**22


def best_assignment(cost):
    """The injective assignment of lowest total cost, per sample.

    Parameters
    ----------
    cost : ndarray of shape (n, K', K)
        Cost of giving target ``j`` the source ``i`` (e.g. reading object
        ``j`` from inferred slot ``i``); ``K' >= K``.

    Returns
    -------
    assignment : ndarray of int of shape (n, K)
        The source of every target in every sample.
    """
    cost = np.asarray(cost)
    n, n_sources, n_targets = cost.shape
    if math.perm(n_sources, n_targets) > _MAX_PERMUTATIONS:
        return np.stack(
            [linear_sum_assignment(c.T)[1] for c in cost]  # rows: targets
        ).astype(int)
    perms = np.asarray(list(itertools.permutations(range(n_sources), n_targets)))
    columns = np.arange(n_targets)
    step = max(1, _CHUNK_ELEMENTS // (len(perms) * n_targets))
    best = np.empty(n, dtype=int)
    for start in range(0, n, step):
        block = cost[start : start + step]
        totals = block[:, perms, columns].sum(axis=2)  # (b, P)
        best[start : start + step] = totals.argmin(axis=1)
    return perms[best]
