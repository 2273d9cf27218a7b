"""X as the user gives it: checked, scaled, and converted one batch at a time.

The estimators never copy X whole: validation, scaling, training and inference
read rows from X as it is — an array, a disk-backed ``np.memmap``, an h5py or
zarr array — and convert only those rows to float32. Images stored as
``uint8`` are taken as 0–255 pixel values and scaled to [0, 1] on the fly, as
torchvision's ``ToTensor`` does; ``uint8`` vectors are taken as the numbers
they are.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.validation import validate_data
from torch.utils.data import Dataset

from .._concepts import FLOAT32_MAX
from .._warnings import user_stacklevel

# uint8 pixel values map to [0, 1].
_PIXEL_SCALE = np.float32(1.0 / 255.0)
# Rows read at a time where X is scanned whole (ranges, scaling).
CHUNK = 512
# Channel counts that make a last axis look like the channels of images.
_CHANNEL_COUNTS = (1, 3, 4)
# Float images whose values reach beyond this look like 0-255 pixel values: an
# 8-bit image whose brightest pixel is 10 of 255 would be nearly black, while
# images built from [0, 1] values (objects summed where they overlap) may
# exceed 1 or 2.
_PIXEL_VALUES_ABOVE = 10.0


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


def _check_lazy_array(X):
    """Check an array read on demand a chunk at a time, as ``check_array``
    checks an array: dtype, at least two samples, finite values. Returns the
    (min, max) of its values (None for uint8)."""
    dtype = np.dtype(X.dtype)
    ndim = len(X.shape)
    if dtype not in (np.float32, np.float64) and not (dtype == np.uint8 and ndim == 4):
        raise ValueError(
            f"X is an array read on demand ({type(X).__name__}) of dtype {dtype}; "
            "such X must hold float32 or float64 values, or uint8 images "
            "(n, C, H, W). Convert it, or load it with np.asarray(X)."
        )
    if len(X) < 2:
        raise ValueError(
            f"Found array with {len(X)} sample(s) (shape={tuple(X.shape)}) while a "
            "minimum of 2 is required."
        )
    if dtype == np.uint8:
        return None
    low, high = math.inf, -math.inf
    for start in range(0, len(X), CHUNK):
        chunk = np.asarray(X[start : start + CHUNK])
        if not np.isfinite(chunk).all():
            raise ValueError("Input X contains NaN or infinity.")
        low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
    return low, high


def _warn_if_channels_last(sample_shape):
    """Warn when images (C, H, W) look like channels-last images (H, W, C)."""
    if len(sample_shape) != 3:
        return
    channels, _, last = sample_shape
    if last in _CHANNEL_COUNTS and channels not in _CHANNEL_COUNTS:
        warnings.warn(
            f"X has images of shape (C, H, W) = {sample_shape}: {channels} channels "
            f"of {sample_shape[1]} x {last} pixels. If they are channels-last "
            f"images (H, W, C), pass X.transpose(0, 3, 1, 2); the estimators "
            "expect (n_samples, channels, height, width).",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def _warn_if_pixel_values(low, high):
    """Warn when float images, ranging from ``low`` to ``high``, hold what look
    like 0–255 pixel values: uint8 images are scaled to [0, 1], float ones are
    taken as they are, so mixing the two would shift the data by 255."""
    if low >= 0 and _PIXEL_VALUES_ABOVE < high <= 255.0:
        warnings.warn(
            f"X holds float images with values in [{low:.3g}, {high:.3g}], which "
            "look like 0-255 pixel values. Float images are taken as they are, "
            "while uint8 images are scaled to [0, 1]: pass X.astype(np.uint8) or "
            "X / 255 to treat both alike.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def check_X(estimator, X, *, reset):
    """Check X for ``estimator`` and return it as an array of shape (n, d) or
    (n, C, H, W) (float, or uint8 images); ``reset`` records its layout
    (``input_shape_``, ``n_features_in_``, ``feature_names_in_``), else X
    must have the layout recorded at fit.

    Nothing is copied unless the dtype must change; callers convert batches.
    """
    name = type(estimator).__name__
    lazy = is_lazy_array(X)
    if lazy:
        low_high = _check_lazy_array(X)
    else:
        dtype = getattr(X, "dtype", None)
        if dtype is None and isinstance(X, list | tuple):
            dtype = np.asarray(X).dtype
        if getattr(dtype, "kind", None) in ("U", "S"):
            # NumPy would read strings of digits as numbers, silently.
            raise ValueError(
                f"X holds strings ({dtype}); {name} takes numbers (vectors or images)."
            )
        # ensure_2d=False: images are 4-D, and n_features_in_ is set below
        # (for images, the product of the sample shape).
        X = validate_data(
            estimator,
            X,
            reset=reset,
            allow_nd=True,
            ensure_2d=False,
            ensure_min_samples=2 if reset else 1,
            dtype=[np.float32, np.float64, np.uint8],
        )
        if X.dtype == np.uint8 and X.ndim != 4:  # uint8: pixels of images only
            X = X.astype(np.float32)
    ndim, dtype = len(X.shape), np.dtype(X.dtype)
    if ndim not in (2, 4):
        hint = (
            " Reshape your data: X.reshape(-1, 1) for a single feature, "
            "X.reshape(1, -1) for a single sample."
            if ndim == 1
            else ""
        )
        raise ValueError(
            f"X must be vectors (n_samples, n_features) or images "
            f"(n_samples, channels, height, width); got shape {X.shape}.{hint}"
        )
    # One pass for the range of floats that the checks below need.
    if dtype != np.uint8 and (dtype == np.float64 or ndim == 4) and len(X):
        low, high = low_high if lazy else (float(X.min()), float(X.max()))
        largest = max(high, -low)
        if dtype == np.float64 and largest > FLOAT32_MAX:
            raise ValueError(
                f"X has values up to {largest:.3g}, beyond the float32 range "
                f"(±{FLOAT32_MAX:.3g}) that the networks compute in; rescale X."
            )
        if ndim == 4:
            _warn_if_pixel_values(low, high)
    shape = tuple(X.shape[1:])
    if reset:
        if lazy and hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_  # from an earlier fit on a DataFrame
        _warn_if_channels_last(shape)
        estimator.input_shape_ = shape
        estimator.n_features_in_ = math.prod(shape)
    elif shape != estimator.input_shape_:
        if ndim == 2 and len(estimator.input_shape_) == 1:
            raise ValueError(
                f"X has {shape[0]} features, but {name} is expecting "
                f"{estimator.n_features_in_} features as input."
            )
        raise ValueError(
            f"X has samples of shape {shape}, but {name} was fitted on samples "
            f"of shape {estimator.input_shape_}."
        )
    return X


def check_y_length(y, X):
    """A ``y`` must match X in length, also where the fit ignores it, so that
    a wrong y fails before training rather than in a later Pipeline step."""
    if y is not None and hasattr(y, "__len__") and len(y) != len(X):
        raise ValueError(f"y has {len(y)} samples but X has {len(X)}; they must match.")


def data_scaling(X):
    """Per-feature mean of X and one overall scale (root mean squared
    deviation from it), computed in chunks so that X is never copied whole.
    Constant data gets scale 1: any positive scale gives the same exact fit."""
    n = len(X)
    total = np.zeros(X.shape[1:], dtype=np.float64)
    for start in range(0, n, CHUNK):
        chunk = as_float_array(X[start : start + CHUNK])
        total += chunk.sum(axis=0, dtype=np.float64)
    mean = total / n
    squares = 0.0
    for start in range(0, n, CHUNK):
        chunk = as_float_array(X[start : start + CHUNK]) - mean
        squares += float(np.square(chunk, out=chunk).sum())
    scale = math.sqrt(squares / (n * mean.size))
    return mean.astype(np.float32), float(scale) if scale > 0 else 1.0
