"""Per-sample matching: reading exchangeable objects out of slots.

When the true slots are objects of one kind (two sprites), which inferred slot
holds which object may change from image to image, so one slot-to-object matching
per data set under-reports. Here every concept of the kind ("x", "hue", …) has one
readout shared by all inferred slots, and the slots are assigned to the objects in
every sample by the lowest total readout error. Readouts and assignments are found
by alternation: fit the readouts on the assigned (slot, object) pairs, re-assign,
until (almost) no assignment changes (:ref:`background-metrics`). Readouts with
``warm_start`` (the built-in MLPs) continue from the previous round's weights.

Used by :class:`compgen_sk.SlotProbe` (``matching="per_sample"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_random_state

from ._assignment import best_assignment
from ._readout import Concept, fit_readout, fixed_budget, readout_score

# Alternation rounds of fit and assignment at most; usually 2-4 are needed.
MAX_ROUNDS = 8
# The alternation stops once at most this share of samples change assignment.
STABLE_SHARE = 0.002


def concept_kind(name, slot_name):
    """``"x"`` for the column ``"slot0_x"`` of slot ``"slot0"``."""
    return name[len(slot_name) + 1 :] if name.startswith(slot_name + "_") else name


def object_values(concepts, true_slots):
    """Per concept kind, the values of every true slot, ``(n, K)``.

    Raises ValueError unless every true slot has the same concepts, of the same
    kind (continuous or categorical): only then can one readout serve them all.

    Returns
    -------
    kinds : list of str
    categorical : list of bool
    values : list of ndarray of shape (n, K)
    """
    by_slot = [[] for _ in true_slots]
    for concept in concepts:
        by_slot[concept.slot].append(concept)
    for k, slot in enumerate(by_slot):  # concepts by name, whatever the order
        slot.sort(key=lambda c, k=k: concept_kind(c.name, true_slots[k]))
    signatures = [
        [(concept_kind(c.name, true_slots[k]), c.categorical) for c in slot]
        for k, slot in enumerate(by_slot)
    ]
    for k, signature in enumerate(signatures[1:], start=1):
        if signature != signatures[0]:
            raise ValueError(
                "Per-sample matching needs true slots of one kind (objects with "
                f"the same concepts): {true_slots[0]} has {signatures[0]} but "
                f"{true_slots[k]} has {signature}. Use matching='global'."
            )
    kinds = [kind for kind, _ in signatures[0]]
    categorical = [flag for _, flag in signatures[0]]
    values = [
        np.stack([np.asarray(slot[j].values) for slot in by_slot], axis=1)
        for j in range(len(kinds))
    ]
    return kinds, categorical, values


@dataclass
class ObjectReadouts:
    """One fitted readout per concept kind, shared by all inferred slots."""

    kinds: list
    categorical: list
    models: list
    scales: list  # variance of each continuous kind at fit (cost units)

    def cost(self, slots, values):
        """Cost ``(n, K', K)`` of reading every object from every slot: squared
        error over the kind's variance (continuous) or 1 - probability of the
        true label (categorical), summed over kinds."""
        n, n_inferred, _ = slots.shape
        flat = slots.reshape(n * n_inferred, -1)
        total = np.zeros((n, n_inferred, values[0].shape[1]))
        for model, categorical, scale, truth in zip(
            self.models, self.categorical, self.scales, values
        ):
            if categorical:
                total += _label_cost(model, flat, truth, n, n_inferred)
            else:
                pred = np.asarray(model.predict(flat), dtype=np.float64)
                pred = pred.reshape(n, n_inferred, 1)
                total += (pred - np.asarray(truth, dtype=np.float64)[:, None]) ** 2 / (
                    scale
                )
        return total

    def predict(self, slots):
        """Predictions of every kind from every inferred slot, each ``(n, K')``."""
        n, n_inferred, _ = slots.shape
        flat = slots.reshape(n * n_inferred, -1)
        return [np.asarray(m.predict(flat)).reshape(n, n_inferred) for m in self.models]


def _label_cost(model, flat, truth, n, n_inferred):
    if not hasattr(model, "predict_proba"):
        pred = np.asarray(model.predict(flat)).reshape(n, n_inferred, 1)
        return (pred != np.asarray(truth)[:, None]).astype(float)
    proba = model.predict_proba(flat).reshape(n, n_inferred, -1)
    index = {label: k for k, label in enumerate(np.asarray(model.classes_).tolist())}
    codes = np.array([index.get(v, -1) for v in np.asarray(truth).ravel().tolist()])
    codes = codes.reshape(truth.shape)  # (n, K)
    picked = np.take_along_axis(
        proba, np.maximum(codes, 0)[:, None, :].repeat(n_inferred, axis=1), axis=2
    )
    picked[np.broadcast_to(codes[:, None, :] < 0, picked.shape)] = 0.0
    return 1.0 - picked


def _pairs(slots, values, assignment):
    """Rows (slot features, target) of the assigned (slot, object) pairs."""
    n, n_true = assignment.shape
    rows = np.repeat(np.arange(n), n_true)
    features = slots[rows, assignment.ravel()]
    return features, [v.ravel() for v in values]


def _fit_kinds(features, targets, kinds, categorical, readout, seed, previous=None):
    """One readout per kind on the pooled pairs; the previous round's models
    continue from their weights where they can (``warm_start``)."""
    models, scales = [], []
    for j, (kind, flag) in enumerate(zip(kinds, categorical)):
        concept = Concept(0, kind, targets[j], flag)
        model = None if previous is None else previous.models[j]
        # Only the built-in readouts (MLPs) go on training from their weights;
        # warm_start means something else to other estimators (forests).
        if isinstance(readout, str) and _can_continue(model, targets[j], flag):
            model[-1].set_params(warm_start=True)
            with fixed_budget(readout):
                model.fit(features, targets[j])
        else:
            every = np.arange(len(features))
            model = fit_readout(features, concept, every, readout, seed)
        models.append(model)
        scales.append(
            None if flag else max(float(np.var(targets[j].astype(float))), 1e-12)
        )
    return ObjectReadouts(kinds, categorical, models, scales)


def _can_continue(model, target, categorical):
    """Whether a fitted pipeline can go on training from its weights on
    ``target`` (it has ``warm_start``, and a classifier knows all the labels)."""
    if model is None or not hasattr(model, "steps"):
        return False
    if "warm_start" not in model[-1].get_params():
        return False
    if categorical:
        known = set(np.asarray(model.classes_).tolist())
        return set(np.unique(target).tolist()) == known
    return True


def fit_object_readouts(slots, values, kinds, categorical, readout, random_state):
    """Alternate readout fits and per-sample assignments until they agree.

    The first fit pairs every slot with every object, so that it favours no
    assignment; every later fit uses the pairs of the last assignment.

    Parameters
    ----------
    slots : ndarray of shape (n, K', d)
    values : list of ndarray of shape (n, K)
        Per kind, the true values of every object.
    kinds, categorical : list
        Names and kinds of the concepts, as from :func:`object_values`.
    readout : str or estimator
        As in :func:`compgen_sk._readout.make_readout`.
    random_state : int
        Seeds the first round's draw of pairs and MLP readouts.

    Returns
    -------
    readouts : ObjectReadouts
    assignment : ndarray of shape (n, K)
        The last assignment of the fit samples.
    """
    n, n_inferred, _ = slots.shape
    n_true = values[0].shape[1]
    if n_inferred < n_true:
        raise ValueError(
            f"Per-sample matching needs at least as many inferred slots as "
            f"objects; got {n_inferred} inferred slots for {n_true} objects."
        )
    rng = np.random.default_rng(random_state)
    # Round 0: as many pairs as a later round, drawn from all (slot, object) pairs.
    samples = np.repeat(np.arange(n), n_true)
    inferred = rng.integers(n_inferred, size=len(samples))
    objects = rng.integers(n_true, size=len(samples))
    readouts = _fit_kinds(
        slots[samples, inferred],
        [v[samples, objects] for v in values],
        kinds,
        categorical,
        readout,
        random_state,
    )
    assignment = None
    for _ in range(MAX_ROUNDS):
        new = best_assignment(readouts.cost(slots, values))
        if assignment is not None:
            changed = np.mean(np.any(new != assignment, axis=1))
            if changed <= STABLE_SHARE:
                break
        assignment = new
        features, targets = _pairs(slots, values, assignment)
        readouts = _fit_kinds(
            features, targets, kinds, categorical, readout, random_state, readouts
        )
    return readouts, assignment


def object_scores(readouts, slots, concepts, true_slots, sample_weight=None):
    """Score of every concept, its slot assigned to its object per sample.

    Each sample's slots are assigned to its objects by the lowest total readout
    cost against the true values; each concept is then scored (R² or accuracy)
    on the predictions of its object's slot.

    Returns
    -------
    scores : list of float
        One per concept, in the order of ``concepts``.
    assignment : ndarray of shape (n, K)
    """
    kinds, _, values = object_values(concepts, true_slots)
    if kinds != readouts.kinds:
        raise ValueError(
            f"y has object concepts {kinds}, but the readouts were fitted on "
            f"{readouts.kinds}."
        )
    assignment = best_assignment(readouts.cost(slots, values))
    predictions = dict(zip(readouts.kinds, readouts.predict(slots)))
    rows = np.arange(len(slots))
    scores = []
    for concept in concepts:
        kind = concept_kind(concept.name, true_slots[concept.slot])
        prediction = predictions[kind][rows, assignment[:, concept.slot]]
        scores.append(readout_score(concept, concept.values, prediction, sample_weight))
    return scores, assignment


def per_sample_readouts(slots, concepts, true_slots, index, readout, random_state):
    """Readouts shared by slots, fitted on the samples ``index`` with per-sample
    assignments, and the last assignments of those samples."""
    kinds, categorical, values = object_values(concepts, true_slots)
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    return fit_object_readouts(
        slots[index], [v[index] for v in values], kinds, categorical, readout, seed
    )
