"""Compositions of real handwritten digits (scikit-learn's bundled ``load_digits``)."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.utils import check_random_state

from .._sklearn_compat import Interval, StrOptions, validate_params
from ._base import build_bunch
from ._sprites import hue_to_rgb
from ._support import (
    COMMON_CONSTRAINTS,
    at_least,
    check_common,
    combination_ids,
    concept_column,
    random_holdout,
    split_counts,
)

DIGIT_LATENTS = ("digit", "dx", "dy", "hue")
_HUE_RANGE = (0.05, 0.95)
_DIGIT_SUPPORTS = ("random", "full")
# Rejection rounds for drawing class combinations of the requested part.
_MAX_ROUNDS = 200


def _templates(digit_size):
    """All bundled digits upsampled to ``digit_size`` pixels, values in [0, 1]."""
    digits = load_digits()
    images = torch.as_tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
    images = F.interpolate(
        images, size=(digit_size, digit_size), mode="bilinear", align_corners=False
    )
    return images[:, 0].clamp(0, 1).numpy(), digits.target


def _draw_classes(rng, n, n_slots, n_classes, ood, holdout_fraction, design_seed):
    out, have = [], 0
    for _ in range(_MAX_ROUNDS):
        if have >= n:
            break
        cls = rng.integers(0, n_classes, size=(max(8 * (n - have), 64), n_slots))
        held = random_holdout(cls, n_classes, holdout_fraction, design_seed)
        cls = cls[held] if ood else cls[~held]
        out.append(cls)
        have += len(cls)
    if have < n:
        raise ValueError(
            "Could not draw the requested class combinations; raise holdout_fraction "
            "or n_classes so that the OOD part is not empty."
        )
    return np.concatenate(out)[:n]


@validate_params(
    {
        **COMMON_CONSTRAINTS,
        "digit_size": at_least(8),
        "jitter": at_least(0),
        "n_classes": [Interval(Integral, 2, 10, closed="both")],
        "support": [StrOptions(set(_DIGIT_SUPPORTS))],
        "colored": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_digit_compositions(
    n_samples=1000,
    *,
    n_slots=2,
    digit_size=12,
    jitter=2,
    n_classes=10,
    support="random",
    holdout_fraction=0.5,
    split="id",
    colored=True,
    design_seed=0,
    random_state=None,
    return_X_y=False,
):
    """Images composed of real handwritten digits, one per slot, with held-out pairs.

    Each slot is a digit from scikit-learn's bundled ``load_digits`` (1,797 real 8x8
    scans, upsampled to ``digit_size`` pixels): its class, a random instance of that
    class, a position jitter inside its own cell and, with ``colored=True``, a hue.
    Cells sit side by side on a black canvas of height ``digit_size + 2 * jitter``
    and width ``n_slots`` times that. In-domain is a subset of class combinations
    in which every class appears in every slot; OOD images show the held-out class
    combinations — the analogue of held-out animal x background pairs
    (:ref:`background-data`).

    Parameters
    ----------
    n_samples : int, default=1000
        Number of images. With ``split="all"``, half are ID and half OOD.
    n_slots : int, default=2
        Digits per image.
    digit_size : int, default=12
        Side of a digit in pixels (at least 8).
    jitter : int, default=2
        Largest shift of a digit inside its cell, in pixels.
    n_classes : int, default=10
        Use digit classes ``0 .. n_classes - 1`` (at least 2).
    support : {"random", "full"}, default="random"
        ``"random"`` holds out a random ``holdout_fraction`` of class combinations,
        never one whose slots all show the same class; ``"full"`` holds out none.
    holdout_fraction : float in (0, 1), default=0.5
        Fraction of class combinations that ``support="random"`` holds out.
    split : {"id", "ood", "all"}, default="id"
    colored : bool, default=True
        Colour each digit with a random hue; else white digits.
    design_seed : int, default=0
        Fixes the held-out combinations across calls.
    random_state : int, RandomState instance or None, default=None
        Draws classes, instances, jitter and hues.
    return_X_y : bool, default=False
        Return ``(images, latents)``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``images`` (n, 3, H, W) float32 in [0, 1]; ``data``; ``latents``
        (n, n_slots, 4): ``digit`` (class), ``dx``, ``dy`` (jitter in pixels),
        ``hue``; ``latent_names``; ``concepts`` with a categorical column
        ``"slot{k}_digit"`` per slot; ``ood``; ``combination`` (the class
        combination's id); ``instance`` (n, n_slots) index of each digit in
        ``load_digits``; ``DESCR``.

    Examples
    --------
    >>> from compgen_sk.datasets import make_digit_compositions
    >>> digits = make_digit_compositions(6, split="all", random_state=0)
    >>> digits.images.shape, list(digits.concepts.columns)
    ((6, 3, 16, 32), ['slot0_digit', 'slot1_digit'])
    """
    check_common(n_slots=n_slots, support=support, split=split)

    rng = np.random.default_rng(check_random_state(random_state).randint(2**32))
    n_id, n_ood = split_counts(n_samples, split)
    fraction = holdout_fraction if support == "random" else 0.0
    parts = [
        _draw_classes(rng, count, n_slots, n_classes, ood, fraction, design_seed)
        for count, ood in ((n_id, False), (n_ood, True))
        if count
    ]
    classes = np.concatenate(parts)
    ood = np.repeat([False, True], [n_id, n_ood])
    if split == "all":
        order = rng.permutation(len(classes))
        classes, ood = classes[order], ood[order]

    templates, targets = _templates(digit_size)
    by_class = [np.flatnonzero(targets == c) for c in range(n_classes)]
    counts = np.array([len(b) for b in by_class])
    pick = (rng.random(classes.shape) * counts[classes]).astype(int)
    offsets = np.cumsum(np.concatenate([[0], counts[:-1]]))
    instance = np.concatenate(by_class)[offsets[classes] + pick]
    shift = rng.integers(-jitter, jitter + 1, size=(*classes.shape, 2))
    hue = rng.uniform(*_HUE_RANGE, size=classes.shape)

    cell = digit_size + 2 * jitter
    n = len(classes)
    canvas = np.zeros((n, cell, n_slots * cell), dtype=np.float32)
    rows = np.arange(digit_size)[None, :, None]
    cols = np.arange(digit_size)[None, None, :]
    sample = np.arange(n)[:, None, None]
    for k in range(n_slots):
        top = (jitter + shift[:, k, 1])[:, None, None] + rows
        left = (k * cell + jitter + shift[:, k, 0])[:, None, None] + cols
        canvas[sample, top, left] = templates[instance[:, k]]
    colour = (
        hue_to_rgb(torch.as_tensor(hue, dtype=torch.float32)).numpy()
        if colored
        else np.ones((*classes.shape, 3), dtype=np.float32)
    )
    # Each cell takes its own slot's colour.
    colour_map = np.repeat(colour, cell, axis=1)  # (n, n_slots*cell, 3)
    images = canvas[:, None] * colour_map.transpose(0, 2, 1)[:, :, None, :]

    latents = np.stack([classes, shift[..., 0], shift[..., 1], hue], axis=2).astype(
        np.float32
    )
    names = [str(c) for c in range(n_classes)]
    concepts = pd.DataFrame(
        {
            concept_column(f"slot{k}", "digit"): pd.Categorical.from_codes(
                classes[:, k], categories=names
            )
            for k in range(n_slots)
        }
    )
    return build_bunch(
        images=images,
        latents=latents,
        latent_names=DIGIT_LATENTS,
        concepts=concepts,
        ood=ood,
        combination=combination_ids(classes, n_classes),
        descr=(
            f"Digit compositions: {n_slots} real handwritten digits (sklearn "
            f"load_digits) per {cell}x{n_slots * cell} image, {n_classes} classes, "
            f"support={support!r}, split={split!r}."
        ),
        return_X_y=return_X_y,
        instance=instance,
    )
