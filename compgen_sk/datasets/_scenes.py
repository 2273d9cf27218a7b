"""Objects in front of photographed backgrounds; object x background pairs held out."""

from __future__ import annotations

import functools
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from .._sklearn_compat import Interval, StrOptions, validate_params
from ._base import build_bunch
from ._support import concept_column

#: The object identities: a silhouette, a surface texture and its two colours.
OBJECTS = (
    ("disk", "horizontal stripes", (0.85, 0.12, 0.10), (0.98, 0.92, 0.80)),
    ("square", "checkerboard", (0.10, 0.22, 0.85), (0.98, 0.85, 0.10)),
    ("triangle", "dots", (0.05, 0.55, 0.15), (0.95, 0.95, 0.95)),
    ("flower", "rings", (0.98, 0.55, 0.05), (0.35, 0.05, 0.45)),
    ("cross", "vertical stripes", (0.60, 0.05, 0.60), (0.95, 0.95, 0.35)),
    ("diamond", "diagonal stripes", (0.05, 0.70, 0.75), (0.08, 0.08, 0.08)),
    ("annulus", "grid", (0.95, 0.95, 0.95), (0.80, 0.10, 0.35)),
    ("dome", "gradient", (0.20, 0.10, 0.05), (0.95, 0.75, 0.20)),
)
#: The backgrounds: crops (left, top, right, bottom) of the two photographs that
#: scikit-learn ships (:func:`sklearn.datasets.load_sample_images`).
BACKGROUNDS = (
    ("sky", "china.jpg", (430, 0, 630, 200)),
    ("temple", "china.jpg", (70, 30, 250, 210)),
    ("trees", "china.jpg", (460, 250, 630, 420)),
    ("hillside", "china.jpg", (0, 260, 160, 420)),
    ("lakeside", "china.jpg", (250, 140, 400, 290)),
    ("flower", "flower.jpg", (270, 50, 430, 210)),
    ("leaves", "flower.jpg", (10, 80, 210, 280)),
    ("petals", "flower.jpg", (345, 115, 405, 175)),
)
SCENE_LATENTS = ("identity", "x", "y", "size")
# Sub-pixels per pixel side: objects are anti-aliased by averaging them.
_SUPERSAMPLING = 3
_RENDER_CHUNK = 256


@functools.lru_cache(maxsize=4)
def background_images(image_size):
    """The backgrounds as float32 images (n, 3, size, size) in [0, 1]."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    by_name = {name.rsplit("/", 1)[-1]: image for name, image in zip(
        photos.filenames, photos.images
    )}  # fmt: skip
    crops = [
        Image.fromarray(by_name[photo])
        .crop(box)
        .resize((image_size, image_size), Image.LANCZOS)
        for _, photo, box in BACKGROUNDS
    ]
    images = np.stack([np.asarray(c, dtype=np.float32) / 255 for c in crops])
    images = images.transpose(0, 3, 1, 2)
    images.setflags(write=False)
    return images


def _inside(silhouette, u, v):
    """Whether the points (u, v) of the object's own square [-1, 1]^2 (v
    pointing down) lie inside its silhouette."""
    r = np.hypot(u, v)
    if silhouette == "disk":
        return r <= 0.95
    if silhouette == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.78
    if silhouette == "triangle":
        return (v <= 0.8) & (v >= -0.95 + 1.95 * np.abs(u))
    if silhouette == "flower":
        theta = np.arctan2(v, u)
        return r <= 0.62 + 0.33 * np.cos(5 * theta + np.pi / 2)
    if silhouette == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) | (
            (np.abs(v) <= 0.3) & (np.abs(u) <= 0.95)
        )
    if silhouette == "diamond":
        return np.abs(u) + np.abs(v) <= 0.97
    if silhouette == "annulus":
        return (r <= 0.95) & (r >= 0.5)
    if silhouette == "dome":
        return (r <= 0.95) & (v <= 0.35)
    raise ValueError(silhouette)


def _texture(texture, u, v):
    """The share of the second colour at the points (u, v), in [0, 1]."""
    if texture == "horizontal stripes":
        return (np.sin(4 * np.pi * v) > 0).astype(np.float32)
    if texture == "vertical stripes":
        return (np.sin(4 * np.pi * u) > 0).astype(np.float32)
    if texture == "checkerboard":
        return (np.sin(3 * np.pi * u) * np.sin(3 * np.pi * v) > 0).astype(np.float32)
    if texture == "dots":
        du, dv = (1.6 * u) % 0.5 - 0.25, (1.6 * v) % 0.5 - 0.25
        return (du**2 + dv**2 < 0.012).astype(np.float32)
    if texture == "rings":
        return (np.sin(5 * np.pi * np.hypot(u, v)) > 0).astype(np.float32)
    if texture == "diagonal stripes":
        return (np.sin(3 * np.pi * (u + v)) > 0).astype(np.float32)
    if texture == "grid":
        lines = (np.abs(np.sin(3 * np.pi * u)) < 0.35) | (
            np.abs(np.sin(3 * np.pi * v)) < 0.35
        )
        return lines.astype(np.float32)
    if texture == "gradient":
        return ((v + 1) / 2).clip(0, 1).astype(np.float32)
    raise ValueError(texture)


def render_scenes(identity, background, pose, image_size):
    """Render scenes: each object drawn over its background, later objects on top.

    Parameters
    ----------
    identity : ndarray of int of shape (n, n_objects)
        Index into :data:`OBJECTS` of every object.
    background : ndarray of int of shape (n,)
        Index into :data:`BACKGROUNDS`.
    pose : ndarray of shape (n, n_objects, 3)
        Centre x, centre y and size (the side of the object's square) of every
        object, as fractions of the image side.
    image_size : int
        Side of the square images.

    Returns
    -------
    images : ndarray of shape (n, 3, image_size, image_size), float32 in [0, 1]
    """
    images = background_images(image_size)[background].copy()
    s = _SUPERSAMPLING
    grid = (np.arange(image_size * s, dtype=np.float32) + 0.5) / (image_size * s)
    for start in range(0, len(images), _RENDER_CHUNK):
        rows = slice(start, start + _RENDER_CHUNK)
        for k in range(identity.shape[1]):
            x, y, size = (pose[rows, k, j, None, None] for j in range(3))
            u = (grid[None, None, :] - x) / (size / 2)
            v = (grid[None, :, None] - y) / (size / 2)
            alpha = np.zeros((len(u), grid.size, grid.size), np.float32)
            color = np.zeros((3, *alpha.shape), np.float32)
            for index, (silhouette, texture, first, second) in enumerate(OBJECTS):
                mine = identity[rows, k] == index
                if not mine.any():
                    continue
                uu = np.broadcast_to(u[mine], (mine.sum(), grid.size, grid.size))
                vv = np.broadcast_to(v[mine], uu.shape)
                inside = _inside(silhouette, uu, vv).astype(np.float32)
                share = _texture(texture, uu, vv)
                alpha[mine] = inside
                for c in range(3):
                    color[c, mine] = (
                        first[c] * (1 - share) + second[c] * share
                    ) * inside
            # Average the sub-pixels: coverage, and colour premultiplied by it.
            n = len(alpha)
            alpha = alpha.reshape(n, image_size, s, image_size, s).mean(axis=(2, 4))
            color = color.reshape(3, n, image_size, s, image_size, s).mean(axis=(3, 5))
            block = images[rows]
            block *= 1 - alpha[:, None]
            block += color.transpose(1, 0, 2, 3)
    return images


def latin_square_holdout(n_held_out, n_values, random_state):
    """The held-out (object, background) pairs: ``n_held_out`` diagonals of a
    Latin square, so that every object and every background has as many pairs
    held out (and the others in domain). Returns a boolean (objects,
    backgrounds) matrix, True where the pair is out of domain."""
    rng = check_random_state(random_state)
    objects, backgrounds = rng.permutation(n_values), rng.permutation(n_values)
    shifts = rng.choice(n_values, n_held_out, replace=False)
    held_out = np.zeros((n_values, n_values), dtype=bool)
    for shift in shifts:
        held_out[objects, backgrounds[(np.arange(n_values) + shift) % n_values]] = True
    return held_out


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_objects": [Interval(Integral, 1, 2, closed="both")],
        "image_size": [Interval(Integral, 16, None, closed="left")],
        "n_held_out": [Interval(Integral, 1, len(OBJECTS) - 1, closed="both")],
        "size_range": [tuple],
        "split": [StrOptions({"id", "ood", "all"})],
        "design_seed": ["random_state"],
        "random_state": ["random_state"],
        "return_X_y": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_object_scenes(
    n_samples=1000,
    *,
    n_objects=1,
    image_size=32,
    n_held_out=2,
    size_range=(0.4, 0.65),
    split="all",
    design_seed=0,
    random_state=None,
    return_X_y=False,
):
    """Textured objects in front of photographed backgrounds; pairs held out.

    The PUG-Background setting made locally: every image shows one object (or
    two) of eight identities — each a silhouette with a surface texture in two
    colours (the Bunch's ``object_names``) — in front of one of eight
    backgrounds cut from the two photographs that scikit-learn ships
    (:func:`sklearn.datasets.load_sample_images`; ``background_names``), at a
    random position and size; the object occludes the background (and a second
    object the first). Object x background pairs are held out along
    ``n_held_out`` diagonals of a Latin square: every object and every
    background appears in domain, with ``n_held_out`` of their eight partners
    held out of domain. Nothing is downloaded.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of images (of the split asked for).
    n_objects : {1, 2}, default=1
        Objects per image. With two, a scene is out of domain when either
        object's pair with the background is held out.
    image_size : int >= 16, default=32
        Side of the square images (64 for a GPU).
    n_held_out : int in [1, 7], default=2
        Latin-square diagonals held out: the share of held-out pairs is
        ``n_held_out / 8``.
    size_range : tuple of two floats, default=(0.4, 0.65)
        Range of an object's size, the side of its square, as a fraction of
        the image side; positions keep the square inside the image.
    split : {"id", "ood", "all"}, default="all"
        In-domain pairs only, held-out pairs only, or every pair.
    design_seed : int, default=0
        Fixes the held-out pairs.
    random_state : int, RandomState instance or None, default=None
        Draws the scenes.
    return_X_y : bool, default=False
        Return ``(images, latents)`` instead of the Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``images`` (n, 3, image_size, image_size) float32 in [0, 1]; ``data``
        the images flattened; ``latents`` (n, n_objects + 1, 4): per object
        its identity, centre x, centre y and size, and for the background
        slot (last) its identity and zeros; ``latent_names``; ``concepts``, a
        table with the categorical columns ``"object_identity"`` (or
        ``"object0_identity"`` and ``"object1_identity"``) and
        ``"background_identity"`` and the continuous ``"object_x"``,
        ``"object_y"``, ``"object_size"``; ``ood``; ``combination`` (the
        object x background pair of the first object); ``held_out`` (the
        boolean objects x backgrounds matrix of held-out pairs);
        ``object_names``; ``background_names``; ``exchangeable_slots``
        (False: an object and a background play different roles);
        ``background_slot`` (True); ``DESCR``.

    Examples
    --------
    >>> from compgen_sk.datasets import make_object_scenes
    >>> scenes = make_object_scenes(100, random_state=0)
    >>> scenes.images.shape, list(scenes.concepts.columns)[:2]
    ((100, 3, 32, 32), ['object_identity', 'object_x'])
    """
    low, high = _check_size_range(size_range)
    n_values = len(OBJECTS)
    held_out = latin_square_holdout(n_held_out, n_values, design_seed)
    rng = check_random_state(random_state)
    identity = np.empty((0, n_objects), dtype=np.int64)
    background = np.empty(0, dtype=np.int64)
    # Draw every pair uniformly, then keep the scenes of the split asked for.
    while len(background) < n_samples:
        objects = rng.randint(n_values, size=(2 * n_samples, n_objects))
        backgrounds = rng.randint(n_values, size=2 * n_samples)
        ood = held_out[objects, backgrounds[:, None]].any(axis=1)
        keep = np.ones_like(ood) if split == "all" else ood == (split == "ood")
        identity = np.concatenate([identity, objects[keep]])
        background = np.concatenate([background, backgrounds[keep]])
    identity, background = identity[:n_samples], background[:n_samples]
    ood = held_out[identity, background[:, None]].any(axis=1)
    size = rng.uniform(low, high, size=(n_samples, n_objects))
    centre = size[..., None] / 2 + rng.uniform(size=(n_samples, n_objects, 2)) * (
        1 - size[..., None]
    )
    pose = np.concatenate([centre, size[..., None]], axis=2)
    images = render_scenes(identity, background, pose, image_size)

    names = ["object"] if n_objects == 1 else [f"object{k}" for k in range(n_objects)]
    object_names = [f"{silhouette}, {texture}" for silhouette, texture, *_ in OBJECTS]
    background_names = [name for name, *_ in BACKGROUNDS]
    columns = {}
    for k, slot in enumerate(names):
        columns[concept_column(slot, "identity")] = pd.Categorical.from_codes(
            identity[:, k], categories=object_names
        )
        for j, latent in enumerate(("x", "y", "size")):
            columns[concept_column(slot, latent)] = pose[:, k, j]
    columns[concept_column("background", "identity")] = pd.Categorical.from_codes(
        background, categories=background_names
    )
    latents = np.zeros((n_samples, n_objects + 1, len(SCENE_LATENTS)))
    latents[:, :n_objects, 0] = identity
    latents[:, :n_objects, 1:] = pose
    latents[:, n_objects, 0] = background
    return build_bunch(
        images=images,
        latents=latents,
        latent_names=SCENE_LATENTS,
        concepts=pd.DataFrame(columns),
        ood=ood,
        combination=identity[:, 0] * n_values + background,
        descr=(
            f"Object scenes: {n_objects} of {n_values} textured objects in front of "
            f"{n_values} photographed backgrounds, {image_size}x{image_size}; "
            f"{int(held_out.sum())} of {held_out.size} object x background pairs "
            f"held out; split={split!r}."
        ),
        return_X_y=return_X_y,
        background=True,
        held_out=held_out,
        object_names=object_names,
        background_names=background_names,
    )


def _check_size_range(size_range):
    ok = (
        len(size_range) == 2
        and all(isinstance(v, Real) for v in size_range)
        and 0 < size_range[0] <= size_range[1] <= 1
    )
    if not ok:
        raise ValueError(
            "size_range must be two numbers 0 < low <= high <= 1 (fractions of the "
            f"image side); got {size_range!r}."
        )
    return float(size_range[0]), float(size_range[1])
