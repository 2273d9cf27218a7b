"""Batch iterators handed to skorch as ``iterator_train`` / ``iterator_valid``.

skorch's default DataLoader indexes and collates one sample at a time; for small
images that costs more than the network. These iterators read whole batches,
converting only the rows of each batch (X may be a disk-backed array).
"""

from __future__ import annotations

import ctypes
import math
import sys

import numpy as np
import torch
from torch.utils.data import Subset

_NO_TARGET = torch.zeros(1)
# Batches between two returns of freed heap memory to the system.
TRIM_EVERY = 128


def _find_malloc_trim():
    """glibc's ``malloc_trim``, or None on other systems and C libraries."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:
        return None


_MALLOC_TRIM = _find_malloc_trim()


def trimmed(batches):
    """Yield ``batches``, returning freed heap memory to the system every
    :data:`TRIM_EVERY` batches.

    glibc keeps the pages that per-batch buffers leave free, and over a long
    epoch its heap fragments: resident memory grows with the number of batches
    (by 0.8-0.9 GB over one epoch of 100,000 images of 32 px), not with the data.
    ``malloc_trim`` hands them back, as Dask's workers do for the same reason.
    Epochs of fewer batches are untouched; other C libraries are left alone.
    """
    for i, batch in enumerate(batches, start=1):
        yield batch
        if _MALLOC_TRIM is not None and i % TRIM_EVERY == 0:
            _MALLOC_TRIM(0)


def _source(dataset):
    """The ArrayDataset behind a dataset or a Subset of one (the validation
    split), and the rows of it that the dataset holds (None: all)."""
    if isinstance(dataset, Subset):
        inner, rows = _source(dataset.dataset)
        index = np.asarray(dataset.indices)
        return inner, index if rows is None else rows[index]
    return dataset, None


class BatchLoader:
    """Mini-batches read from an :class:`~compgen_sk.estimators._data.ArrayDataset`.

    Parameters
    ----------
    dataset : ArrayDataset or Subset of one
        The training (or validation) data.
    batch_size : int
        Rows per batch.
    shuffle : bool, default=False
        Draw a new order every pass, from torch's global generator (which the
        estimators seed).
    """

    def __init__(self, dataset, batch_size=128, shuffle=False):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle

    def __len__(self):
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        return trimmed(self._batches())

    def _batches(self):
        data, rows = _source(self.dataset)
        n = len(self.dataset)
        order = torch.randperm(n) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size].numpy()
            X, y = data.take(index if rows is None else rows[index])
            yield X, (_NO_TARGET if y is None else y)


class StreamLoader:
    """Batches of a dataset that produces whole batches itself (``iter_batches``).

    Used for :class:`~compgen_sk.inversion.ReplayStream`, which renders fresh
    samples every pass, so every pass is already in a new random order.

    Parameters
    ----------
    dataset : ReplayStream
        Any object with ``iter_batches(batch_size)`` and ``__len__``.
    batch_size : int
    shuffle : bool, default=True
        Must be True (the stream cannot be read in a fixed order); accepted
        because skorch passes the training iterator's ``shuffle``.
    """

    def __init__(self, dataset, batch_size=128, shuffle=True):
        if not shuffle:
            raise ValueError(
                "A replay stream renders fresh random samples every pass; it "
                "cannot be read in a fixed order (shuffle=False)."
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle

    def __len__(self):
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        return trimmed(self.dataset.iter_batches(self.batch_size))
