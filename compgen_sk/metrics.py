"""Metrics of slot representations and their decoders, and scorers
(:ref:`background-metrics`): slot identifiability, reconstruction R², how much
a decoder lets slots interact (from its Jacobian), and scorers for
``GridSearchCV`` / ``cross_validate``.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
import torch
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from ._readout import check_slots, concepts_from_table, split_slots
from ._sklearn_compat import (
    HasMethods,
    Interval,
    StrOptions,
    check_sample_weight,
    safe_indexing,
    validate_params,
)
from ._torch import eval_mode
from .probe import SlotProbe

__all__ = [
    "compositional_contrast",
    "decoder_jacobian_norms",
    "identifiability_scorer",
    "jacobian_interaction_score",
    "make_slot_scorer",
    "readout_scorer",
    "reconstruction_r2",
    "reconstruction_r2_score",
    "reconstruction_scorer",
    "slot_identifiability_score",
    "slot_scorers",
]

# Parameters of the metrics computed from a decoder's Jacobian.
_JACOBIAN_CONSTRAINTS = {
    "estimator": "no_validation",
    "X": ["array-like", None],
    "Z": ["array-like", None],
    "max_samples": [Interval(Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
}


@validate_params(
    {
        "latents": ["array-like"],
        "slots": ["array-like"],
        "n_slots": [Interval(Integral, 1, None, closed="left"), None],
        "fit_mask": ["array-like", None],
        "readout": [StrOptions({"mlp", "linear"}), HasMethods(["fit", "predict"])],
        "categorical": ["boolean", list],
        "matching": [StrOptions({"global", "per_sample"})],
        "return_details": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def slot_identifiability_score(
    latents,
    slots,
    *,
    n_slots=None,
    fit_mask=None,
    readout="linear",
    categorical=False,
    matching="global",
    return_details=False,
    random_state=None,
):
    """How well inferred slots identify the true slots, up to permutation.

    A :class:`~compgen_sk.SlotProbe` with these ``readout``, ``categorical``
    and ``matching`` is fitted on the samples in ``fit_mask`` — it matches
    inferred slots to true slots by the Hungarian algorithm on held-out
    readout scores, or per sample for exchangeable objects — and scores each
    concept on the other samples: R² for continuous latents, accuracy for
    categorical ones. The score is the mean over true slots of their
    concepts' mean score (:ref:`background-metrics`); a true slot left
    without an inferred slot (fewer inferred than true slots) scores 0.

    To score out-of-domain identifiability, fit the readouts on ID samples and
    evaluate them on OOD samples::

        slots = estimator.transform(np.concatenate([X_id, X_ood]))
        latents = np.concatenate([z_id, z_ood])
        fit_mask = np.r_[np.ones(len(X_id), bool), np.zeros(len(X_ood), bool)]
        slot_identifiability_score(latents, slots, n_slots=K, fit_mask=fit_mask)

    Parameters
    ----------
    latents : array-like of shape (n_samples, K, m) or (n_samples,), or DataFrame
        Ground-truth latents: m per true slot; or a concept table (columns
        ``"<slot>_<concept>"``). A 2-D array of several columns is refused
        as ambiguous: reshape it to (n_samples, K, m).
    slots : array-like of shape (n_samples, K', d) or (n_samples, K' * d)
        Inferred slots; flat slots need ``n_slots``.
    n_slots : int or None, default=None
        Number of inferred slots K' when ``slots`` is flat.
    fit_mask : array-like of bool of shape (n_samples,) or None, default=None
        Samples that fit the readouts; the others evaluate them. None splits the
        samples in half at random.
    readout : {"linear", "mlp"} or estimator, default="linear"
        As :class:`~compgen_sk.SlotProbe`'s: ridge / logistic regression or a
        small MLP on standardized slots, or any scikit-learn estimator.
    categorical : bool or list of int, default=False
        Which latents of an array are categorical, as
        :class:`~compgen_sk.SlotProbe`'s; concept tables say it by dtype.
    matching : {"global", "per_sample"}, default="global"
        One slot-to-object matching for all samples (slots with roles), or an
        assignment per sample (exchangeable objects, such as two sprites:
        the datasets' ``exchangeable_slots``).
    return_details : bool, default=False
        Also return a DataFrame with one row per concept: its true slot, the
        inferred slot read (-1: none; per-sample matching reads any), its
        score, and the matching used.
    random_state : int, RandomState instance or None, default=None
        Seeds the default split and the probe.

    Returns
    -------
    score : float
        Mean score over the true slots; 1 is perfect identification.
    details : DataFrame
        Only with ``return_details=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from compgen_sk.metrics import slot_identifiability_score
    >>> rng = np.random.default_rng(0)
    >>> z = rng.uniform(-1, 1, size=(400, 2, 2))
    >>> inferred = np.tanh(z[:, ::-1])  # slots swapped and warped
    >>> round(slot_identifiability_score(z, inferred, readout="mlp",
    ...                                  random_state=0), 2) >= 0.95
    True
    """
    slots = split_slots(np.asarray(slots, dtype=np.float64), n_slots)
    if not np.isfinite(slots).all():
        raise ValueError("slots contain NaN or infinity.")
    n = len(slots)
    concepts, _ = concepts_from_table(latents, categorical)
    if len(concepts[0].values) != n:
        raise ValueError(
            f"latents have {len(concepts[0].values)} samples but slots have {n}."
        )
    fit_index, eval_index = _fit_eval_split(n, fit_mask, random_state)
    flat = slots.reshape(n, -1)
    probe = SlotProbe(
        readout,
        n_slots=slots.shape[1],
        categorical=categorical,
        matching=matching,
        random_state=random_state,
    )
    probe.fit(flat[fit_index], safe_indexing(latents, fit_index))
    scores = probe.concept_scores(flat[eval_index], safe_indexing(latents, eval_index))
    per_slot = pd.Series(scores.to_numpy()).groupby(probe.concept_slots_).mean()
    score = float(per_slot.mean())
    if not return_details:
        return score
    read = -1 if probe.per_sample_ else probe.matching_[probe.concept_slots_]
    details = {"true_slot": probe.concept_slots_, "concept": probe.concept_names_}
    details.update(categorical=probe.categorical_, inferred_slot=read)
    details.update(score=scores.to_numpy(), matching=matching)
    return score, pd.DataFrame(details)


def _fit_eval_split(n, fit_mask, random_state):
    if fit_mask is None:
        if n < 4:
            raise ValueError(f"Need at least 4 samples to split for readouts, got {n}.")
        return train_test_split(
            np.arange(n),
            train_size=0.5,
            random_state=check_random_state(random_state).randint(2**31),
        )
    mask = np.asarray(fit_mask)
    if mask.dtype != bool or mask.shape != (n,):
        raise ValueError(
            f"fit_mask must be a boolean array of shape ({n},); got dtype "
            f"{mask.dtype} and shape {mask.shape}."
        )
    if mask.all() or not mask.any():
        raise ValueError("fit_mask must select some samples and leave some out.")
    return np.flatnonzero(mask), np.flatnonzero(~mask)


@validate_params(
    {
        "X": ["array-like"],
        "X_hat": ["array-like"],
        "sample_weight": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def reconstruction_r2_score(X, X_hat, *, sample_weight=None):
    """R² of a reconstruction: ``1 - SSE / SST`` over all pixels or features.

    Variance weighted, as :func:`sklearn.metrics.r2_score` with
    ``multioutput="variance_weighted"``, for arrays of any number of axes; sums
    of squares are taken in float64, so that data of any magnitude give a
    finite score. 1 is perfect, 0 no better than the per-feature mean.

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
        The data.
    X_hat : array-like of the shape of ``X``
        Its reconstruction.
    sample_weight : array-like of shape (n_samples,) or None, default=None
        Weights of the samples.

    Returns
    -------
    score : float

    Examples
    --------
    >>> import numpy as np
    >>> from compgen_sk.metrics import reconstruction_r2_score
    >>> X = np.arange(12.0).reshape(3, 2, 2)
    >>> reconstruction_r2_score(X, X), reconstruction_r2_score(X, 0 * X + X.mean(0))
    (1.0, 0.0)
    """
    X = check_array(X, allow_nd=True, dtype=[np.float64, np.float32], input_name="X")
    X_hat = check_array(
        X_hat, allow_nd=True, dtype=[np.float64, np.float32], input_name="X_hat"
    )
    if X.shape != X_hat.shape:
        raise ValueError(
            f"X_hat has shape {X_hat.shape} but X has shape {X.shape}; a "
            "reconstruction has the shape of its data."
        )
    X = X.reshape(len(X), -1)
    X_hat = X_hat.reshape(len(X_hat), -1)
    if sample_weight is None:
        w = np.ones(len(X))
    else:
        w = check_sample_weight(sample_weight, X)
    mean = np.average(X, axis=0, weights=w)
    residual, spread = X - X_hat, X - mean
    sse = w @ np.einsum("ij,ij->i", residual, residual, dtype=np.float64)
    sst = w @ np.einsum("ij,ij->i", spread, spread, dtype=np.float64)
    if sst == 0:
        return 1.0 if sse == 0 else 0.0
    return float(1.0 - sse / sst)


def _unfrozen(estimator):
    """The estimator inside any :class:`~sklearn.frozen.FrozenEstimator`."""
    while isinstance(estimator, FrozenEstimator):
        estimator = estimator.estimator
    return estimator


def _slot_estimator(estimator, X=None, *, needs_decoder=False):
    """The fitted slot estimator (recognised by its public fitted attributes
    ``n_slots_`` and ``decoder_``), itself or the first such step of a
    Pipeline, and X as it reaches that estimator: through the Pipeline's
    steps before it. :class:`~sklearn.frozen.FrozenEstimator` wrappers are
    looked through."""
    estimator = _unfrozen(estimator)
    if isinstance(estimator, Pipeline):
        index = next(
            (
                i
                for i, (_, step) in enumerate(estimator.steps)
                if hasattr(step, "n_slots_") and hasattr(step, "decoder_")
            ),
            None,
        )
        if index is None:
            raise ValueError(
                "The pipeline has no fitted compgen-sk slot estimator step."
            )
        if X is not None and index > 0:
            X = estimator[:index].transform(X)
        estimator = _unfrozen(estimator.steps[index][1])
    else:
        check_is_fitted(estimator)
        if not hasattr(estimator, "n_slots_") or not hasattr(estimator, "decoder_"):
            raise ValueError(
                f"{type(estimator).__name__} is not a compgen-sk slot estimator."
            )
    if needs_decoder and estimator.decoder_ is None:
        raise ValueError(
            f"This {type(estimator).__name__} has no decoder to reconstruct or "
            "differentiate (e.g. an EncoderBaseline with objective='supervised')."
        )
    return estimator, X


@validate_params(
    {
        "estimator": "no_validation",
        "X": ["array-like"],
        "sample_weight": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def reconstruction_r2(estimator, X, sample_weight=None):
    """R² of reconstructing ``X`` through a fitted slot estimator.

    ``X`` is mapped to slots with ``transform`` (search included, where the
    estimator searches) and back with ``inverse_transform``; the score is
    :func:`reconstruction_r2_score` of the two (uint8 images taken in [0, 1]),
    as the estimator's ``score`` computes it: 1 is perfect and 0 is no better
    than the per-feature mean.

    Parameters
    ----------
    estimator : fitted slot estimator, or a Pipeline holding one
        The model whose reconstruction is scored. In a Pipeline, X passes
        through the steps before the slot estimator, and its input is scored.
    X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
        Data to reconstruct.
    sample_weight : array-like of shape (n_samples,) or None, default=None
        Weights of the samples.

    Returns
    -------
    score : float
    """
    estimator, X = _slot_estimator(estimator, X, needs_decoder=True)
    return float(estimator.score(X, sample_weight=sample_weight))


def _slot_norms(estimator, X, Z, max_samples, random_state):
    """Per-sample, per-output, per-slot Jacobian norms ||d f_p / d z_k||."""
    estimator, X = _slot_estimator(estimator, X, needs_decoder=True)
    if (X is None) == (Z is None):
        raise ValueError("Pass exactly one of X (inputs) or Z (slots).")
    if Z is None:
        Z = estimator.transform(X)
    Z = check_slots(Z, estimator.n_slots_, estimator.slot_dim_, estimator=estimator)
    if len(Z) > max_samples:
        rows = check_random_state(random_state).choice(
            len(Z), max_samples, replace=False
        )
        Z = Z[np.sort(rows)]
    with eval_mode(estimator.decoder_):
        return decoder_jacobian_norms(estimator.decoder_, Z)


@validate_params(
    {
        "decoder": [callable],
        "Z": ["array-like"],
    },
    prefer_skip_nested_validation=True,
)
def decoder_jacobian_norms(decoder, Z):
    """Slot-wise Jacobian norms ``||d f_p / d z_k||`` of a torch decoder.

    Parameters
    ----------
    decoder : torch.nn.Module
        Maps slots (n, K, d) to outputs (n, ...).
    Z : array-like of shape (n, K, d)
        Slots at which the Jacobian is taken.

    Returns
    -------
    norms : ndarray of shape (n, n_outputs, K)
    """
    param = next(decoder.parameters(), None)
    device = param.device if param is not None else "cpu"
    z = torch.as_tensor(np.asarray(Z), dtype=torch.float32, device=device)

    def render(one):
        return decoder(one[None]).flatten()

    # Forward mode: one pass per slot latent, far fewer than output elements.
    jacobian = torch.func.vmap(torch.func.jacfwd(render))(z)  # (n, P, K, d)
    return jacobian.norm(dim=-1).detach().cpu().numpy()


@validate_params(_JACOBIAN_CONSTRAINTS, prefer_skip_nested_validation=True)
def jacobian_interaction_score(
    estimator, X=None, *, Z=None, max_samples=64, random_state=None
):
    """How exclusively each output element depends on one slot.

    See :ref:`background-decoder-classes`.

    For every sample and output element (pixel channel or feature), the share of
    the largest slot in the slot-wise Jacobian norms ``||d f_p / d z_k||`` is
    rescaled so that 1 means the element depends on a single slot and 0 means
    all slots count equally; elements are averaged with weights equal to their
    total Jacobian norm (elements that depend on nothing do not count), then
    samples are averaged. Computed with :mod:`torch.func` on the decoder.

    Parameters
    ----------
    estimator : fitted slot estimator, or a Pipeline holding one
        The model whose decoder (``decoder_``) is measured.
    X : array-like or None
        Inputs, mapped to slots with ``transform`` (in a Pipeline, through
        the steps before the slot estimator first).
    Z : array-like of shape (n, K * d) or (n, K, d) or None
        Slots, used directly. Pass exactly one of X and Z.
    max_samples : int, default=64
        Evaluate at most this many samples (drawn at random).
    random_state : int, RandomState instance or None, default=None
        Seeds the draw of samples when there are more than ``max_samples``.

    Returns
    -------
    score : float in [0, 1]
    """
    norms = _slot_norms(estimator, X, Z, max_samples, random_state)
    n_slots = norms.shape[2]
    if n_slots == 1:
        return 1.0
    total = norms.sum(axis=2)
    share = norms.max(axis=2) / np.maximum(total, 1e-12)
    rescaled = (share - 1.0 / n_slots) / (1.0 - 1.0 / n_slots)
    weights = total / np.maximum(total.sum(axis=1, keepdims=True), 1e-12)
    return float(np.mean((rescaled * weights).sum(axis=1)))


@validate_params(_JACOBIAN_CONSTRAINTS, prefer_skip_nested_validation=True)
def compositional_contrast(
    estimator, X=None, *, Z=None, max_samples=64, random_state=None
):
    """Compositional contrast of the decoder (Brady et al. 2023).

    ``sum_p sum_{i<j} ||d f_p / d z_i|| ||d f_p / d z_j||`` per sample, averaged
    over samples: 0 exactly when every output element depends on at most one
    slot. Unlike :func:`jacobian_interaction_score` it is not normalized, so it
    scales with the decoder's gain.

    Parameters
    ----------
    estimator, X, Z, max_samples, random_state
        As in :func:`jacobian_interaction_score`.

    Returns
    -------
    contrast : float >= 0
    """
    norms = _slot_norms(estimator, X, Z, max_samples, random_state)
    total = norms.sum(axis=2)
    pairwise = 0.5 * (total**2 - (norms**2).sum(axis=2))
    return float(pairwise.sum(axis=1).mean())


# ------------------------------------------------------------------------ scorers


@validate_params(
    {
        "metric": [StrOptions({"readout", "identifiability", "reconstruction"})],
    },
    prefer_skip_nested_validation=True,
)
def make_slot_scorer(metric="readout", **options):
    """A scorer ``scorer(estimator, X, y) -> float`` for model selection.

    Parameters
    ----------
    metric : {"readout", "identifiability", "reconstruction"}, default="readout"
        - ``"readout"``: the estimator's own ``score(X, y)``: for a pipeline ending
          in a :class:`~compgen_sk.SlotProbe` fitted on the training folds, the
          accuracy / R² of reading the concepts of the scored (e.g. held-out
          combination) samples — the OOD readout score of :ref:`background-metrics`.
        - ``"identifiability"``: :func:`slot_identifiability_score` of the slots
          that the (first) slot estimator infers for X against y, readouts fit and
          evaluated within the scored samples; ``options`` go to that function.
        - ``"reconstruction"``: :func:`reconstruction_r2` of X.
    **options
        Keyword arguments of :func:`slot_identifiability_score` (``readout``,
        ``categorical``, ``matching``, ``random_state``); ``random_state``
        defaults to 0 here, so that cross-validated scores are reproducible.

    Returns
    -------
    scorer : callable

    Examples
    --------
    >>> from compgen_sk.metrics import make_slot_scorer
    >>> scorer = make_slot_scorer("identifiability", readout="linear")
    """
    if metric == "readout":
        if options:
            raise ValueError(
                f"metric='readout' takes no options, got {sorted(options)}."
            )
        return _ReadoutScorer()
    if metric == "identifiability":
        return _IdentifiabilityScorer(options)
    if metric == "reconstruction":
        if options:
            raise ValueError(
                f"metric='reconstruction' takes no options, got {sorted(options)}."
            )
        return _ReconstructionScorer()
    raise ValueError(
        "metric must be one of 'readout', 'identifiability', 'reconstruction'; "
        f"got {metric!r}."
    )


class _ReadoutScorer:
    def __call__(self, estimator, X, y=None):
        if y is None:
            raise ValueError("The readout scorer needs y (the concepts of X).")
        return float(estimator.score(X, y))

    def __repr__(self):
        return "make_slot_scorer('readout')"


class _IdentifiabilityScorer:
    def __init__(self, options):
        unknown = set(options) - {"readout", "categorical", "matching", "random_state"}
        if unknown:
            raise ValueError(
                f"Unknown identifiability options {sorted(unknown)}; use readout, "
                "categorical, matching, random_state."
            )
        # Seeded unless told otherwise, so that cross-validated scores repeat.
        self.options = {"random_state": 0, **options}

    def __call__(self, estimator, X, y=None):
        if y is None:
            raise ValueError(
                "The identifiability scorer needs y (latents or concepts)."
            )
        slot_estimator, X = _slot_estimator(estimator, X)
        slots = slot_estimator.transform(X)
        return slot_identifiability_score(
            y, slots, n_slots=slot_estimator.n_slots_, **self.options
        )

    def __repr__(self):
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"make_slot_scorer('identifiability'{', ' if options else ''}{options})"


class _ReconstructionScorer:
    def __call__(self, estimator, X, y=None):
        return reconstruction_r2(estimator, X)

    def __repr__(self):
        return "make_slot_scorer('reconstruction')"


#: The estimator's own score, e.g. a SlotProbe's readout on held-out combinations.
readout_scorer = make_slot_scorer("readout")
#: Slot identifiability of the scored samples with linear readouts.
identifiability_scorer = make_slot_scorer("identifiability", readout="linear")
#: Reconstruction R² of the scored samples.
reconstruction_scorer = make_slot_scorer("reconstruction")


def slot_scorers():
    """The named scorers, for multi-metric ``scoring=`` in one dict.

    Returns
    -------
    scorers : dict
        ``{"readout": ..., "identifiability": ..., "reconstruction_r2": ...}``.

    Examples
    --------
    >>> from compgen_sk.metrics import slot_scorers
    >>> sorted(slot_scorers())
    ['identifiability', 'readout', 'reconstruction_r2']
    """
    return {
        "readout": readout_scorer,
        "identifiability": identifiability_scorer,
        "reconstruction_r2": reconstruction_scorer,
    }
