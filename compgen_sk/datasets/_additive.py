"""Vector data from a random generator in the additive decoder class.

See :ref:`background-decoders` for that class.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils import check_random_state

from .._sklearn_compat import Interval, StrOptions, validate_params
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

_HIDDEN = 32


class AdditiveGenerator:
    """``x = sum_k f_k(z_k) + interaction * sum_{i<j} g_ij(z_i, z_j)`` with random MLPs.

    ``f_k`` maps one slot's latents to ``n_features`` through a tanh layer; ``g_ij``
    is a bounded (tanh) function of two slots at once. With ``interaction=0`` the
    generator lies in the additive class, whose cross-slot Hessian blocks vanish.
    Weights come from ``seed`` alone.
    """

    def __init__(self, n_slots, slot_dim, n_features, interaction, seed):
        rng = np.random.default_rng(seed)
        self.interaction = interaction

        def layer(n_in, n_out):
            return rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)

        self.slot_in = [layer(slot_dim, _HIDDEN) * 3.0 for _ in range(n_slots)]
        self.slot_bias = [rng.uniform(-1.5, 1.5, _HIDDEN) for _ in range(n_slots)]
        self.slot_out = [layer(_HIDDEN, n_features) for _ in range(n_slots)]
        self.pairs = [(i, j) for i in range(n_slots) for j in range(i + 1, n_slots)]
        self.pair_in = [layer(2 * slot_dim, _HIDDEN) * 3.0 for _ in self.pairs]
        self.pair_out = [layer(_HIDDEN, n_features) for _ in self.pairs]

    def __call__(self, z):
        """Map latents ``(n, K, m)`` in [-1, 1] to ``(n, n_features)``."""
        x = sum(
            np.tanh(z[:, k] @ w + b) @ v
            for k, (w, b, v) in enumerate(
                zip(self.slot_in, self.slot_bias, self.slot_out)
            )
        )
        if self.interaction:
            for (i, j), w, v in zip(self.pairs, self.pair_in, self.pair_out):
                pair = np.concatenate([z[:, i], z[:, j]], axis=1)
                x = x + self.interaction * (np.tanh(pair @ w) @ v)
        return x


@validate_params(
    {
        **COMMON_CONSTRAINTS,
        **BINNING_CONSTRAINTS,
        "slot_dim": at_least(1),
        "n_features": at_least(1),
        "interaction": [Interval(Real, 0, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "support": [StrOptions(set(SUPPORTS))],
    },
    prefer_skip_nested_validation=True,
)
def make_additive(
    n_samples=1000,
    *,
    n_slots=3,
    slot_dim=2,
    n_features=64,
    interaction=0.0,
    noise=0.0,
    support="diagonal",
    delta=0.125,
    n_bins=4,
    holdout_fraction=0.5,
    split="id",
    design_seed=0,
    random_state=None,
    return_X_y=False,
):
    """Vector data from a random slot-additive generator, with an ID/OOD split.

    Latents ``z_k`` in ``[-1, 1]^slot_dim`` for each of ``n_slots`` slots are mapped
    to ``n_features`` dimensions by ``x = sum_k f_k(z_k)`` (:ref:`background-decoders`),
    plus ``interaction`` times bounded pairwise terms ``g_ij(z_i, z_j)`` that take the
    generator out of the additive class, plus Gaussian ``noise``. The functions are
    random one-hidden-layer tanh networks fixed by ``design_seed``; the samples are
    drawn with ``random_state``. For fast experiments and tests.

    Parameters
    ----------
    n_samples : int, default=1000
        With ``split="all"``, half are ID and half OOD.
    n_slots : int, default=3
        Number of slots K.
    slot_dim : int, default=2
        Latents per slot.
    n_features : int, default=64
        Output dimension (much larger than ``n_slots * slot_dim``).
    interaction : float >= 0, default=0.0
        Weight of the pairwise interaction terms.
    noise : float >= 0, default=0.0
        Standard deviation of additive Gaussian noise.
    support : {"diagonal", "random", "l_shape", "full"}, default="diagonal"
        As in :func:`make_sprites`, on the unit-cube coordinates of the latents.
    delta : float in (0, 1], default=0.125
        Width of the diagonal support.
    n_bins : int, default=4
        Bins per latent, for ``combination`` ids and the ``"random"`` and
        ``"l_shape"`` supports.
    holdout_fraction : float in (0, 1), default=0.5
        Fraction of binned combinations that ``support="random"`` holds out.
    split : {"id", "ood", "all"}, default="id"
    design_seed : int, default=0
        Fixes the generator functions and the held-out combinations, so that
        separate calls with ``split="id"`` and ``split="ood"`` share one generator.
    random_state : int, RandomState instance or None, default=None
        Draws the samples and the noise.
    return_X_y : bool, default=False
        Return ``(data, latents)``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (n, n_features) float32; ``latents`` (n, n_slots, slot_dim) in
        [-1, 1]; ``latent_names``; ``concepts``; ``ood``; ``combination``; ``DESCR``;
        ``generator``, the callable that maps latents to data.

    Examples
    --------
    >>> from compgen_sk.datasets import make_additive
    >>> X, z = make_additive(10, n_slots=2, return_X_y=True, random_state=0)
    >>> X.shape, z.shape
    ((10, 64), (10, 2, 2))
    """
    check_common(n_slots=n_slots, support=support, split=split)

    rng = check_random_state(random_state)
    names = tuple(f"z{j}" for j in range(slot_dim))
    spec = LatentSpec(names=names, ranges=((-1.0, 1.0),) * slot_dim)
    support_ = Support(support, spec, delta, n_bins, holdout_fraction, design_seed)
    u, ood = draw_split(rng, n_samples, n_slots, support_, split)
    latents = spec.from_unit(u)
    generator = AdditiveGenerator(
        n_slots, slot_dim, n_features, interaction, design_seed
    )
    data = generator(latents.astype(np.float64))
    if noise:
        data = data + noise * rng.standard_normal(data.shape)
    return build_bunch(
        data=data,
        latents=latents,
        latent_names=names,
        concepts=make_concepts(u, latents, support_),
        ood=ood,
        combination=support_.combination(u),
        descr=(
            f"Additive: {n_slots} slots of {slot_dim} latents -> {n_features} "
            f"features, interaction={interaction}, support={support!r}, "
            f"split={split!r}."
        ),
        return_X_y=return_X_y,
        generator=generator,
    )
