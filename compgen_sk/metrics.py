"""Metrics of slot representations and of reconstructions (METHOD.md §5)."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_array

__all__ = ["reconstruction_r2"]


def _r2(X, X_hat):
    """Variance-weighted R² over all output elements (1 - SSE / SST)."""
    X = X.reshape(len(X), -1)
    X_hat = X_hat.reshape(len(X_hat), -1)
    sse = np.square(X - X_hat).sum(dtype=np.float64)
    sst = np.square(X - X.mean(axis=0, dtype=np.float64)).sum(dtype=np.float64)
    if sst == 0:
        return 1.0 if sse == 0 else 0.0
    return float(1.0 - sse / sst)


def reconstruction_r2(estimator, X):
    """R² of reconstructing ``X`` through a fitted slot estimator.

    ``X`` is mapped to slots with ``transform`` (search included, where the
    estimator searches) and back with ``inverse_transform``; the score is
    ``1 - SSE / SST`` over all pixels or features (variance weighted), so 1 is
    perfect and 0 is no better than the per-feature mean.

    Parameters
    ----------
    estimator : fitted estimator with ``transform`` and ``inverse_transform``
    X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)

    Returns
    -------
    score : float
    """
    X_hat = estimator.inverse_transform(estimator.transform(X))
    X = check_array(X, allow_nd=True, dtype=[np.float32, np.float64])
    return _r2(X, X_hat)
