"""Data larger than memory and uint8 images: X is read a batch at a time."""

import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from compgen_sk import (
    EncoderBaseline,
    GenerativeInverter,
    GradientSearch,
    ReplayEncoder,
)
from compgen_sk.datasets import make_sprites

SMALL = dict(n_slots=2, slot_dim=2, max_epochs=2, batch_size=32, random_state=0)


@pytest.fixture(scope="module")
def pixels():
    """Sprites as uint8 pixels, and the same images as floats in [0, 1]."""
    images = make_sprites(120, image_size=12, random_state=0).images
    as_uint8 = np.round(images * 255).astype(np.uint8)
    return as_uint8, as_uint8.astype(np.float32) * np.float32(1 / 255)


def _fit(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X)


@pytest.mark.parametrize(
    "make",
    [
        lambda: GenerativeInverter(**SMALL, search=GradientSearch(steps=3)),
        lambda: EncoderBaseline(**SMALL),
        lambda: ReplayEncoder(
            GenerativeInverter(**SMALL, search=None), max_epochs=1, random_state=0
        ),
    ],
)
def test_uint8_images_are_pixels_scaled_to_unit_range(make, pixels):
    as_uint8, as_float = pixels
    from_uint8, from_float = _fit(make(), as_uint8), _fit(make(), as_float)
    np.testing.assert_array_equal(
        from_uint8.transform(as_uint8), from_float.transform(as_float)
    )
    np.testing.assert_array_equal(
        from_uint8.transform(as_float), from_float.transform(as_float)
    )
    assert from_uint8.score(as_uint8) == from_float.score(as_float)
    assert (
        from_uint8.inverse_transform(from_uint8.transform(as_uint8)).dtype == np.float32
    )


def test_float_images_of_pixel_values_warn(pixels):
    as_uint8, _ = pixels
    with pytest.warns(UserWarning, match="0-255 pixel values"):
        _fit(GenerativeInverter(**SMALL, search=None), as_uint8.astype(np.float32))


@pytest.mark.parametrize("high", [2.3, 9.9])
def test_float_images_beyond_unit_range_are_not_taken_for_pixel_values(pixels, high):
    # e.g. objects in [0, 1] summed where they overlap
    _, as_float = pixels
    X = as_float * np.float32(high / as_float.max())
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _fit(GenerativeInverter(**SMALL, search=None), X)


def test_uint8_vectors_are_numbers():
    X = np.random.default_rng(0).integers(0, 4, size=(60, 8)).astype(np.uint8)
    a = _fit(GenerativeInverter(**SMALL, search=None), X)
    b = _fit(GenerativeInverter(**SMALL, search=None), X.astype(np.float32))
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    # score takes X as fit did: numbers, not pixels scaled by 1/255
    assert a.score(X) == b.score(X.astype(np.float32))


def test_memmap_fits_like_memory_without_copying_it(tmp_path, pixels):
    _, images = pixels
    X = np.concatenate([images] * 40)  # 4,800 images, 8.3 MB
    disk = np.lib.format.open_memmap(
        tmp_path / "X.npy", mode="w+", dtype=np.float32, shape=X.shape
    )
    disk[:] = X
    disk.flush()
    disk = np.load(tmp_path / "X.npy", mmap_mode="r")
    # In this process (n_jobs=1), where tracemalloc sees training's allocations.
    model = GenerativeInverter(
        **{**SMALL, "max_epochs": 1}, search=GradientSearch(steps=2), n_jobs=1
    )
    _fit(model, disk[:64]).transform(disk[:64])  # torch's first-call allocations
    tracemalloc.start()
    _fit(model, disk)
    slots = model.transform(disk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # NumPy allocations stay far below one copy of X (a few batches at most).
    assert peak < 0.5 * X.nbytes, peak
    reference = _fit(
        GenerativeInverter(
            **{**SMALL, "max_epochs": 1}, search=GradientSearch(steps=2), n_jobs=1
        ),
        X,
    )
    np.testing.assert_array_equal(slots, reference.transform(X))


def test_long_epochs_return_freed_heap_memory(monkeypatch):
    from compgen_sk.estimators import _loaders

    calls = []
    monkeypatch.setattr(_loaders, "_MALLOC_TRIM", calls.append)
    monkeypatch.setattr(_loaders, "TRIM_EVERY", 4)
    assert list(_loaders.trimmed(range(10))) == list(range(10))
    assert calls == [0, 0]  # after batches 4 and 8
    # A fit reads its batches through it: 200 samples in batches of 16 = 13.
    calls.clear()
    X = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        GenerativeInverter(
            n_slots=2, slot_dim=2, max_epochs=2, batch_size=16, random_state=0
        ).fit(X)
    assert len(calls) == 2 * 3


class _OnDemand:
    """An array read on demand, like an h5py dataset or a zarr array: shape,
    dtype, len, and indexing by slices and integers only; converting it whole
    fails."""

    def __init__(self, array):
        self._array = array
        self.shape, self.dtype = array.shape, array.dtype

    def __len__(self):
        return len(self._array)

    def __getitem__(self, key):
        if not isinstance(key, slice | int | np.integer):
            raise TypeError("only slices and integers")
        return np.array(self._array[key])

    def __array__(self, *args, **kwargs):
        raise AssertionError("X was converted whole")


@pytest.mark.parametrize("make", [GenerativeInverter, EncoderBaseline, ReplayEncoder])
def test_arrays_read_on_demand_fit_like_arrays(make, pixels):
    # By default (n_jobs=None) the two renderers of "auto" fit in turn in this
    # process on one thread, for arrays in memory as for data read on demand.
    params = dict(n_slots=2, slot_dim=2, max_epochs=2, random_state=0)
    if make is ReplayEncoder:
        params = dict(
            generator=GenerativeInverter(**params), max_epochs=2, random_state=0
        )
    as_uint8, _ = pixels
    lazy = _OnDemand(as_uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        on_demand = make(**params).fit(lazy)
        in_memory = make(**params).fit(as_uint8)
    np.testing.assert_array_equal(
        on_demand.transform(lazy), in_memory.transform(as_uint8)
    )
    if make is not ReplayEncoder:
        assert on_demand.score(lazy) == in_memory.score(as_uint8)


def test_arrays_read_on_demand_are_checked_chunk_by_chunk(pixels):
    as_uint8, as_float = pixels
    bad = as_float.copy()
    bad[-1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        GenerativeInverter().fit(_OnDemand(bad))
    with pytest.raises(ValueError, match="float32 or float64"):
        GenerativeInverter().fit(_OnDemand(as_uint8.astype(np.int64)))
    with pytest.raises(ValueError, match="0 sample"):
        GenerativeInverter().fit(_OnDemand(as_float[:0]))


def test_which_arrays_are_read_on_demand(pixels):
    from compgen_sk.estimators._data import is_lazy_array

    as_uint8, _ = pixels
    assert is_lazy_array(_OnDemand(as_uint8))
    dask_array = pytest.importorskip("dask.array")
    import pandas as pd
    import torch

    for eager in (
        as_uint8,
        torch.zeros(2, 3),
        pd.DataFrame({"a": [1.0]}),
        dask_array.zeros((4, 2)),
    ):
        assert not is_lazy_array(eager)
