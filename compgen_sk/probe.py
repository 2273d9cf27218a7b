"""SlotProbe: downstream readouts of ground-truth concepts from inferred slots."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    check_is_fitted,
    validate_data,
)

from ._objects import concept_kind, object_scores, per_sample_readouts
from ._readout import (
    concepts_from_table,
    fit_readout,
    match_slots,
    readout_score,
    score_matrix,
    split_slots,
)
from ._sklearn_compat import (
    HasMethods,
    Interval,
    StrOptions,
    _fit_context,
    check_sample_weight,
)

__all__ = ["SlotProbe"]


class SlotProbe(BaseEstimator):
    """Read ground-truth concepts out of inferred slots, matching slots first.

    With global matching, ``fit(slots, y)`` fits one readout per (inferred slot,
    concept) on part of the data, scores them on the rest, matches inferred slots
    to true slots with the Hungarian algorithm on the mean scores, and refits the
    matched readouts on all the data. ``predict`` reads every concept off its
    matched slot; ``score`` is the mean accuracy (categorical concepts) / R²
    (continuous ones) over concepts. Placed after a slot estimator in a
    :class:`~sklearn.pipeline.Pipeline` fitted on in-domain data, its score on
    held-out combinations is the OOD readout score of :ref:`background-metrics`::

        Pipeline([("inv", GenerativeInverter()), ("probe", SlotProbe())])
            .fit(X_id, concepts_id).score(X_ood, concepts_ood)

    Objects of one kind (two sprites) have no fixed order, so which slot holds
    which object changes from sample to sample: say so with
    ``matching="per_sample"`` (the datasets' ``exchangeable_slots`` field tells
    which data sets hold such objects). Every concept of the kind then has one
    readout shared by all inferred slots, fitted with slots assigned to
    objects in every sample (alternating fits and assignments); ``score``
    assigns each sample's slots to its objects by the lowest readout error
    against the ``y`` it is given. Choosing each sample's assignment with its
    true latents favours any representation a little: slots of pure noise
    score up to about 0.07 with two objects.

    For a single concept without slot matching, the plain idiom is
    ``make_pipeline(FrozenEstimator(fitted), StandardScaler(),
    LogisticRegression())``.

    Parameters
    ----------
    readout : {"linear", "mlp"} or estimator, default="linear"
        ``"linear"``: ridge regression / logistic regression on standardized
        slots (the downstream linear probe); ``"mlp"``: a small MLP; or any
        scikit-learn estimator (categorical concepts use it if it is a
        classifier, else logistic regression).
    n_slots : int or "auto", default="auto"
        Number of inferred slots in X. "auto" reads it from column names
        ``slot{k}_{j}`` (``set_output(transform="pandas")``) or else assumes as
        many inferred slots as y has true slots.
    categorical : bool or list of int, default=False
        For a numeric array ``y``: whether its latents are categorical
        (scored by accuracy) or continuous (R²), or the indices of the
        categorical ones within a slot. Concept tables say it by their
        dtypes; string arrays are class labels.
    matching : {"global", "per_sample"}, default="global"
        ``"global"``: one slot-to-object matching for all samples (slots with
        roles: left / right cell, animal / background). ``"per_sample"``: an
        assignment per sample, for exchangeable objects; needs true slots with
        the same concepts and at least as many inferred slots.
    match_fraction : float in (0, 1), default=1/3
        Share of the fit data held out to score readouts for the global
        matching.
    random_state : int, RandomState instance or None, default=None
        Seeds the matching split and MLP readouts.

    Attributes
    ----------
    per_sample_ : bool
        Whether slots are matched to objects per sample.
    matching_ : ndarray of shape (n_true_slots,)
        Inferred slot read for each true slot (-1 for a true slot that no
        inferred slot holds, when X has fewer slots than y: its concepts
        score 0). With per-sample matching, the inferred slots most often
        assigned to objects at fit, which ``predict`` reads (objects then come
        in no particular order).
    slot_scores_ : DataFrame of shape ``(n_slots_, n_true_slots)`` or None
        Held-out readout scores used for the global matching; None with
        per-sample matching.
    readouts_ : dict
        Fitted readout per concept name (one shared by the concepts of a kind
        with per-sample matching).
    concept_names_ : list of str
    concept_slots_ : ndarray of int
        The true slot of each concept.
    concept_classes_ : dict
        Labels seen at fit of every categorical concept (a y at ``score``
        with none of them raises; single unseen labels count as errors).
    categorical_ : ndarray of bool
        Whether each concept is categorical (scored by accuracy; a category not
        seen at fit counts as an error) or continuous (scored by R²); fixed at
        fit and used unchanged by ``score``, whatever the dtype of its ``y``.
    target_shape_ : tuple or None
        Shape of one sample of an array ``y`` at fit (``predict`` returns that
        layout); None for a concept table.
    true_slot_names_ : list of str
    n_slots_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    Examples
    --------
    >>> import numpy as np
    >>> from compgen_sk import SlotProbe
    >>> rng = np.random.default_rng(0)
    >>> classes = rng.integers(0, 3, size=(300, 2, 1))  # one class per slot
    >>> slots = np.concatenate([np.eye(3)[classes[:, 1, 0]],
    ...                         np.eye(3)[classes[:, 0, 0]]],
    ...                        axis=1) + 0.1 * rng.normal(size=(300, 6))
    >>> probe = SlotProbe(categorical=True, random_state=0).fit(slots, classes)
    >>> probe.matching_.tolist(), probe.score(slots, classes)
    ([1, 0], 1.0)
    """

    _parameter_constraints: dict = {
        "readout": [StrOptions({"linear", "mlp"}), HasMethods(["fit", "predict"])],
        "n_slots": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "categorical": ["boolean", list],
        "matching": [StrOptions({"global", "per_sample"})],
        "match_fraction": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        readout="linear",
        *,
        n_slots="auto",
        categorical=False,
        matching="global",
        match_fraction=1 / 3,
        random_state=None,
    ):
        self.readout = readout
        self.n_slots = n_slots
        self.categorical = categorical
        self.matching = matching
        self.match_fraction = match_fraction
        self.random_state = random_state

    def _slots(self, X, *, reset, n_true=None):
        if reset:
            self.n_slots_ = self._infer_n_slots(X, n_true)
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        return split_slots(X, self.n_slots_)

    def _infer_n_slots(self, X, n_true):
        if self.n_slots != "auto":
            return self.n_slots
        if isinstance(X, pd.DataFrame):
            prefixes = {str(c).split("_", 1)[0] for c in X.columns}
            if all(p.startswith("slot") for p in prefixes):
                return len(prefixes)
        return n_true

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit readouts, match inferred to true slots, refit the matched ones.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_slots * d)
            Inferred slots (e.g. a slot estimator's ``transform``).
        y : DataFrame or array-like
            Concepts: a table with columns ``"<slot>_<concept>"``, or latents
            (n,) or (n, 1) one concept, (n, K, m) m per true slot.

        Returns
        -------
        self : SlotProbe
        """
        concepts, true_slots = concepts_from_table(y, self.categorical)
        slots = self._slots(X, reset=True, n_true=len(true_slots))
        n = len(slots)
        if len(concepts[0].values) != n:
            raise ValueError(f"y has {len(concepts[0].values)} samples but X has {n}.")
        rng = check_random_state(self.random_state)
        seed = rng.randint(np.iinfo(np.int32).max)
        order = rng.permutation(n)
        every = np.arange(n)
        self.per_sample_ = self.matching == "per_sample"
        self._object_readouts = None
        if self.per_sample_:
            objects, assignment = per_sample_readouts(
                slots, concepts, true_slots, every, self.readout, seed
            )
            self._object_readouts = objects
            # The slots most often holding an object at fit: what predict reads.
            counts = np.bincount(assignment.ravel(), minlength=slots.shape[1])
            top = np.argsort(-counts, kind="stable")[: len(true_slots)]
            self.matching_ = np.sort(top)
            self.slot_scores_ = None
            models = dict(zip(objects.kinds, objects.models))
            self.readouts_ = {
                c.name: models[concept_kind(c.name, true_slots[c.slot])]
                for c in concepts
            }
        else:
            self._fit_global(slots, concepts, true_slots, order, seed)
        self.concept_names_ = [c.name for c in concepts]
        self.concept_slots_ = np.array([c.slot for c in concepts])
        self.categorical_ = np.array([c.categorical for c in concepts])
        self.concept_classes_ = {
            c.name: sorted(set(np.asarray(c.values).tolist()), key=repr)
            for c in concepts
            if c.categorical
        }
        self.target_shape_ = _target_shape(y)
        self.true_slot_names_ = true_slots
        return self

    def _fit_global(self, slots, concepts, true_slots, order, seed):
        n = len(slots)
        n_match = round(self.match_fraction * n)
        if n_match >= 2 and n - n_match >= 2:
            fit_index, eval_index = order[n_match:], order[:n_match]
        else:
            fit_index = eval_index = order
        matrix, _ = score_matrix(
            slots, concepts, fit_index, eval_index, self.readout, seed
        )
        self.matching_ = match_slots(matrix)
        self.slot_scores_ = pd.DataFrame(
            matrix,
            index=[f"slot{i}" for i in range(slots.shape[1])],
            columns=true_slots,
        )
        every = np.arange(n)
        self.readouts_ = {
            # A true slot without an inferred slot predicts its fit mean or
            # most frequent label, from no feature.
            c.name: fit_readout(
                slots[:, self.matching_[c.slot]]
                if self.matching_[c.slot] >= 0
                else np.zeros((n, 1)),
                c,
                every,
                self.readout,
                seed,
            )
            for c in concepts
        }

    def _features(self, slots, true_slot):
        """The inferred slot matched to ``true_slot`` (no feature if none)."""
        inferred = self.matching_[true_slot]
        return slots[:, inferred] if inferred >= 0 else np.zeros((len(slots), 1))

    def predict(self, X):
        """Read every concept off its matched inferred slot.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_slots * d)
            Inferred slots, with the features seen at ``fit``.

        Returns
        -------
        y_pred : DataFrame or ndarray
            In the layout of the ``y`` given to ``fit``.
        """
        check_is_fitted(self)
        slots = self._slots(X, reset=False)
        columns = {
            name: self.readouts_[name].predict(self._features(slots, slot))
            for name, slot in zip(self.concept_names_, self.concept_slots_)
        }
        if self.target_shape_ is None:
            return pd.DataFrame(columns)
        return np.stack(list(columns.values()), axis=1).reshape(
            len(slots), *self.target_shape_
        )

    def score(self, X, y, sample_weight=None):
        """Mean over concepts of accuracy (categorical) or R² (continuous).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_slots * d)
            Inferred slots, with the features seen at ``fit``.
        y : DataFrame or array-like
            Concepts in the layout given to ``fit``.
        sample_weight : array-like of shape (n_samples,) or None, default=None
            Weights of the samples in every concept's accuracy or R²; None
            weighs them equally.

        Returns
        -------
        score : float
            Mean score over concepts (the mean of :meth:`concept_scores`).
        """
        return float(np.mean(self.concept_scores(X, y, sample_weight).to_numpy()))

    def concept_scores(self, X, y, sample_weight=None):
        """Each concept's score: accuracy (categorical) or R² (continuous).

        Shows which concepts the slots hold and which they miss, where
        :meth:`score` gives their mean.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_slots * d)
            Inferred slots, with the features seen at ``fit``.
        y : DataFrame or array-like
            Concepts in the layout given to ``fit``.
        sample_weight : array-like of shape (n_samples,) or None, default=None
            Weights of the samples in every concept's accuracy or R²; None
            weighs them equally.

        Returns
        -------
        scores : pandas Series
            One score per concept, indexed by :attr:`concept_names_`.

        Examples
        --------
        >>> import numpy as np
        >>> from compgen_sk import SlotProbe
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(300, 2))
        >>> slots = np.c_[z[:, 0], rng.normal(size=300)]  # slot 1 holds noise
        >>> probe = SlotProbe(random_state=0).fit(slots, z)
        >>> probe.concept_scores(slots, z).round(1).tolist()
        [1.0, 0.0]
        """
        check_is_fitted(self)
        concepts, _ = concepts_from_table(y, self.categorical)
        names = [c.name for c in concepts]
        if names != self.concept_names_:
            raise ValueError(
                f"y has concepts {names}, but the probe was fitted on "
                f"{self.concept_names_}."
            )
        for concept, categorical in zip(concepts, self.categorical_):
            # The kind fixed at fit, whatever the dtype of the y scored now.
            concept.categorical = bool(categorical)
            if not categorical and concept.values.dtype.kind not in "biuf":
                raise ValueError(
                    f"Concept {concept.name!r} was continuous at fit, but y gives it "
                    "non-numeric values."
                )
            if categorical:
                known = self.concept_classes_[concept.name]
                if not set(np.asarray(concept.values).tolist()) & set(known):
                    raise ValueError(
                        f"Concept {concept.name!r} has none of the labels seen at "
                        f"fit ({known[:5]}…) in y; pass its labels as at fit."
                    )
        slots = self._slots(X, reset=False)
        if len(concepts[0].values) != len(slots):
            raise ValueError(
                f"y has {len(concepts[0].values)} samples but X has {len(slots)}."
            )
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, slots)
        if self.per_sample_:
            scores, _ = object_scores(
                self._object_readouts,
                slots,
                concepts,
                self.true_slot_names_,
                sample_weight,
            )
        else:
            scores = [
                readout_score(
                    c,
                    c.values,
                    self.readouts_[c.name].predict(self._features(slots, c.slot)),
                    sample_weight,
                )
                if self.matching_[c.slot] >= 0
                else 0.0
                for c in concepts
            ]
        return pd.Series(
            np.asarray(scores, dtype=np.float64), index=names, name="score"
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        return tags


def _target_shape(y):
    """None for a concept table; the shape of one sample for an array."""
    if isinstance(y, pd.DataFrame | pd.Series):
        return None
    return np.asarray(y).shape[1:]
