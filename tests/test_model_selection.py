"""Tests for :mod:`compgen_sk.model_selection`: held-out-combination splits are
compositional by construction, work in scikit-learn's model selection with metadata
routing off and on, and fail clearly where no such split exists."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, cross_validate

from compgen_sk.datasets import make_additive, make_digit_compositions
from compgen_sk.model_selection import (
    HeldOutCombinations,
    train_test_split_combinations,
)

# Hand-made tables of a few rows hold nearly as many combinations as rows,
# which warns (tested on its own below); these tests are about something else.
few_rows = pytest.mark.filterwarnings(
    "ignore:groups hold .* distinct combinations:UserWarning"
)


@pytest.fixture(scope="module")
def digit_data():
    """Images, a regression target and the per-slot digit classes as groups."""
    bunch = make_digit_compositions(
        200, n_classes=5, digit_size=8, jitter=1, random_state=0
    )
    return bunch.data, bunch.latents[:, :, 3], bunch.concepts


def codes_of(groups):
    table = groups if isinstance(groups, pd.DataFrame) else pd.DataFrame(groups)
    return np.stack(
        [pd.factorize(table.iloc[:, j])[0] for j in range(table.shape[1])], axis=1
    )


def movable_combinations(codes, train):
    """Training combinations that could still move to the test part: each of
    their values occurs in another training combination."""
    combos = np.unique(codes[train], axis=0)
    movable = []
    for combo in combos:
        if all((combos[:, j] == value).sum() > 1 for j, value in enumerate(combo)):
            movable.append(tuple(combo))
    return movable


def assert_compositional_split(groups, train, test, test_size):
    """The properties every held-out-combination split must have."""
    codes = codes_of(groups)
    n_samples = len(codes)
    np.testing.assert_array_equal(
        np.sort(np.concatenate([train, test])), np.arange(n_samples)
    )
    assert len(test) > 0 and len(train) > 0
    train_rows = set(map(tuple, codes[train]))
    trained_on = train_rows & set(map(tuple, codes[test]))
    assert not trained_on, f"test combinations {trained_on} are trained on"
    for j in range(codes.shape[1]):
        unseen = set(codes[test, j]) - set(codes[train, j])
        assert not unseen, f"concept {j}: test values {unseen} never seen in training"
    if len(test) < math.ceil(test_size * n_samples):
        assert not movable_combinations(codes, train), (
            "test part below test_size although a combination could still move"
        )


# ----------------------------------------------------------------------------------
# The splitter on its own
# ----------------------------------------------------------------------------------


def test_every_fold_tests_unseen_combinations_of_seen_values(digit_data):
    X, _, concepts = digit_data
    cv = HeldOutCombinations(n_splits=4, test_size=0.3, random_state=0)
    folds = list(cv.split(X, groups=concepts))
    assert len(folds) == 4
    for train, test in folds:
        assert_compositional_split(concepts, train, test, 0.3)
        assert len(test) >= 0.3 * len(X)


def test_splits_are_drawn_independently_and_reproducibly(digit_data):
    X, _, concepts = digit_data
    cv = HeldOutCombinations(n_splits=3, random_state=0)
    first = [test for _, test in cv.split(X, groups=concepts)]
    second = [test for _, test in cv.split(X, groups=concepts)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])
    other = next(HeldOutCombinations(1, random_state=1).split(X, groups=concepts))[1]
    assert not np.array_equal(other, first[0])


def test_array_groups_give_the_same_splits_as_the_dataframe(digit_data):
    X, _, concepts = digit_data
    cv = HeldOutCombinations(n_splits=3, random_state=0)
    from_frame = list(cv.split(X, groups=concepts))
    from_array = list(cv.split(X, groups=concepts.to_numpy()))
    for (train_a, test_a), (train_b, test_b) in zip(from_frame, from_array):
        np.testing.assert_array_equal(train_a, train_b)
        np.testing.assert_array_equal(test_a, test_b)


def test_test_size_sets_the_test_fraction(digit_data):
    X, _, concepts = digit_data
    for test_size in (0.1, 0.25, 0.5):
        cv = HeldOutCombinations(n_splits=3, test_size=test_size, random_state=0)
        for _, test in cv.split(X, groups=concepts):
            # Whole combinations move, so the target is reached, then overshot by
            # at most one combination.
            largest = concepts.value_counts().max()
            assert test_size * len(X) <= len(test) < test_size * len(X) + largest


def test_get_n_splits_returns_n_splits():
    cv = HeldOutCombinations(n_splits=7)
    assert cv.get_n_splits() == 7
    assert cv.get_n_splits(np.zeros((4, 2)), groups=np.zeros((4, 2))) == 7


def test_repr_shows_the_parameters():
    cv = HeldOutCombinations(n_splits=3, test_size=0.3, random_state=0)
    assert repr(cv) == "HeldOutCombinations(n_splits=3, random_state=0, test_size=0.3)"


def test_continuous_concept_bins_from_make_additive_split_compositionally():
    bunch = make_additive(300, n_slots=2, support="random", split="id", random_state=0)
    cv = HeldOutCombinations(n_splits=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # binned concepts: no warning
        folds = list(cv.split(bunch.data, groups=bunch.concepts))
    for train, test in folds:
        assert_compositional_split(bunch.concepts, train, test, 0.25)


# ----------------------------------------------------------------------------------
# Continuous groups warn: bin them first
# ----------------------------------------------------------------------------------

BIN_FIRST = (
    r"groups hold {} distinct combinations among {} samples.*"
    r"Bin such columns first"
)


def test_continuous_groups_warn_to_bin_them_first():
    bunch = make_additive(200, n_slots=2, random_state=0)  # float concepts
    assert (bunch.concepts.dtypes == np.float64).all()
    cv = HeldOutCombinations(n_splits=1, random_state=0)
    # Every sample is a combination of its own, so no value can be held out.
    with pytest.warns(UserWarning, match=BIN_FIRST.format(200, 200)):
        with pytest.raises(ValueError, match="No valid"):
            next(cv.split(bunch.data, groups=bunch.concepts))
    with pytest.warns(UserWarning, match=BIN_FIRST.format(200, 200)):
        with pytest.raises(ValueError, match="No valid"):
            train_test_split_combinations(
                bunch.data, concepts=bunch.concepts, random_state=0
            )


def test_binned_continuous_groups_split_without_a_warning():
    bunch = make_additive(200, n_slots=2, random_state=0)
    binned = bunch.concepts.apply(lambda column: pd.cut(column, 4))
    cv = HeldOutCombinations(n_splits=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folds = list(cv.split(bunch.data, groups=binned))
        train_test_split_combinations(bunch.data, concepts=binned, random_state=0)
    for train, test in folds:
        assert_compositional_split(binned, train, test, 0.25)


def test_finely_graded_groups_warn_but_still_split():
    groups = np.random.default_rng(0).integers(0, 12, size=(120, 2))
    n_combinations = len(np.unique(groups, axis=0))
    assert n_combinations > 60
    with pytest.warns(UserWarning, match=BIN_FIRST.format(n_combinations, 120)):
        train, test = split_once(HeldOutCombinations(random_state=0), groups, groups)
    assert_compositional_split(groups, train, test, 0.25)


@pytest.mark.parametrize(("n_distinct", "warns"), [(5, False), (6, True)])
def test_the_warning_starts_above_half_as_many_combinations_as_samples(
    n_distinct, warns
):
    # 10 samples: (0, 0) repeated, then distinct combinations of seen values.
    rows = [[0, 0], [0, 1], [1, 0], [1, 1], [1, 2], [2, 1]][:n_distinct]
    groups = np.array(rows + [[0, 0]] * (10 - n_distinct))
    assert len(np.unique(groups, axis=0)) == n_distinct
    cv = HeldOutCombinations(n_splits=1, random_state=0)
    if warns:
        with pytest.warns(UserWarning, match=BIN_FIRST.format(n_distinct, 10)):
            split_once(cv, groups, groups)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            split_once(cv, groups, groups)


def test_the_warning_points_at_the_callers_line():
    groups = np.random.default_rng(0).integers(0, 12, size=(120, 2))
    with pytest.warns(UserWarning, match="Bin such columns first") as record:
        next(HeldOutCombinations(random_state=0).split(groups, groups=groups))
    assert record[0].filename == __file__
    with pytest.warns(UserWarning, match="Bin such columns first") as record:
        train_test_split_combinations(groups, concepts=groups, random_state=0)
    assert record[0].filename == __file__


# ----------------------------------------------------------------------------------
# In scikit-learn's model selection, with metadata routing off and on
# ----------------------------------------------------------------------------------


def manual_scores(X, y, concepts, cv, alpha):
    return [
        Ridge(alpha=alpha).fit(X[train], y[train]).score(X[test], y[test])
        for train, test in cv.split(X, groups=concepts)
    ]


@pytest.mark.parametrize("routing", [False, True])
def test_grid_search_scores_every_held_out_combination_fold(digit_data, routing):
    X, y, concepts = digit_data
    cv = HeldOutCombinations(n_splits=3, test_size=0.3, random_state=0)
    grid = {"alpha": [0.1, 10.0]}
    with sklearn.config_context(enable_metadata_routing=routing):
        search = GridSearchCV(Ridge(), grid, cv=cv).fit(X, y, groups=concepts)
    assert search.n_splits_ == 3
    for i, alpha in enumerate(grid["alpha"]):
        expected = manual_scores(X, y, concepts, cv, alpha)
        got = [search.cv_results_[f"split{k}_test_score"][i] for k in range(3)]
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    best = int(np.argmax(search.cv_results_["mean_test_score"]))
    assert search.best_params_ == {"alpha": grid["alpha"][best]}


@pytest.mark.parametrize("routing", [False, True])
@pytest.mark.parametrize("as_array", [False, True])
def test_cross_validate_uses_held_out_combination_folds(digit_data, routing, as_array):
    X, y, concepts = digit_data
    groups = concepts.to_numpy() if as_array else concepts
    cv = HeldOutCombinations(n_splits=3, random_state=0)
    with sklearn.config_context(enable_metadata_routing=routing):
        # With routing on, metadata goes through ``params``.
        metadata = {"params": {"groups": groups}} if routing else {"groups": groups}
        result = cross_validate(Ridge(), X, y, cv=cv, return_indices=True, **metadata)
    folds = list(cv.split(X, groups=concepts))
    for k, (train, test) in enumerate(folds):
        np.testing.assert_array_equal(result["indices"]["train"][k], train)
        np.testing.assert_array_equal(result["indices"]["test"][k], test)
        assert_compositional_split(concepts, train, test, 0.25)
    np.testing.assert_allclose(
        result["test_score"], manual_scores(X, y, concepts, cv, 1.0), rtol=1e-6
    )


def test_splitter_requests_groups_for_metadata_routing():
    request = HeldOutCombinations().get_metadata_routing()
    assert request.split.requests == {"groups": True}


# ----------------------------------------------------------------------------------
# Clear errors
# ----------------------------------------------------------------------------------


def split_once(cv, X, groups):
    return next(cv.split(X, groups=groups))


@pytest.mark.parametrize(
    ("groups", "match"),
    [
        (None, "needs groups"),
        (np.zeros((10, 1)), "at least 2 concept columns"),
        (pd.Series(np.arange(10)), "at least 2 concept columns"),
        (np.zeros(10), r"shape \(n_samples, n_concepts\)"),
        (np.zeros((9, 2)), "9 rows but X has 10"),
        (
            pd.DataFrame({"a": [0.0] * 5 + [np.nan] * 5, "b": range(10)}),
            "missing values",
        ),
    ],
    ids=["none", "one-column", "series", "1d", "wrong-length", "nan"],
)
def test_bad_groups_raise_a_clear_error(groups, match):
    with pytest.raises(ValueError, match=match):
        split_once(HeldOutCombinations(), np.zeros((10, 3)), groups)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_splits": 0}, "n_splits"),
        ({"n_splits": 2.5}, "n_splits"),
        ({"test_size": 0.0}, "test_size"),
        ({"test_size": 1.0}, "test_size"),
        ({"test_size": 1.5}, "test_size"),
        ({"random_state": "seed"}, "random_state"),
    ],
)
def test_invalid_parameters_raise_value_error_naming_them(params, match):
    groups = np.array([[a, b] for a in range(3) for b in range(3)])
    with pytest.raises(ValueError, match=match):
        split_once(HeldOutCombinations(**params), groups, groups)


@few_rows
def test_no_valid_split_raises_a_clear_error():
    # Every combination holds a value that occurs nowhere else.
    groups = np.array([[0, 0], [1, 1], [2, 2], [2, 2]])
    with pytest.raises(ValueError, match="No valid held-out-combination split"):
        split_once(HeldOutCombinations(), groups, groups)


@few_rows
def test_a_single_movable_combination_is_found():
    # Only (0, 0) can move: the others hold the lone values 2.
    groups = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 2]])
    train, test = split_once(
        HeldOutCombinations(n_splits=1, random_state=0), groups, groups
    )
    assert_compositional_split(groups, train, test, 0.25)


# ----------------------------------------------------------------------------------
# train_test_split_combinations
# ----------------------------------------------------------------------------------


def test_train_test_split_combinations_splits_every_array_alike(digit_data):
    X, y, concepts = digit_data
    row_ids = list(range(len(X)))
    parts = train_test_split_combinations(
        X, y, concepts, row_ids, concepts=concepts, test_size=0.3, random_state=0
    )
    assert len(parts) == 8
    X_train, X_test, y_train, y_test, c_train, c_test, id_train, id_test = parts
    assert isinstance(c_train, pd.DataFrame) and isinstance(id_train, list)
    np.testing.assert_array_equal(X_train, X[id_train])
    np.testing.assert_array_equal(X_test, X[id_test])
    np.testing.assert_array_equal(y_train, y[id_train])
    np.testing.assert_array_equal(y_test, y[id_test])
    pd.testing.assert_frame_equal(c_test, concepts.iloc[id_test])
    assert_compositional_split(concepts, np.array(id_train), np.array(id_test), 0.3)
    # The one-shot version is the first split of the cross-validator.
    _, test = split_once(
        HeldOutCombinations(test_size=0.3, random_state=0), X, concepts
    )
    np.testing.assert_array_equal(np.array(id_test), test)


def test_train_test_split_combinations_is_reproducible(digit_data):
    X, _, concepts = digit_data
    first = train_test_split_combinations(X, concepts=concepts, random_state=3)
    second = train_test_split_combinations(X, concepts=concepts, random_state=3)
    np.testing.assert_array_equal(first[1], second[1])


@few_rows
def test_train_test_split_combinations_bad_arguments():
    groups = np.array([[a, b] for a in range(3) for b in range(3)])
    with pytest.raises(ValueError, match="At least one array"):
        train_test_split_combinations(concepts=groups)
    with pytest.raises(ValueError, match="test_size"):
        train_test_split_combinations(groups, concepts=groups, test_size=0.0)
    with pytest.raises(ValueError, match="No valid"):
        train_test_split_combinations(
            groups[:3], concepts=np.array([[0, 0], [1, 1], [2, 2]])
        )


# ----------------------------------------------------------------------------------
# Property tests on random concept tables
# ----------------------------------------------------------------------------------


@st.composite
def concept_tables(draw):
    n_samples = draw(st.integers(1, 80))
    n_concepts = draw(st.integers(2, 4))
    columns = [
        draw(arrays(np.int64, n_samples, elements=st.integers(0, n_values - 1)))
        for n_values in draw(
            st.lists(st.integers(1, 4), min_size=n_concepts, max_size=n_concepts)
        )
    ]
    return np.stack(columns, axis=1)


@few_rows
@settings(max_examples=50, deadline=None)
@given(
    groups=concept_tables(),
    test_size=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**31 - 1),
)
def test_every_split_is_compositional_or_refused(groups, test_size, seed):
    cv = HeldOutCombinations(n_splits=2, test_size=test_size, random_state=seed)
    try:
        folds = list(cv.split(groups, groups=groups))
    except ValueError as error:
        if "distinct" in str(error):
            # Only one distinct split exists: it is still found alone.
            assert "only 1 distinct" in str(error)
            single = HeldOutCombinations(n_splits=1, test_size=test_size)
            folds = list(single.split(groups, groups=groups))
        else:
            assert "No valid" in str(error)
            # Refused only when no combination could move at all.
            assert not movable_combinations(groups, np.arange(len(groups)))
            return
    assert len(folds) in (1, 2)
    for train, test in folds:
        assert_compositional_split(groups, train, test, test_size)


@few_rows
@settings(max_examples=50, deadline=None)
@given(
    groups=concept_tables(),
    test_size=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**31 - 1),
)
def test_string_concept_tables_split_like_their_codes(groups, test_size, seed):
    frame = pd.DataFrame(
        {
            f"slot{j}": pd.Categorical(np.char.add("v", groups[:, j].astype(str)))
            for j in range(groups.shape[1])
        }
    )
    index = np.arange(len(groups))
    try:
        train, test = train_test_split_combinations(
            index, concepts=frame, test_size=test_size, random_state=seed
        )
    except ValueError as error:
        assert "No valid" in str(error)
        return
    assert_compositional_split(frame, train, test, test_size)
