"""Data larger than memory and uint8 images: X is read a batch at a time."""

import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from compgen_sk import EncoderBaseline, GenerativeInverter, ReplayEncoder
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
        lambda: GenerativeInverter(**SMALL, search_steps=3),
        lambda: EncoderBaseline(**SMALL),
        lambda: ReplayEncoder(
            GenerativeInverter(**SMALL, search_steps=0), replay_epochs=1, random_state=0
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
        _fit(GenerativeInverter(**SMALL, search_steps=0), as_uint8.astype(np.float32))


def test_uint8_vectors_are_numbers():
    X = np.random.default_rng(0).integers(0, 4, size=(60, 8)).astype(np.uint8)
    a = _fit(GenerativeInverter(**SMALL, search_steps=0), X)
    b = _fit(GenerativeInverter(**SMALL, search_steps=0), X.astype(np.float32))
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


def test_memmap_fits_like_memory_without_copying_it(tmp_path, pixels):
    _, images = pixels
    X = np.concatenate([images] * 40)  # 4,800 images, 8.3 MB
    disk = np.lib.format.open_memmap(
        tmp_path / "X.npy", mode="w+", dtype=np.float32, shape=X.shape
    )
    disk[:] = X
    disk.flush()
    disk = np.load(tmp_path / "X.npy", mmap_mode="r")
    model = GenerativeInverter(**{**SMALL, "max_epochs": 1}, search_steps=2)
    _fit(model, disk[:64]).transform(disk[:64])  # torch's first-call allocations
    tracemalloc.start()
    _fit(model, disk)
    slots = model.transform(disk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # NumPy allocations stay far below one copy of X (a few batches at most).
    assert peak < 0.5 * X.nbytes, peak
    reference = _fit(
        GenerativeInverter(**{**SMALL, "max_epochs": 1}, search_steps=2), X
    )
    np.testing.assert_array_equal(slots, reference.transform(X))
