"""Multi-object sprites (Wiedemer et al. 2024), rendered for a whole batch at once."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.utils import check_random_state

from .._sklearn_compat import StrOptions, validate_params
from ._base import build_bunch
from ._support import (
    BINNING_CONSTRAINTS,
    COMMON_CONSTRAINTS,
    SUPPORTS,
    LatentSpec,
    Support,
    at_least,
    check_common,
    draw_split,
    make_concepts,
)

SHAPE_SIDES = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6, "circle": 0}
# Spriteworld's orientation of each polygon: a triangle points up, a square is axis
# aligned (angles in image coordinates, y pointing down).
_SHAPE_START_ANGLE = {3: -math.pi / 2, 4: math.pi / 4, 5: -math.pi / 2, 6: 0.0}

SPRITE_LATENTS = ("x", "y", "shape", "scale", "hue")
DEFAULT_RANGES = {
    "x": (0.1, 0.9),
    "y": (0.2, 0.8),
    "scale": (0.09, 0.22),
    "hue": (0.05, 0.95),
}
# Smallest object, in pixels across, that a renderer can still show as a shape.
_MIN_OBJECT_PIXELS = 1.0
_RENDER_CHUNK = 1024


def _unit_polygon(n_sides):
    """Vertices (n_sides, 2) of a regular polygon of area 1, as in Spriteworld."""
    theta = 2 * math.pi / n_sides
    angles = _SHAPE_START_ANGLE[n_sides] + theta * np.arange(n_sides)
    vertices = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    area = n_sides * math.sin(theta / 2) * math.cos(theta / 2)
    return vertices / math.sqrt(area)


def circumradius(shape):
    """Radius of the circle around a shape of area 1."""
    n_sides = SHAPE_SIDES[shape]
    if n_sides == 0:
        return 1 / math.sqrt(math.pi)
    return float(np.linalg.norm(_unit_polygon(n_sides)[0]))


def _edge_planes(n_sides):
    """Outward unit normals (E, 2) and offsets (E,) of a unit polygon's edges."""
    v = _unit_polygon(n_sides)
    edges = np.roll(v, -1, axis=0) - v
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    # Orient outwards whichever way the vertices wind.
    offsets = (normals * v).sum(axis=1)
    sign = np.sign(offsets)
    return normals * sign[:, None], offsets * sign


def hue_to_rgb(hue):
    """HSV colour at full saturation and value: hue (...,) -> RGB (..., 3)."""
    h6 = hue[..., None] * 6.0
    centres = torch.tensor([3.0, 2.0, 4.0], dtype=hue.dtype, device=hue.device)
    rgb = (h6 - centres).abs()
    red = (rgb[..., :1] - 1.0).clamp(0, 1)
    green_blue = (2.0 - rgb[..., 1:]).clamp(0, 1)
    return torch.cat([red, green_blue], dim=-1)


@validate_params(
    {
        "latents": ["array-like"],
        "image_size": at_least(1),
        "shapes": [list, tuple],
        "device": [str, torch.device],
    },
    prefer_skip_nested_validation=True,
)
def render_sprites(latents, image_size, shapes, *, device="cpu"):
    """Render sprites for a whole batch.

    Parameters
    ----------
    latents : ndarray of shape (n, K, 5)
        Per object ``x, y`` (centre, fraction of the image, ``y`` from the top),
        ``shape`` (index into ``shapes``), ``scale`` (side of the area-1 shape as a
        fraction of the image, so the area is ``scale**2``) and ``hue``.
    image_size : int
        Side of the square images, in pixels.
    shapes : sequence of str
        Shape names that the ``shape`` latent indexes (e.g. ``("triangle",
        "square")``).
    device : str, default="cpu"
        Torch device to render on.

    Returns
    -------
    images : ndarray of shape (n, 3, image_size, image_size), float32 in [0, 1]
        Objects drawn in slot order, later ones over earlier ones, on black.
        Edges are anti-aliased from the signed distance to the shape's boundary.
    """
    n, n_slots, _ = latents.shape
    out = np.empty((n, 3, image_size, image_size), dtype=np.float32)
    centres = torch.arange(image_size, dtype=torch.float32, device=device) + 0.5
    py, px = torch.meshgrid(centres / image_size, centres / image_size, indexing="ij")
    pixels = torch.stack([px.reshape(-1), py.reshape(-1)], dim=1)  # (P, 2)
    # A convex polygon's signed distance is the largest signed distance to its edge
    # lines, n_e . (p - c) - o_e * scale; the n_e . p part is the same for every
    # object, so it is computed once per shape.
    polygons = {}
    for name in shapes:
        if SHAPE_SIDES[name]:
            normals, offsets = (
                torch.as_tensor(a, dtype=torch.float32, device=device)
                for a in _edge_planes(SHAPE_SIDES[name])
            )
            polygons[name] = (normals, offsets, pixels @ normals.T)
    for start in range(0, n, _RENDER_CHUNK):
        z = torch.as_tensor(
            latents[start : start + _RENDER_CHUNK], dtype=torch.float32, device=device
        )
        canvas = torch.zeros(len(z), 3, image_size * image_size, device=device)
        distance = torch.empty(len(z), image_size * image_size, device=device)
        for k in range(n_slots):
            centre, shape, scale = z[:, k, :2], z[:, k, 2], z[:, k, 3:4]
            for index, name in enumerate(shapes):
                rows = (shape == index).nonzero().squeeze(1)
                if len(rows) == 0:
                    continue
                if name == "circle":
                    d = torch.cdist(centre[rows], pixels) - scale[rows] / math.sqrt(
                        math.pi
                    )
                else:
                    normals, offsets, projected = polygons[name]
                    bias = centre[rows] @ normals.T + offsets * scale[rows]
                    d = projected[:, 0] - bias[:, :1]
                    for e in range(1, len(offsets)):
                        d = torch.maximum(d, projected[:, e] - bias[:, e : e + 1])
                distance[rows] = d
            alpha = distance.mul_(-image_size).add_(0.5).clamp_(0, 1).unsqueeze(1)
            colour = hue_to_rgb(z[:, k, 4]).unsqueeze(2)
            canvas.addcmul_(alpha, colour - canvas)
        out[start : start + len(z)] = canvas.view(
            len(z), 3, image_size, image_size
        ).cpu()
    return out


def _non_overlapping(u, spec, shapes):
    """Accept unit latents whose objects' bounding circles do not touch."""
    latents = spec.from_unit(u)
    radius = np.array([circumradius(s) for s in shapes])[latents[:, :, 2].astype(int)]
    radius = radius * latents[:, :, 3]
    centre = latents[:, :, :2]
    n_slots = u.shape[1]
    ok = np.ones(len(u), dtype=bool)
    for i in range(n_slots):
        for j in range(i + 1, n_slots):
            gap = np.linalg.norm(centre[:, i] - centre[:, j], axis=1)
            ok &= gap > radius[:, i] + radius[:, j]
    return ok


@validate_params(
    {
        **COMMON_CONSTRAINTS,
        **BINNING_CONSTRAINTS,
        "image_size": at_least(1),
        "support": [StrOptions(set(SUPPORTS))],
        "shapes": [list, tuple],
        "scale_range": [list, tuple],
        "ood_overlap": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_sprites(
    n_samples=1000,
    *,
    n_slots=2,
    image_size=32,
    support="diagonal",
    delta=0.125,
    shapes=("triangle", "square"),
    scale_range=(0.09, 0.22),
    split="id",
    ood_overlap=False,
    n_bins=4,
    holdout_fraction=0.5,
    design_seed=0,
    random_state=None,
    return_X_y=False,
):
    """Multi-object sprite images with an in-domain / out-of-domain split.

    Spriteworld-style scenes (Wiedemer et al. 2024, :ref:`background-data`): ``n_slots``
    objects on black, each with latents ``x, y`` (centre in [0.1, 0.9] x [0.2, 0.8] of
    the image, ``y`` measured from the top), ``shape``, ``scale`` (side of the area-one
    shape relative to the image) and ``hue`` (HSV colour at full saturation and
    value). Rendered for the whole batch at once with anti-aliased edges; later
    objects are drawn over earlier ones.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of images. With ``split="all"``, half are ID and half OOD.
    n_slots : int, default=2
        Objects per image.
    image_size : int, default=32
        Height and width in pixels.
    support : {"diagonal", "random", "l_shape", "full"}, default="diagonal"
        Which slot combinations are in-domain:

        - ``"diagonal"``: every latent's slot vector lies within ``delta`` of the
          diagonal where all slots are equal (unit-cube coordinates); OOD is
          farther than ``delta`` in some latent (Wiedemer et al. 2024). The
          shape counts at its category's centre, so ID objects share one shape.
        - ``"random"``: each latent is cut into ``n_bins`` bins and a random
          ``holdout_fraction`` of binned combinations is held out; combinations
          whose slots are all equal stay in ID, so every single-slot value does.
        - ``"l_shape"``: the corner where every slot's ``x`` is above its midpoint
          is held out (Lachapelle et al. 2023).
        - ``"full"``: nothing is held out.
    delta : float in (0, 1], default=0.125
        Width of the diagonal support.
    shapes : tuple of str, default=("triangle", "square")
        Any of "triangle", "square", "pentagon", "hexagon", "circle".
    scale_range : (float, float), default=(0.09, 0.22)
        Range of ``scale``; the smallest object must cover at least one pixel.
    split : {"id", "ood", "all"}, default="id"
        Which part to draw.
    ood_overlap : bool, default=False
        Let objects of OOD images overlap (by default OOD objects do not touch).
    n_bins : int, default=4
        Bins per continuous latent, for ``combination`` ids and the ``"random"``
        support.
    holdout_fraction : float in (0, 1), default=0.5
        Fraction of binned combinations that ``support="random"`` holds out.
    design_seed : int, default=0
        Fixes the held-out combinations of ``support="random"``, so that separate
        calls for ``split="id"`` and ``split="ood"`` describe one dataset.
    random_state : int, RandomState instance or None, default=None
        Draws the samples.
    return_X_y : bool, default=False
        Return ``(images, latents)`` instead of the Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``images`` (n, 3, H, W) float32 in [0, 1]; ``data`` the images flattened;
        ``latents`` (n, n_slots, 5) in natural units (shape as its index);
        ``latent_names``; ``concepts`` DataFrame with a column ``"slot{k}_{latent}"``
        per object and latent (``shape`` a categorical; continuous latents floats,
        binned categoricals for ``support="random"``); ``ood`` boolean mask;
        ``combination`` integer id of the binned slot-value combination;
        ``exchangeable_slots`` True for two or more sprites (objects of one
        kind: match slots to them per sample, ``SlotProbe(matching="per_sample")``);
        ``DESCR``.
        For ``"random"`` and ``"l_shape"`` (even ``n_bins``) the ID and OOD
        combination ids are disjoint; the diagonal support is continuous, so its
        border bins hold both.

    Examples
    --------
    >>> from compgen_sk.datasets import make_sprites
    >>> sprites = make_sprites(8, image_size=16, split="all", random_state=0)
    >>> sprites.images.shape, sprites.latents.shape, int(sprites.ood.sum())
    ((8, 3, 16, 16), (8, 2, 5), 4)
    """
    check_common(n_slots=n_slots, support=support, split=split)
    unknown = [s for s in shapes if s not in SHAPE_SIDES]
    if not shapes or unknown or len(set(shapes)) != len(shapes):
        raise ValueError(
            f"shapes must be distinct names from {tuple(SHAPE_SIDES)}, got {shapes!r}."
        )
    low, high = scale_range
    if not 0 < low < high <= 1:
        raise ValueError(
            f"scale_range must satisfy 0 < low < high <= 1, got {scale_range!r}."
        )
    if image_size * low < _MIN_OBJECT_PIXELS:
        raise ValueError(
            f"image_size={image_size} is too small for the objects: the smallest "
            f"(scale {low}) would cover {image_size * low:.2f} pixels; use "
            f"image_size >= {math.ceil(_MIN_OBJECT_PIXELS / low)} or a larger "
            "scale_range."
        )

    rng = check_random_state(random_state)
    ranges = dict(DEFAULT_RANGES, scale=(float(low), float(high)))
    spec = LatentSpec(
        names=SPRITE_LATENTS,
        ranges=tuple(
            tuple(shapes) if name == "shape" else ranges[name]
            for name in SPRITE_LATENTS
        ),
    )
    support_ = Support(support, spec, delta, n_bins, holdout_fraction, design_seed)
    accept = None if ood_overlap else (lambda u: _non_overlapping(u, spec, shapes))
    u, ood = draw_split(rng, n_samples, n_slots, support_, split, accept_ood=accept)
    latents = spec.from_unit(u)
    images = render_sprites(latents, image_size, tuple(shapes))
    return build_bunch(
        images=images,
        latents=latents,
        latent_names=SPRITE_LATENTS,
        concepts=make_concepts(u, latents, support_),
        ood=ood,
        combination=support_.combination(u),
        descr=(
            f"Sprites: {n_slots} objects, {image_size}x{image_size} RGB, "
            f"support={support!r} (delta={delta}), split={split!r}."
        ),
        return_X_y=return_X_y,
        exchangeable=n_slots > 1,
        shapes=list(shapes),
    )
