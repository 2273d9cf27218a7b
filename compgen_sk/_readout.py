"""Reading concepts out of inferred slots, and matching slots to true slots.

The readouts of :class:`compgen_sk.SlotProbe` (which
:func:`compgen_sk.metrics.slot_identifiability_score` fits too): one readout
per (inferred slot, concept), a score matrix of inferred slots x true slots,
and the Hungarian matching on it.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_array

from ._concepts import (
    FLOAT32_MAX,
    check_unique_columns,
    group_columns,
    is_categorical,
)

READOUTS = ("linear", "mlp")
_MLP_HIDDEN = (64,)
_MLP_MAX_ITER = 500


@dataclass
class Concept:
    """One ground-truth concept: its true slot, name, values and kind."""

    slot: int
    name: str
    values: np.ndarray
    categorical: bool


def concepts_from_table(y, categorical=False):
    """Concepts of ``y`` and the names of its true slots.

    ``y`` is a DataFrame whose columns ``"<slot>_<concept>"`` group by true slot
    (categorical / object / bool columns are categorical), or an array: 1-D or
    (n, 1) (one concept of one slot), or 3-D (n, K, m) (m latents of each of K
    true slots). A 2-D array of several columns is refused: it could be one
    latent per slot or several latents of fewer slots. For numeric arrays,
    ``categorical`` is a bool or the latent indices (within a slot) that are
    categorical; string or object arrays are class labels.
    """
    if isinstance(y, pd.Series):
        y = y.to_frame()
    if isinstance(y, pd.DataFrame):
        if y.isna().to_numpy().any():
            raise ValueError("y contains missing values (NaN).")
        check_unique_columns(y)
        groups = group_columns(y.columns)
        concepts = [
            Concept(
                slot,
                str(y.columns[j]),
                y.iloc[:, j].to_numpy(),
                is_categorical(y.iloc[:, j]),
            )
            for slot, cols in enumerate(groups.values())
            for j in cols
        ]
        return concepts, list(groups)
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None.")
    array = np.asarray(y)
    if array.ndim == 2 and array.shape[1] > 1:
        n, width = array.shape
        raise ValueError(
            f"y is a 2-D array of {width} columns, which could be one latent of "
            f"each of {width} true slots or several latents of fewer slots; say "
            f"which: y[:, :, None] for one latent per slot, y.reshape({n}, K, m) "
            "for K objects of m latents each, or a concept table (columns "
            '"<slot>_<concept>").'
        )
    if array.ndim in (1, 2):
        array = array.reshape(len(array), 1, 1)
    elif array.ndim != 3:
        raise ValueError(
            "y must be a concept table, or latents of shape (n,), (n, 1) or "
            f"(n, K, m); got shape {array.shape}."
        )
    if array.dtype.kind == "c":
        raise ValueError("Complex data not supported as y.")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError("y contains NaN or infinity.")
    labels = array.dtype.kind not in "biuf"  # strings or objects: class labels
    n_latents = array.shape[2]
    if labels:
        flags = [True] * n_latents
    elif isinstance(categorical, bool | np.bool_):
        flags = [bool(categorical)] * n_latents
    else:
        indices = list(categorical or [])
        bad = [
            i for i in indices if not isinstance(i, Integral) or not 0 <= i < n_latents
        ]
        if bad:
            raise ValueError(
                f"categorical must list latent indices in [0, {n_latents}); got {bad}."
            )
        flags = [i in indices for i in range(n_latents)]
    concepts = [
        Concept(k, f"slot{k}_{j}", array[:, k, j], flags[j])
        for k in range(array.shape[1])
        for j in range(n_latents)
    ]
    return concepts, [f"slot{k}" for k in range(array.shape[1])]


def split_slots(slots, n_slots):
    """Inferred slots as (n, K', d) from (n, K', d) or (n, K' * d) with n_slots."""
    slots = np.asarray(slots)
    if slots.ndim == 3:
        if n_slots is not None and n_slots != slots.shape[1]:
            raise ValueError(
                f"n_slots={n_slots} contradicts slots of shape {slots.shape}."
            )
        return slots
    if slots.ndim != 2:
        raise ValueError(
            f"slots must be (n, n_slots, d) or (n, n_slots * d); got {slots.shape}."
        )
    if n_slots is None:
        raise ValueError(
            "slots are flat (n, n_slots * d): pass n_slots to cut them into slots."
        )
    if isinstance(n_slots, bool) or not isinstance(n_slots, Integral) or n_slots < 1:
        raise ValueError(f"n_slots must be a positive integer, got {n_slots!r}.")
    if slots.shape[1] % n_slots:
        raise ValueError(
            f"n_slots={n_slots} does not divide the {slots.shape[1]} slot features."
        )
    return slots.reshape(len(slots), n_slots, -1)


def check_slots(Z, n_slots, slot_dim, *, estimator=None):
    """Slot arrays (n, K * d) or (n, K, d), checked and returned as (n, K, d)."""
    K, d = n_slots, slot_dim
    Z = check_array(
        Z,
        allow_nd=True,
        dtype=[np.float32, np.float64],
        input_name="Z",
        estimator=estimator,
    )
    if Z.shape[1:] not in ((K * d,), (K, d)):
        raise ValueError(
            f"Z must have shape (n, {K * d}) or (n, {K}, {d}) for {K} slots of "
            f"dimension {d}; got {Z.shape}."
        )
    if Z.size and float(np.abs(Z).max()) > FLOAT32_MAX:
        raise ValueError(
            f"Z has values up to {float(np.abs(Z).max()):.3g}, beyond the float32 "
            f"range (±{FLOAT32_MAX:.3g}) that the decoders compute in."
        )
    return Z.reshape(len(Z), K, d)


def make_readout(readout, categorical, random_state=None):
    """An unfitted readout for one concept: scaled inputs, then a linear model or
    small MLP (classifier for categorical concepts), or a clone of an estimator.

    A user estimator serves continuous concepts; categorical concepts use it if it
    is a classifier, else logistic regression.
    """
    if isinstance(readout, str):
        if readout == "linear":
            model = (
                LogisticRegression(max_iter=1000) if categorical else Ridge(alpha=1e-3)
            )
        elif readout == "mlp":
            kind = MLPClassifier if categorical else MLPRegressor
            model = kind(
                hidden_layer_sizes=_MLP_HIDDEN,
                max_iter=_MLP_MAX_ITER,
                random_state=random_state,
            )
        else:
            raise ValueError(
                f"readout must be one of {READOUTS} or an estimator, got {readout!r}."
            )
        return make_pipeline(StandardScaler(), model)
    if not hasattr(readout, "fit") or not hasattr(readout, "predict"):
        raise ValueError(
            f"readout must be one of {READOUTS} or a scikit-learn estimator, got "
            f"{readout!r}."
        )
    if categorical and not is_classifier(readout):
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return clone(readout)


def readout_score(concept, truth, prediction, sample_weight=None):
    """Accuracy for a categorical concept, R² for a continuous one."""
    if concept.categorical:
        # Python equality per sample: labels of another type than predicted
        # (1.0 for 1) match, and labels never predicted count as errors.
        hits = [t == p for t, p in zip(np.asarray(truth).tolist(), prediction.tolist())]
        return float(np.average(np.asarray(hits, dtype=float), weights=sample_weight))
    if np.var(truth) == 0:
        return 1.0 if np.allclose(truth, prediction) else 0.0
    return float(r2_score(truth, prediction, sample_weight=sample_weight))


def fit_readout(slot_features, concept, index, readout, random_state):
    """A readout fitted on the rows ``index``; None if the concept is constant
    there (then it predicts that constant)."""
    target = concept.values[index]
    if concept.categorical and len(np.unique(target)) < 2:
        return _Constant(target[0])
    model = make_readout(readout, concept.categorical, random_state)
    with fixed_budget(readout):
        return model.fit(slot_features[index], target)


@contextlib.contextmanager
def fixed_budget(readout):
    """Fit a readout in this block: the built-in ones (``readout`` a string)
    stop at a fixed budget by design, so their ConvergenceWarning is silenced;
    a user's own estimator keeps its warnings."""
    with warnings.catch_warnings():
        if isinstance(readout, str):
            warnings.simplefilter("ignore", ConvergenceWarning)
        yield


class _Constant:
    def __init__(self, value):
        self.value = value

    def predict(self, X):
        return np.full(len(X), self.value)


def score_matrix(slots, concepts, fit_index, eval_index, readout, random_state=None):
    """Scores of every (inferred slot, true slot) pair and per-concept details.

    Returns the (K', K) matrix of the mean score over the true slot's concepts,
    and a DataFrame with one row per (inferred slot, concept).
    """
    n_inferred = slots.shape[1]
    n_true = 1 + max(c.slot for c in concepts)
    matrix = np.zeros((n_inferred, n_true))
    counts = np.zeros(n_true)
    rows = []
    for concept in concepts:
        counts[concept.slot] += 1
        for i in range(n_inferred):
            model = fit_readout(slots[:, i], concept, fit_index, readout, random_state)
            prediction = model.predict(slots[eval_index, i])
            score = readout_score(concept, concept.values[eval_index], prediction)
            matrix[i, concept.slot] += score
            rows.append(
                {
                    "inferred_slot": i,
                    "true_slot": concept.slot,
                    "concept": concept.name,
                    "categorical": concept.categorical,
                    "score": score,
                }
            )
    return matrix / counts, pd.DataFrame(rows)


def match_slots(matrix):
    """Hungarian matching that maximizes the total score.

    Returns, for every true slot, its inferred slot (-1 if there are fewer
    inferred than true slots and it is left without one).
    """
    inferred, true = linear_sum_assignment(matrix, maximize=True)
    matching = np.full(matrix.shape[1], -1)
    matching[true] = inferred
    return matching
