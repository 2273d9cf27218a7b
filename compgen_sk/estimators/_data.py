"""X as the user gives it, converted one batch at a time.

The estimators never copy X whole: training, scaling and inference read rows
from X as it is — an array, a disk-backed ``np.memmap``, an h5py or zarr
array — and convert only
those rows to float32. Images stored as ``uint8`` are taken as 0–255 pixel
values and scaled to [0, 1] on the fly, as torchvision's ``ToTensor`` does;
``uint8`` vectors are taken as the numbers they are.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import Dataset

# uint8 pixel values map to [0, 1].
_PIXEL_SCALE = np.float32(1.0 / 255.0)


def is_lazy_array(X):
    """Whether X is an array read on demand (an h5py dataset, a zarr array…):
    not a NumPy array, but with a NumPy ``dtype``, a ``shape``, ``len`` and
    indexing. Such X is never converted whole."""
    if isinstance(X, np.ndarray) or sp.issparse(X) or hasattr(X, "iloc"):
        return False
    if hasattr(X, "__dask_graph__"):  # a dask array computes once, as before
        return False
    if not all(hasattr(X, a) for a in ("shape", "dtype", "__getitem__", "__len__")):
        return False
    try:
        np.dtype(X.dtype)
    except TypeError:  # e.g. a torch tensor: converted as a whole, as before
        return False
    return True


def read_rows(X, rows):
    """The rows ``rows`` (increasing) of X as a NumPy array: one indexed read
    where X supports it (arrays, h5py), else one read per row."""
    if isinstance(X, np.ndarray):
        return X[rows]
    try:
        out = np.asarray(X[rows])
    except (TypeError, IndexError, ValueError):
        out = None
    if out is None or out.shape[:1] != (len(rows),):
        out = np.stack([np.asarray(X[int(i)]) for i in rows])
    return out


def as_float_array(rows):
    """Rows of X as a float array: uint8 images (n, C, H, W) scaled to
    [0, 1], uint8 vectors taken as the numbers they are, floats kept as they
    are (float32 or float64)."""
    rows = np.asarray(rows)
    if rows.dtype == np.uint8:
        rows = rows.astype(np.float32)
        return rows * _PIXEL_SCALE if rows.ndim == 4 else rows
    return rows


def as_float_tensor(rows):
    """Rows of X as a float32 tensor (a copy, never a view of X)."""
    return torch.tensor(as_float_array(rows), dtype=torch.float32)


class ArrayDataset(Dataset):
    """Training data held as given and converted a batch at a time.

    Parameters
    ----------
    X : ndarray, np.memmap or lazy array of shape (n_samples, ...)
        Inputs; rows are read with :meth:`take`.
    y : ndarray of shape (n_samples, ...) or None, default=None
        Targets (small: they are held in memory).
    """

    def __init__(self, X, y=None):
        self.X = X
        self.y = y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, index):
        X, y = self.take(np.asarray([index]))
        return X[0], (y[0] if self.y is not None else y)

    def take(self, index):
        """The rows ``index`` (in that order) as float32 tensors ``(X, y)``.

        Rows are read in increasing order, which disk-backed arrays serve
        fastest, and put back in the order asked for.

        Parameters
        ----------
        index : ndarray of int
            Row numbers.

        Returns
        -------
        X : Tensor of shape (len(index), ...)
        y : Tensor or None
        """
        order = np.argsort(index, kind="stable")
        rows = read_rows(self.X, index[order])
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        X = as_float_tensor(rows[back])
        if self.y is None:
            return X, None
        return X, torch.as_tensor(self.y[index], dtype=torch.float32)
