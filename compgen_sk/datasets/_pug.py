"""A local copy of PUG: Animals (Bordes et al. 2023) as animal x background slots."""

from __future__ import annotations

import hashlib
import os
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from PIL import Image
from sklearn.utils import check_random_state

from .._sklearn_compat import validate_params
from ._base import build_bunch
from ._support import COMMON_CONSTRAINTS, at_least, concept_column, random_holdout

PUG_LATENTS = ("class",)


# Images decoded together when filling a cache.
_CACHE_CHUNK = 1024


def _read_pixels(path, image_size):
    """One image as uint8 pixels (H, W, 3), resized."""
    with Image.open(path) as image:
        image = image.convert("RGB").resize(
            (image_size, image_size), Image.Resampling.BILINEAR, reducing_gap=2.0
        )
        return np.asarray(image, dtype=np.uint8)


def _read_image(path, image_size):
    return _read_pixels(path, image_size).astype(np.float32) / 255.0


def _cached_pixels(files, image_size, cache, n_jobs):
    """The images as a uint8 memmap (n, 3, H, W) in the folder ``cache``,
    decoded on the first call and reused after. The file is named by a digest
    of the image size and the files, so that each selection has its own."""
    key = hashlib.sha256(f"{image_size}\n".encode())
    for name in files:
        key.update(f"{name}\n".encode())
    folder = Path(cache)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"pug_{image_size}px_{key.hexdigest()[:16]}.npy"
    if not target.is_file():
        partial = target.with_suffix(".partial.npy")
        out = np.lib.format.open_memmap(
            partial,
            mode="w+",
            dtype=np.uint8,
            shape=(len(files), 3, image_size, image_size),
        )
        for start in range(0, len(files), _CACHE_CHUNK):
            chunk = files[start : start + _CACHE_CHUNK]
            pixels = Parallel(n_jobs=n_jobs, prefer="threads")(
                delayed(_read_pixels)(f, image_size) for f in chunk
            )
            out[start : start + len(chunk)] = np.stack(pixels).transpose(0, 3, 1, 2)
        out.flush()
        del out
        partial.replace(target)  # complete files only, under the final name
    return np.load(target, mmap_mode="r")


def _select(values, wanted, name, column):
    """The categories to keep: all, the first ``wanted`` (an int), or those named."""
    available = sorted(pd.unique(values))
    if wanted is None:
        return available
    if isinstance(wanted, Integral) and not isinstance(wanted, bool):
        if not 2 <= wanted <= len(available):
            raise ValueError(
                f"{name}={wanted} must be between 2 and the {len(available)} values "
                f"of column {column!r}."
            )
        return available[:wanted]
    wanted = list(wanted)
    missing = sorted(set(wanted) - set(available))
    if missing:
        raise ValueError(
            f"{name} names values absent from column {column!r}: {missing}; "
            f"available: {available}."
        )
    if len(wanted) < 2:
        raise ValueError(f"{name} must select at least 2 values, got {wanted!r}.")
    return wanted


@validate_params(
    {
        "path": [str, os.PathLike],
        "labels_file": [str],
        "image_column": [str],
        "animal_column": [str],
        "background_column": [str],
        "animals": [Integral, list, tuple, None],
        "backgrounds": [Integral, list, tuple, None],
        "query": [str, None],
        "holdout_fraction": COMMON_CONSTRAINTS["holdout_fraction"],
        "image_size": at_least(4),
        "n_samples": [*at_least(1), None],
        "split": COMMON_CONSTRAINTS["split"],
        "design_seed": COMMON_CONSTRAINTS["design_seed"],
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
        "cache": [str, os.PathLike, None],
        "return_X_y": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def load_pug(
    path,
    *,
    labels_file="labels_pug_animal.csv",
    image_column="filename",
    animal_column="character_name",
    background_column="world_name",
    animals=None,
    backgrounds=None,
    query=None,
    holdout_fraction=0.5,
    image_size=32,
    n_samples=None,
    split="all",
    design_seed=0,
    random_state=None,
    n_jobs=None,
    cache=None,
    return_X_y=False,
):
    """Load a local copy of PUG: Animals with held-out animal x background pairs.

    PUG: Animals (215,040 Unreal Engine renders of 70 animals on 64 backgrounds at
    several sizes, textures and camera angles) is not downloaded: point ``path`` at a
    folder holding its annotation CSV and the image files the CSV names. The two
    slots are the animal and the background (:ref:`background-data`); a random
    ``holdout_fraction`` of the selected animal x background pairs is OOD, never one
    on the cyclic diagonal, so that every animal and every background occurs in ID.

    Parameters
    ----------
    path : str or Path
        Folder with ``labels_file``; image paths in the CSV are relative to it.
    labels_file : str, default="labels_pug_animal.csv"
        Annotation CSV inside ``path``.
    image_column, animal_column, background_column : str
        CSV columns holding the image file name, the animal and the background
        (defaults: PUG's ``filename``, ``character_name``, ``world_name``).
    animals, backgrounds : int, list of str or None, default=None
        Which animals / backgrounds to keep: all (None), the first ``n`` in sorted
        order (int), or those named — the paper uses subsets (e.g. 32 animals x 10
        backgrounds).
    query : str or None, default=None
        A :meth:`pandas.DataFrame.query` expression applied to the CSV first, e.g.
        ``"character_texture == 'Default' and character_scale == 1.0"``.
    holdout_fraction : float in (0, 1), default=0.5
        Fraction of animal x background pairs held out as OOD.
    image_size : int, default=32
        Images are resized to ``image_size x image_size``.
    n_samples : int or None, default=None
        Keep at most this many images of the split, drawn at random; None keeps all.
    split : {"id", "ood", "all"}, default="all"
    design_seed : int, default=0
        Fixes the held-out pairs.
    random_state : int, RandomState instance or None, default=None
        Draws the ``n_samples`` subset.
    n_jobs : int or None, default=None
        Threads reading images (joblib).
    cache : str, path or None, default=None
        A folder in which the selected images are decoded once into a uint8
        ``.npy`` file (one per image size and selection), reused by later
        calls: ``images`` is then a read-only uint8 :class:`numpy.memmap` of
        0-255 pixels, which the estimators take batch by batch and scale to
        [0, 1] (a quarter of the memory of float32, and no decoding). None
        decodes every call into float32 images in [0, 1].
    return_X_y : bool, default=False
        Return ``(images, latents)``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``images`` (n, 3, image_size, image_size); ``data``; ``latents`` (n, 2, 1)
        holding the animal and background indices into ``animal_names`` and
        ``background_names``; ``latent_names``; ``concepts`` with categorical
        columns ``"animal_class"`` and ``"background_class"``; ``ood``;
        ``combination``; ``frame`` (the selected CSV rows);
        ``exchangeable_slots`` (False); ``background_slot`` (True: the animal
        is in front of the background); ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If ``path`` or ``labels_file`` does not exist, or an image is missing.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"path={str(path)!r} is not an existing folder.")
    labels = root / labels_file
    if not labels.is_file():
        found = sorted(p.name for p in root.glob("*.csv"))
        raise FileNotFoundError(
            f"The label file {labels_file!r} is not in {str(root)!r} "
            f"(CSV files there: {found or 'none'}); pass labels_file=."
        )
    frame = pd.read_csv(labels)
    missing = [
        c for c in (image_column, animal_column, background_column) if c not in frame
    ]
    if missing:
        raise ValueError(
            f"The label file lacks the columns {missing}; it has "
            f"{list(frame.columns)}. Set image_column / animal_column / "
            "background_column."
        )
    if query is not None:
        frame = frame.query(query)
    animal_names = _select(frame[animal_column], animals, "animals", animal_column)
    background_names = _select(
        frame[background_column], backgrounds, "backgrounds", background_column
    )
    frame = frame[
        frame[animal_column].isin(animal_names)
        & frame[background_column].isin(background_names)
    ].reset_index(drop=True)

    classes = np.stack(
        [
            pd.Categorical(frame[animal_column], categories=animal_names).codes,
            pd.Categorical(frame[background_column], categories=background_names).codes,
        ],
        axis=1,
    ).astype(np.int64)
    counts = (len(animal_names), len(background_names))
    ood = random_holdout(classes, counts, holdout_fraction, design_seed)
    keep = (
        np.ones(len(frame), dtype=bool) if split == "all" else ood == (split == "ood")
    )
    rows = np.flatnonzero(keep)
    if n_samples is not None and n_samples < len(rows):
        rows = np.sort(check_random_state(random_state).choice(rows, n_samples, False))
    if len(rows) == 0:
        raise ValueError(
            f"No images in split={split!r} after selection; check animals, "
            "backgrounds and query."
        )

    files = [root / name for name in frame[image_column].iloc[rows]]
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        raise FileNotFoundError(
            f"{len(absent)} image files named in {labels_file!r} are missing, "
            f"e.g. {absent[0]!r}."
        )
    if cache is None:
        pixels = Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(_read_image)(f, image_size) for f in files
        )
        images = np.stack(pixels).transpose(0, 3, 1, 2)
    else:
        images = _cached_pixels(files, image_size, cache, n_jobs)
    classes, ood = classes[rows], ood[rows]
    concepts = pd.DataFrame(
        {
            concept_column(slot, "class"): pd.Categorical.from_codes(
                classes[:, k], categories=list(map(str, names))
            )
            for k, (slot, names) in enumerate(
                (("animal", animal_names), ("background", background_names))
            )
        }
    )
    return build_bunch(
        images=images,
        latents=classes[:, :, None],
        latent_names=PUG_LATENTS,
        concepts=concepts,
        ood=ood,
        combination=classes[:, 0] * counts[1] + classes[:, 1],
        descr=(
            f"PUG: Animals from {str(root)!r}: {counts[0]} animals x {counts[1]} "
            f"backgrounds, {image_size}x{image_size}, split={split!r}."
        ),
        return_X_y=return_X_y,
        background=True,
        animal_names=list(animal_names),
        background_names=list(background_names),
        frame=frame.iloc[rows].reset_index(drop=True),
    )
