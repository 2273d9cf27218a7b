"""Cross-validation that holds out slot combinations, never single concept values."""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import check_random_state, indexable

from ._sklearn_compat import (
    GroupsConsumerMixin,
    Interval,
    safe_indexing,
    validate_parameter_constraints,
    validate_params,
)
from ._warnings import user_stacklevel

__all__ = ["HeldOutCombinations", "train_test_split_combinations"]

# Draws that may repeat an earlier split before a new one counts as impossible.
_MAX_DRAWS = 100
# Groups with more distinct combinations than this share of the samples warn.
_MAX_COMBINATION_SHARE = 0.5


def _concept_codes(groups, n_samples):
    """Integer codes (n, n_concepts) of a concept table (DataFrame or 2-D array)."""
    if groups is None:
        raise ValueError(
            "HeldOutCombinations needs groups: the per-sample concept values, e.g. "
            "groups=bunch.concepts (one column per slot and concept)."
        )
    if isinstance(groups, pd.Series):
        groups = groups.to_frame()
    if not isinstance(groups, pd.DataFrame):
        array = np.asarray(groups)
        if array.ndim != 2:
            raise ValueError(
                "groups must be a concept table of shape (n_samples, n_concepts), "
                f"got an array of shape {array.shape}."
            )
        groups = pd.DataFrame(array)
    if len(groups) != n_samples:
        raise ValueError(
            f"groups has {len(groups)} rows but X has {n_samples} samples."
        )
    if groups.shape[1] < 2:
        raise ValueError(
            "groups must have at least 2 concept columns: combinations of a single "
            f"concept cannot be held out (got {groups.shape[1]})."
        )
    if groups.isna().to_numpy().any():
        raise ValueError("groups contains missing values (NaN).")
    codes = np.stack(
        [pd.factorize(groups.iloc[:, j])[0] for j in range(groups.shape[1])], axis=1
    )
    n_combinations = len(np.unique(codes, axis=0))
    if n_combinations > _MAX_COMBINATION_SHARE * n_samples:
        warnings.warn(
            f"groups hold {n_combinations} distinct combinations among {n_samples} "
            "samples: with continuous or finely graded concept values nearly every "
            "sample is a combination of its own, and holding combinations out is "
            "close to a random split. Bin such columns first (e.g. pd.cut(column, "
            "4)) and pass the binned table as groups.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    return codes


def _held_out_combinations(codes, test_size, rng):
    """Pick whole combinations for the test part, keeping every value in training.

    Returns the boolean test mask over samples.
    """
    combos, inverse, counts = np.unique(
        codes, axis=0, return_inverse=True, return_counts=True
    )
    inverse = inverse.reshape(-1)
    # How many training combinations still contain each value of each concept.
    support = [np.bincount(combos[:, j]) for j in range(combos.shape[1])]
    target = math.ceil(test_size * len(codes))
    is_test = np.zeros(len(combos), dtype=bool)
    n_test = 0
    for c in rng.permutation(len(combos)):
        if n_test >= target:
            break
        values = combos[c]
        if all(support[j][v] > 1 for j, v in enumerate(values)):
            is_test[c] = True
            n_test += counts[c]
            for j, v in enumerate(values):
                support[j][v] -= 1
    if n_test == 0:
        raise ValueError(
            "No valid held-out-combination split exists: every combination holds a "
            "concept value that occurs in no other combination, so holding it out "
            "would hide that value from training. Use more samples, fewer concepts "
            "or coarser concept bins."
        )
    return is_test[inverse]


class HeldOutCombinations(GroupsConsumerMixin, BaseCrossValidator):
    """Shuffle-split cross-validator that tests on slot combinations never trained on.

    ``groups`` are the per-sample concept values (a table such as
    ``Bunch.concepts``, one column per slot and concept). Each split moves whole
    combinations (rows of distinct concept values) to the test part, in random
    order, until it holds at least ``test_size`` of the samples, and only moves a
    combination if each of its concept values still occurs in the training part.
    So every test combination is absent from training while every single concept
    value in the test part was seen in training: compositional generalization by
    construction. Splits are drawn at random and are all distinct, though test
    parts of different splits may overlap (as in
    :class:`~sklearn.model_selection.ShuffleSplit`). A split that repeats an
    earlier one is drawn again, up to 100 times; if that finds no new split
    (the combinations admit fewer than ``n_splits`` distinct ones, or nearly
    all draws repeat), ``split`` raises before yielding any fold.

    Parameters
    ----------
    n_splits : int, default=5
        Number of splits.
    test_size : float in (0, 1), default=0.25
        Target fraction of samples in the test part (reached or exceeded by the
        last combination moved, unless no further combination can move).
    random_state : int, RandomState instance or None, default=None
        Controls the order in which combinations are considered.

    Examples
    --------
    >>> import numpy as np
    >>> from compgen_sk.model_selection import HeldOutCombinations
    >>> concepts = np.array([[a, b] for a in range(3) for b in range(3)] * 2)
    >>> cv = HeldOutCombinations(n_splits=2, test_size=0.3, random_state=0)
    >>> for train, test in cv.split(concepts, groups=concepts):
    ...     seen = {tuple(c) for c in concepts[train]}
    ...     assert not seen & {tuple(c) for c in concepts[test]}
    """

    _parameter_constraints = {
        "n_splits": [Interval(Integral, 1, None, closed="left")],
        "test_size": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_splits=5, *, test_size=0.25, random_state=None):
        self.n_splits = n_splits
        self.test_size = test_size
        self.random_state = random_state

    def _validate(self):
        validate_parameter_constraints(
            self._parameter_constraints,
            {name: getattr(self, name) for name in self._parameter_constraints},
            caller_name=type(self).__name__,
        )

    def split(self, X, y=None, groups=None):
        """Generate indices to split data into training and test set.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Training data (only its length is used).
        y : array-like, default=None
            Ignored.
        groups : DataFrame or array-like of shape (n_samples, n_concepts)
            Concept values of each sample.

        Yields
        ------
        train, test : ndarray
            Indices of the training and test parts.
        """
        self._validate()
        n_samples = len(X) if not hasattr(X, "shape") else X.shape[0]
        codes = _concept_codes(groups, n_samples)
        rng = check_random_state(self.random_state)
        indices = np.arange(n_samples)
        # All splits are drawn before the first is yielded, so that too few
        # distinct splits fail at once, not after some folds have trained.
        masks, seen = [], set()
        for _ in range(self.n_splits):
            for _ in range(_MAX_DRAWS):
                is_test = _held_out_combinations(codes, self.test_size, rng)
                key = np.packbits(is_test).tobytes()
                if key not in seen:
                    break
            else:
                raise ValueError(
                    f"HeldOutCombinations found only {len(masks)} distinct splits "
                    f"of these groups in {_MAX_DRAWS} draws, fewer than "
                    f"n_splits={self.n_splits}: further splits would repeat folds. "
                    f"Lower n_splits to at most {len(masks)}, or change test_size."
                )
            seen.add(key)
            masks.append(is_test)
        for is_test in masks:
            yield indices[~is_test], indices[is_test]

    def _iter_test_indices(self, X=None, y=None, groups=None):
        for _, test in self.split(X, y, groups):
            yield test

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splits.

        Parameters
        ----------
        X, y, groups : object
            Ignored; present for API consistency.

        Returns
        -------
        n_splits : int
        """
        return self.n_splits


@validate_params(
    {
        "test_size": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def train_test_split_combinations(*arrays, concepts, test_size=0.25, random_state=None):
    """Split arrays into a training part and a test part of held-out combinations.

    The one-shot version of :class:`HeldOutCombinations`: the test part holds only
    concept combinations absent from training, and every concept value in it occurs
    in training.

    Parameters
    ----------
    *arrays : sequence of indexables of the same length
        Arrays, DataFrames or lists to split.
    concepts : DataFrame or array-like of shape (n_samples, n_concepts)
        Concept values of each sample.
    test_size : float in (0, 1), default=0.25
        Target fraction of samples in the test part, as in
        :class:`HeldOutCombinations`.
    random_state : int, RandomState instance or None, default=None
        Controls which combinations are held out; an int gives the same split
        on every call.

    Returns
    -------
    splitting : list
        ``[a_train, a_test, b_train, b_test, ...]`` as
        :func:`~sklearn.model_selection.train_test_split` returns.

    Examples
    --------
    >>> from compgen_sk.datasets import make_digit_compositions
    >>> from compgen_sk.model_selection import train_test_split_combinations
    >>> d = make_digit_compositions(200, random_state=0)
    >>> X_tr, X_te, c_tr, c_te = train_test_split_combinations(
    ...     d.images, d.concepts, concepts=d.concepts, random_state=0)
    >>> seen = set(map(tuple, c_tr.to_numpy()))
    >>> any(tuple(row) in seen for row in c_te.to_numpy())
    False
    """
    if not arrays:
        raise ValueError("At least one array is required.")
    arrays = indexable(*arrays)
    cv = HeldOutCombinations(n_splits=1, test_size=test_size, random_state=random_state)
    train, test = next(cv.split(arrays[0], groups=concepts))
    return [
        part
        for a in arrays
        for part in (safe_indexing(a, train), safe_indexing(a, test))
    ]
