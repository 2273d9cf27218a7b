"""Latent supports with an in-domain / out-of-domain split.

See :ref:`background-setting` and :ref:`background-data`.

Every generator in :mod:`compgen_sk.datasets` describes its per-slot latents with a
:class:`LatentSpec`, samples *unit coordinates* ``u`` in ``[0, 1]^(n, K, L)`` with
:func:`sample_unit_latents`, and maps them to natural units with
:meth:`LatentSpec.from_unit`. Whether a combination is in-domain (ID) is decided on
the unit coordinates by :func:`id_mask`, so the same support definitions serve images
and vectors alike.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import pandas as pd

from .._sklearn_compat import Interval, StrOptions

SUPPORTS = ("diagonal", "random", "l_shape", "full")
SPLITS = ("id", "ood", "all")

# Rejection sampling draws this many candidates per wanted sample and gives up after
# this many rounds: supports whose acceptance rate is that low are not useful.
_OVERSAMPLING = 8
_MAX_ROUNDS = 200


@dataclass(frozen=True)
class LatentSpec:
    """What one slot's latents are.

    Parameters
    ----------
    names : tuple of str
        Latent names, in order.
    ranges : tuple
        One entry per latent: ``(low, high)`` numbers for a continuous latent, or a
        tuple of category names (strings) for a categorical one, whose value is the
        category index.
    """

    names: tuple
    ranges: tuple

    @property
    def n_latents(self):
        return len(self.names)

    def is_categorical(self, index):
        return not _is_interval(self.ranges[index])

    def n_categories(self, index):
        return len(self.ranges[index])

    def from_unit(self, u):
        """Map unit coordinates ``(..., L)`` to natural units (category indices)."""
        out = np.empty(u.shape, dtype=np.float32)
        for j, r in enumerate(self.ranges):
            if _is_interval(r):
                out[..., j] = r[0] + (r[1] - r[0]) * u[..., j]
            else:
                out[..., j] = np.minimum(np.floor(u[..., j] * len(r)), len(r) - 1)
        return out

    def bins(self, u, n_bins):
        """Bin index of every latent: categories for categorical latents, else
        ``n_bins`` equal-width bins of the unit interval."""
        sizes = self.bin_counts(n_bins)
        return np.minimum(np.floor(u * sizes), sizes - 1).astype(np.int64)

    def observable(self, u):
        """Unit coordinates with categorical latents snapped to their category's
        centre, so that a support depends on observable values only."""
        out = np.array(u, dtype=np.float64, copy=True)
        for j, r in enumerate(self.ranges):
            if not _is_interval(r):
                out[..., j] = (
                    np.minimum(np.floor(u[..., j] * len(r)), len(r) - 1) + 0.5
                ) / len(r)
        return out

    def bin_counts(self, n_bins):
        sizes = [n_bins if _is_interval(r) else len(r) for r in self.ranges]
        return np.array(sizes, dtype=np.int64)


def _is_interval(r):
    return not any(isinstance(value, str) for value in r)


# ----------------------------------------------------------------------------------
# Parameter checks shared by the generators
# ----------------------------------------------------------------------------------


def at_least(low):
    """The constraint "an integer >= low"."""
    return [Interval(Integral, low, None, closed="left")]


#: Parameter constraints every generator shares (with ``validate_params``).
COMMON_CONSTRAINTS = {
    "n_samples": at_least(1),
    "n_slots": at_least(1),
    "split": [StrOptions(set(SPLITS))],
    "holdout_fraction": [Interval(Real, 0, 1, closed="neither")],
    "design_seed": at_least(0),
    "random_state": ["random_state"],
    "return_X_y": ["boolean"],
}
#: ... and those of the continuous supports.
BINNING_CONSTRAINTS = {
    "delta": [Interval(Real, 0, 1, closed="right")],
    "n_bins": at_least(2),
}


def check_common(*, n_slots, support, split):
    """The checks across parameters that every generator shares."""
    if split != "id" and support == "full":
        raise ValueError(
            f"support='full' holds nothing out, so split={split!r} has no OOD samples; "
            "use split='id' or another support."
        )
    if split != "id" and n_slots == 1:
        raise ValueError(
            "With n_slots=1 there are no slot combinations to hold out; "
            f"split={split!r} needs n_slots >= 2."
        )


def split_counts(n_samples, split):
    """How many ID and OOD samples a split asks for (``"all"``: half and half)."""
    if split == "id":
        return n_samples, 0
    if split == "ood":
        return 0, n_samples
    n_ood = n_samples // 2
    return n_samples - n_ood, n_ood


# ----------------------------------------------------------------------------------
# Supports
# ----------------------------------------------------------------------------------


def diagonal_distance(u):
    """Euclidean distance of each latent's slot vector to the diagonal.

    ``u`` has shape ``(n, K, L)``; the result ``(n, L)`` is, for every latent ``l``,
    the norm of the component of ``u[:, :, l]`` orthogonal to ``(1, ..., 1)``.
    """
    return np.linalg.norm(u - u.mean(axis=1, keepdims=True), axis=1)


def _splitmix64(x):
    """A well-mixed 64-bit hash, vectorized (wrap-around is intended)."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x


def slot_value_ids(bins, counts):
    """Integer id of each slot's binned value: ``(n, K, L)`` bins -> ``(n, K)``."""
    ids = np.zeros(bins.shape[:2], dtype=np.int64)
    for j, size in enumerate(counts):
        ids = ids * int(size) + bins[:, :, j]
    return ids


def combination_ids(slot_ids, n_values):
    """Integer id of each sample's slot-value combination: ``(n, K)`` -> ``(n,)``."""
    n_slots = slot_ids.shape[1]
    if n_slots * np.log2(max(n_values, 2)) >= 62:
        raise ValueError(
            f"{n_values} values per slot and {n_slots} slots give too many "
            "combinations to number; lower n_bins."
        )
    ids = np.zeros(slot_ids.shape[0], dtype=np.int64)
    for k in range(n_slots):
        ids = ids * n_values + slot_ids[:, k]
    return ids


def random_holdout(slot_ids, counts, holdout_fraction, design_seed):
    """True where a combination of slot values is held out (OOD) at random.

    ``slot_ids`` (n, K) are value indices, slot ``k`` taking ``counts[k]`` values.
    Whether a combination is held out is a fixed pseudo-random function of the
    combination and ``design_seed``, so separate calls agree. Combinations on the
    cyclic diagonal (for some slot ``k``, every slot ``j`` takes value
    ``v_k mod counts[j]``; with equal counts: all slots equal) are never held out, so
    every single-slot value occurs in ID.
    """
    counts = np.broadcast_to(np.asarray(counts, dtype=np.int64), slot_ids.shape[1:])
    combination = np.zeros(len(slot_ids), dtype=np.int64)
    for k, size in enumerate(counts):
        combination = combination * int(size) + slot_ids[:, k]
    key = combination.astype(np.uint64) ^ _splitmix64(np.array([design_seed]))[0]
    uniform = (_splitmix64(key) >> np.uint64(11)).astype(np.float64) / float(2**53)
    protected = np.zeros(len(slot_ids), dtype=bool)
    for k in range(slot_ids.shape[1]):
        protected |= (slot_ids == slot_ids[:, k : k + 1] % counts).all(axis=1)
    return (uniform < holdout_fraction) & ~protected


@dataclass(frozen=True)
class Support:
    """Which slot combinations are in-domain.

    Parameters
    ----------
    kind : {"diagonal", "random", "l_shape", "full"}
    delta : float
        Radius around the diagonal (``"diagonal"``), in unit-cube coordinates.
    n_bins : int
        Bins per continuous latent for combination ids and the ``"random"`` support.
    holdout_fraction : float
        Fraction of binned combinations held out by ``"random"``.
    design_seed : int
        Fixes which combinations ``"random"`` holds out.
    """

    kind: str
    spec: LatentSpec
    delta: float = 0.125
    n_bins: int = 4
    holdout_fraction: float = 0.5
    design_seed: int = 0

    def slot_ids(self, u):
        return slot_value_ids(self.spec.bins(u, self.n_bins), self.bin_counts)

    @property
    def bin_counts(self):
        return self.spec.bin_counts(self.n_bins)

    @property
    def n_values(self):
        return int(np.prod(self.bin_counts))

    def combination(self, u):
        return combination_ids(self.slot_ids(u), self.n_values)

    def id_mask(self, u):
        """True for unit latents ``(n, K, L)`` inside the in-domain support."""
        if self.kind == "full":
            return np.ones(u.shape[0], dtype=bool)
        u = self.spec.observable(u)
        if self.kind == "diagonal":
            return (diagonal_distance(u) <= self.delta).all(axis=1)
        if self.kind == "l_shape":
            return ~(u[:, :, 0] > 0.5).all(axis=1)
        held_out = random_holdout(
            self.slot_ids(u), self.n_values, self.holdout_fraction, self.design_seed
        )
        return ~held_out


def _sample_near_diagonal(rng, n, n_slots, n_latents, delta):
    """Candidates within ``delta`` of the diagonal (uniform radius in the orthogonal
    ball of each latent), clipped to the cube by rejection."""
    centre = np.broadcast_to(rng.random((n, 1, n_latents)), (n, n_slots, n_latents))
    direction = rng.standard_normal((n, n_slots, n_latents))
    direction -= direction.mean(axis=1, keepdims=True)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-12
    radius = delta * rng.random((n, 1, n_latents)) ** (1.0 / max(n_slots - 1, 1))
    return centre + direction * radius


def sample_unit_latents(rng, n, n_slots, support, *, ood, accept=None):
    """Draw ``n`` unit latents ``(n, K, L)`` from the ID or OOD part of ``support``.

    ``accept`` optionally filters candidates further (e.g. non-overlapping objects);
    it takes unit latents and returns a boolean mask.
    """
    n_latents = support.spec.n_latents
    out, have = [], 0
    for _ in range(_MAX_ROUNDS):
        if have >= n:
            break
        m = max(_OVERSAMPLING * (n - have), 64)
        if support.kind == "diagonal" and not ood:
            u = _sample_near_diagonal(rng, m, n_slots, n_latents, support.delta)
            keep = ((u >= 0) & (u <= 1)).all(axis=(1, 2))
        else:
            u = rng.random((m, n_slots, n_latents))
            keep = np.ones(m, dtype=bool)
        in_id = support.id_mask(u)
        keep &= ~in_id if ood else in_id
        if accept is not None:
            keep &= accept(u)
        u = u[keep]
        out.append(u)
        have += len(u)
    if have < n:
        part = "OOD" if ood else "ID"
        raise ValueError(
            f"Could not draw {n} {part} samples from support={support.kind!r}: the "
            f"{part} region is (nearly) empty for these parameters "
            f"(delta={support.delta}, n_slots={n_slots}); widen it."
        )
    return np.concatenate(out)[:n]


def draw_split(rng, n_samples, n_slots, support, split, accept_ood=None):
    """Unit latents and the OOD mask for a split, ID and OOD rows shuffled together."""
    n_id, n_ood = split_counts(n_samples, split)
    parts, flags = [], []
    if n_id:
        parts.append(sample_unit_latents(rng, n_id, n_slots, support, ood=False))
        flags.append(np.zeros(n_id, dtype=bool))
    if n_ood:
        parts.append(
            sample_unit_latents(
                rng, n_ood, n_slots, support, ood=True, accept=accept_ood
            )
        )
        flags.append(np.ones(n_ood, dtype=bool))
    u, ood = np.concatenate(parts), np.concatenate(flags)
    if split == "all":
        order = rng.permutation(len(u))
        u, ood = u[order], ood[order]
    return u, ood


# ----------------------------------------------------------------------------------
# Concept tables
# ----------------------------------------------------------------------------------


def concept_column(slot_name, concept):
    """The column name of one (slot, concept) pair in a concept table."""
    return f"{slot_name}_{concept}"


def make_concepts(u, latents, support):
    """Concept table: one column per (slot, latent).

    Categorical latents become pandas categoricals of their category names;
    continuous ones stay floats, or become categoricals of their bin labels where the
    support is defined by bins (``"random"``).
    """
    _n, n_slots, _ = u.shape
    spec = support.spec
    slot_names = [f"slot{k}" for k in range(n_slots)]
    binned = support.kind == "random"
    bins = spec.bins(u, support.n_bins)
    columns = {}
    for k, slot in enumerate(slot_names):
        for j, name in enumerate(spec.names):
            r = spec.ranges[j]
            if spec.is_categorical(j):
                values = pd.Categorical.from_codes(bins[:, k, j], categories=list(r))
            elif binned:
                edges = np.linspace(r[0], r[1], support.n_bins + 1)
                labels = [
                    f"[{lo:.3g}, {hi:.3g})" for lo, hi in itertools.pairwise(edges)
                ]
                values = pd.Categorical.from_codes(bins[:, k, j], categories=labels)
            else:
                values = latents[:, k, j].astype(np.float64)
            columns[concept_column(slot, name)] = values
    return pd.DataFrame(columns)
