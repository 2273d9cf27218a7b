"""Metric correctness with known answers, and the scorers."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import Ridge
from torch import nn

from compgen_sk import EncoderBaseline, GenerativeInverter, SlotProbe
from compgen_sk.datasets import make_additive
from compgen_sk.metrics import (
    compositional_contrast,
    decoder_jacobian_norms,
    identifiability_scorer,
    jacobian_interaction_score,
    make_slot_scorer,
    reconstruction_r2,
    reconstruction_scorer,
    slot_identifiability_score,
    slot_scorers,
)


@pytest.fixture(scope="module")
def latents():
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, size=(600, 2, 2))


def _warp(z, seed):
    """An invertible nonlinear map of one slot's latents."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(2, 2)) + 2 * np.eye(2)
    return np.tanh(z @ A.T * 0.7) + 0.1 * z


def test_permuted_and_warped_slots_score_high(latents):
    inferred = np.stack([_warp(latents[:, 1], 1), _warp(latents[:, 0], 2)], axis=1)
    score = slot_identifiability_score(latents, inferred, random_state=0)
    assert score >= 0.95


def test_matching_recovers_the_slot_permutation(latents):
    inferred = np.stack([_warp(latents[:, 1], 1), _warp(latents[:, 0], 2)], axis=1)
    score, details = slot_identifiability_score(
        latents, inferred, readout="mlp", return_details=True, random_state=0
    )
    assert set(zip(details["inferred_slot"], details["true_slot"])) == {(0, 1), (1, 0)}
    assert list(details.columns) == [
        "true_slot",
        "concept",
        "categorical",
        "inferred_slot",
        "score",
        "matching",
    ]
    assert len(details) == 2 * 2  # one row per concept: true slots x latents
    assert details["concept"].tolist() == ["slot0_0", "slot0_1", "slot1_0", "slot1_1"]
    assert details["true_slot"].tolist() == [0, 0, 1, 1]
    assert (details["matching"] == "global").all()
    assert not details["categorical"].any()
    assert score == pytest.approx(details.groupby("true_slot")["score"].mean().mean())


def test_mixed_slots_score_clearly_lower(latents):
    mixed = np.stack(
        [latents[:, 0] + latents[:, 1], latents[:, 0] - latents[:, 1]], axis=1
    )
    unmixed = slot_identifiability_score(latents, latents, random_state=0)
    score = slot_identifiability_score(latents, mixed, random_state=0)
    assert score < 0.7
    assert score < unmixed - 0.25


def test_noise_scores_about_zero(latents):
    noise = np.random.default_rng(1).normal(size=latents.shape)
    score = slot_identifiability_score
    assert score(latents, noise, readout="linear", matching="global") < 0.05
    # Per-sample matching picks each sample's assignment with its true latents,
    # which favours even noise a little (documented).
    assert abs(score(latents, noise, readout="linear", matching="per_sample")) < 0.1


def test_flat_slots_with_n_slots_equal_three_d_slots(latents):
    inferred = latents[:, ::-1] * 2.0
    three_d = slot_identifiability_score(latents, inferred, readout="linear")
    flat = slot_identifiability_score(
        latents, inferred.reshape(len(inferred), -1), n_slots=2, readout="linear"
    )
    assert three_d == pytest.approx(flat)


def test_categorical_latents_are_scored_by_accuracy():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, size=(500, 2, 1))
    inferred = np.eye(3)[classes[:, ::-1, 0]] + 0.05 * rng.normal(size=(500, 2, 3))
    score, details = slot_identifiability_score(
        classes,
        inferred,
        categorical=[0],
        readout="linear",
        return_details=True,
        random_state=0,
    )
    assert score == pytest.approx(1.0)
    assert details["categorical"].all()
    assert details["inferred_slot"].tolist() == [1, 0]
    # Chance accuracy, not R², for the unmatched pairs of the probe's matching.
    probe = SlotProbe(n_slots=2, categorical=True, random_state=0)
    matrix = probe.fit(inferred.reshape(500, 6), classes).slot_scores_.to_numpy()
    np.testing.assert_array_equal(probe.matching_, [1, 0])
    assert np.diag(matrix[::-1]) == pytest.approx(1.0)
    assert ((np.diag(matrix) > 0.2) & (np.diag(matrix) < 0.5)).all()
    # Integer latents are continuous unless said categorical: R², not accuracy.
    as_r2, details = slot_identifiability_score(
        classes, inferred, return_details=True, random_state=0
    )
    assert not details["categorical"].any()
    assert 0.9 < as_r2 < 1.0


def test_concept_table_with_categorical_and_continuous_columns():
    rng = np.random.default_rng(0)
    shape = rng.integers(0, 2, size=(400, 2))
    x = rng.uniform(size=(400, 2))
    table = pd.DataFrame(
        {
            "slot0_shape": pd.Categorical(np.array(["tri", "sq"])[shape[:, 0]]),
            "slot0_x": x[:, 0],
            "slot1_shape": pd.Categorical(np.array(["tri", "sq"])[shape[:, 1]]),
            "slot1_x": x[:, 1],
        }
    )
    inferred = np.stack([np.c_[shape[:, k], x[:, k]] for k in (1, 0)], axis=1).astype(
        float
    )
    score, details = slot_identifiability_score(
        table, inferred, readout="linear", return_details=True
    )
    assert score > 0.98
    assert set(details.loc[details["categorical"], "concept"]) == {
        "slot0_shape",
        "slot1_shape",
    }


def test_more_inferred_slots_than_true_slots(latents):
    noise = np.random.default_rng(2).normal(size=(len(latents), 1, 2))
    inferred = np.concatenate([noise, latents[:, ::-1]], axis=1)
    score, details = slot_identifiability_score(
        latents, inferred, readout="linear", return_details=True
    )
    assert score > 0.99
    # The noise slot is read for no concept.
    assert details["inferred_slot"].tolist() == [2, 2, 1, 1]


def test_a_true_slot_without_an_inferred_slot_scores_zero(latents):
    one = latents[:, 1] + 0.01 * np.random.default_rng(3).normal(size=(600, 2))
    score, details = slot_identifiability_score(
        latents, one, n_slots=1, readout="linear", random_state=0, return_details=True
    )
    lost, read = details[details["true_slot"] == 0], details[details["true_slot"] == 1]
    assert (lost["inferred_slot"] == -1).all() and (lost["score"] == 0.0).all()
    assert (read["inferred_slot"] == 0).all() and (read["score"] > 0.99).all()
    assert score == pytest.approx(read["score"].mean() / 2)


def test_fit_mask_fits_on_id_and_scores_on_ood():
    bunch = make_additive(
        600, n_slots=2, slot_dim=2, split="all", support="l_shape", random_state=0
    )
    good = slot_identifiability_score(
        bunch.latents, bunch.latents, fit_mask=~bunch.ood, readout="linear"
    )
    assert good == pytest.approx(1.0)
    # A readout that only saw ID cannot extrapolate a slot it never saw moving
    # independently... but a linear one still can: check the mask is honoured by
    # scoring a map that is linear on ID and broken on OOD.
    broken = bunch.latents.copy()
    broken[bunch.ood] = 0.0
    assert (
        slot_identifiability_score(
            bunch.latents, broken, fit_mask=~bunch.ood, readout="linear"
        )
        < 0.0
    )


def test_custom_regressor_readout(latents):
    score = slot_identifiability_score(latents, 3 * latents, readout=Ridge())
    assert score > 0.99


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(slots=np.zeros((600, 7))), "n_slots"),
        (dict(slots=np.zeros((600, 7)), n_slots=2), "does not divide"),
        (dict(slots=np.zeros((599, 2, 2))), "599"),
        (dict(slots=np.full((600, 2, 2), np.nan)), "NaN"),
        (dict(slots=np.zeros((600, 2, 2)), fit_mask=np.ones(600)), "fit_mask"),
        (dict(slots=np.zeros((600, 2, 2)), fit_mask=np.ones(600, bool)), "fit_mask"),
        (dict(slots=np.zeros((600, 2, 2)), readout="tree"), "readout"),
        (dict(slots=np.zeros((600, 2, 2)), categorical=[5]), "categorical"),
        (dict(slots=np.zeros(600)), "slots"),
    ],
)
def test_identifiability_rejects_bad_inputs(latents, kwargs, match):
    with pytest.raises(ValueError, match=match):
        slot_identifiability_score(latents, **kwargs)


def test_identifiability_rejects_bad_latents():
    with pytest.raises(ValueError, match="shape"):
        slot_identifiability_score(np.zeros((10, 2, 2, 2)), np.zeros((10, 2, 2)))


# ----------------------------------------------------------------- Jacobian


class _SplitDecoder(nn.Module):
    """Output element p depends on slot p % K only."""

    def __init__(self, n_slots, slot_dim, n_outputs):
        super().__init__()
        self.n_slots = n_slots
        self.maps = nn.ModuleList(
            nn.Linear(slot_dim, n_outputs) for _ in range(n_slots)
        )
        owner = torch.arange(n_outputs) % n_slots
        self.register_buffer("masks", torch.stack([owner == k for k in range(n_slots)]))

    def forward(self, z):
        return sum(
            torch.tanh(m(z[:, k])) * self.masks[k] for k, m in enumerate(self.maps)
        )


class _SymmetricDecoder(nn.Module):
    """Every output depends equally on every slot."""

    def __init__(self, slot_dim, n_outputs):
        super().__init__()
        self.map = nn.Linear(slot_dim, n_outputs)

    def forward(self, z):
        return self.map(z.sum(dim=1))


def _score(norms):
    total = norms.sum(axis=2)
    share = norms.max(axis=2) / total
    k = norms.shape[2]
    return ((share - 1 / k) / (1 - 1 / k) * total / total.sum(1, keepdims=True)).sum(1)


def test_jacobian_norms_of_one_slot_per_output_decoder():
    torch.manual_seed(0)
    decoder = _SplitDecoder(3, 2, 12)
    norms = decoder_jacobian_norms(
        decoder, np.random.default_rng(0).normal(size=(5, 3, 2))
    )
    assert norms.shape == (5, 12, 3)
    owner = np.arange(12) % 3
    for k in range(3):
        assert (norms[:, owner != k, k] == 0).all()
        assert (norms[:, owner == k, k] > 0).all()
    np.testing.assert_allclose(_score(norms), 1.0, rtol=1e-5)


def test_jacobian_norms_of_symmetric_decoder_give_zero():
    torch.manual_seed(0)
    norms = decoder_jacobian_norms(
        _SymmetricDecoder(2, 6), np.random.default_rng(0).normal(size=(4, 3, 2))
    )
    np.testing.assert_allclose(norms[..., 0], norms[..., 1], rtol=1e-6)
    np.testing.assert_allclose(_score(norms), 0.0, atol=1e-6)


@pytest.fixture(scope="module")
def fitted():
    X, _ = make_additive(
        200, n_slots=2, slot_dim=2, n_features=12, return_X_y=True, random_state=0
    )
    est = GenerativeInverter(slot_dim=2, max_epochs=3, search=None, random_state=0)
    est.fit(X)
    return est, X


def test_jacobian_scores_on_an_estimator_match_a_swapped_in_decoder(fitted):
    est, X = fitted
    original = est.decoder_
    try:
        est.decoder_ = _SplitDecoder(2, 2, 12)
        assert jacobian_interaction_score(est, X) == pytest.approx(1.0)
        assert compositional_contrast(est, X) == pytest.approx(0.0, abs=1e-9)
        est.decoder_ = _SymmetricDecoder(2, 12)
        assert jacobian_interaction_score(est, X) == pytest.approx(0.0, abs=1e-6)
        assert compositional_contrast(est, X) > 0
    finally:
        est.decoder_ = original


def test_jacobian_score_from_slots_or_inputs(fitted):
    est, X = fitted
    Z = est.transform(X[:10])
    from_inputs = jacobian_interaction_score(est, X[:10])
    assert 0.0 <= from_inputs <= 1.0
    assert jacobian_interaction_score(est, Z=Z) == pytest.approx(from_inputs)
    with pytest.raises(ValueError, match="exactly one"):
        jacobian_interaction_score(est)
    with pytest.raises(ValueError, match="exactly one"):
        jacobian_interaction_score(est, X[:3], Z=Z[:3])
    with pytest.raises(ValueError, match="max_samples"):
        jacobian_interaction_score(est, X, max_samples=0)
    with pytest.raises(ValueError, match="Z must have shape"):
        jacobian_interaction_score(est, Z=np.zeros((3, 5)))


def test_metrics_need_a_decoder(fitted):
    _, X = fitted
    supervised = EncoderBaseline(
        objective="supervised", slot_dim=2, max_epochs=1, random_state=0
    ).fit(X, np.zeros((len(X), 2, 1)))
    with pytest.raises(ValueError, match="no decoder"):
        jacobian_interaction_score(supervised, X)
    with pytest.raises(ValueError, match="no decoder"):
        reconstruction_r2(supervised, X)
    with pytest.raises(ValueError, match="not a compgen-sk slot estimator"):
        reconstruction_r2(Ridge().fit(X, X[:, 0]), X)


def test_reconstruction_r2_is_estimator_score_and_weighted(fitted):
    est, X = fitted
    assert reconstruction_r2(est, X) == pytest.approx(est.score(X))
    weights = np.r_[np.ones(100), np.zeros(100)]
    assert reconstruction_r2(est, X, sample_weight=weights) == pytest.approx(
        reconstruction_r2(est, X[:100]), rel=1e-5
    )


def test_metrics_of_a_pipeline_pass_X_through_the_steps_before_it(fitted):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from compgen_sk import SlotProbe

    est, X = fitted
    scale = FunctionTransformer(lambda a: a / 10)
    pipe = Pipeline([("scale", scale), ("inv", est), ("probe", "passthrough")])
    latents = np.random.default_rng(0).normal(size=(len(X), 2, 2))
    X10 = X * 10
    assert reconstruction_r2(pipe, X10) == pytest.approx(est.score(X))
    assert jacobian_interaction_score(pipe, X10[:20]) == pytest.approx(
        jacobian_interaction_score(est, X[:20])
    )
    scorer = make_slot_scorer("identifiability", readout="linear")
    assert scorer(pipe, X10, latents) == pytest.approx(scorer(est, X, latents))
    from sklearn.frozen import FrozenEstimator

    frozen = Pipeline([("scale", scale), ("inv", FrozenEstimator(est))])
    assert reconstruction_r2(frozen, X10) == pytest.approx(est.score(X))
    assert reconstruction_r2(FrozenEstimator(pipe), X10) == pytest.approx(est.score(X))
    probe_only = Pipeline([("sc", StandardScaler()), ("probe", SlotProbe())])
    probe_only.fit(X, latents)
    with pytest.raises(ValueError, match="no fitted compgen-sk slot estimator"):
        reconstruction_r2(probe_only, X)


# ----------------------------------------------------------------- scorers


def test_scorers_call_the_right_metric(fitted):
    est, X = fitted
    latents = np.random.default_rng(0).normal(size=(len(X), 2, 2))
    assert reconstruction_scorer(est, X) == pytest.approx(est.score(X))
    expected = slot_identifiability_score(
        latents, est.transform(X), n_slots=2, readout="linear", random_state=0
    )
    scorer = make_slot_scorer("identifiability", readout="linear", random_state=0)
    assert scorer(est, X, latents) == pytest.approx(expected)
    assert sorted(slot_scorers()) == ["identifiability", "readout", "reconstruction_r2"]
    assert "identifiability" in repr(identifiability_scorer)


def test_make_slot_scorer_validates_its_options():
    with pytest.raises(ValueError, match="metric"):
        make_slot_scorer("accuracy")
    with pytest.raises(ValueError, match="Unknown identifiability options"):
        make_slot_scorer("identifiability", n_neighbors=3)
    with pytest.raises(ValueError, match="takes no options"):
        make_slot_scorer("readout", readout="linear")
    with pytest.raises(ValueError, match="takes no options"):
        make_slot_scorer("reconstruction", readout="linear")


def test_scorers_that_need_y_say_so(fitted):
    est, X = fitted
    with pytest.raises(ValueError, match="needs y"):
        make_slot_scorer("readout")(est, X)
    with pytest.raises(ValueError, match="needs y"):
        identifiability_scorer(est, X)


def test_identifiability_scorer_is_reproducible(fitted):
    est, X = fitted
    z = np.random.default_rng(0).normal(size=(len(X), 2, 1))
    first = identifiability_scorer(est, X, z)
    assert identifiability_scorer(est, X, z) == first
    assert "random_state=0" in repr(identifiability_scorer)


# ---------------------------------------------------------- per-sample matching


_COLUMNS = ["slot0_0", "slot0_1", "slot1_0", "slot1_1"]


def _shuffled_objects(z, seed):
    """The objects of every sample in a random order, and that order."""
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random(z.shape[:2]), axis=1)
    return np.take_along_axis(z, order[:, :, None], axis=1), order


def _shared_warp(z):
    """One invertible nonlinear map applied to every slot."""
    A = np.array([[1.5, 0.4], [-0.3, 1.2]])
    return np.tanh(z @ A) + 0.2 * z


@pytest.mark.parametrize("readout", ["linear", "mlp"])
def test_per_sample_matching_reads_objects_in_any_order(latents, readout):
    shuffled, _ = _shuffled_objects(latents, seed=3)
    inferred = _shared_warp(shuffled)
    score = slot_identifiability_score
    per_sample = score(
        latents, inferred, readout=readout, matching="per_sample", random_state=0
    )
    global_ = score(
        latents, inferred, readout=readout, matching="global", random_state=0
    )
    assert per_sample >= 0.95
    assert global_ < 0.5
    # The matching is the one stated (global by default), for arrays and
    # concept tables alike; a mark in the table's attrs changes nothing.
    table = pd.DataFrame(latents.reshape(len(latents), -1), columns=_COLUMNS)
    assert score(table, inferred, readout=readout, random_state=0) == global_
    assert score(latents, inferred, readout=readout, random_state=0) == global_
    table.attrs["exchangeable_slots"] = True
    assert score(table, inferred, readout=readout, random_state=0) == global_
    assert (
        score(table, inferred, readout=readout, matching="per_sample", random_state=0)
        == per_sample
    )


def test_per_sample_matching_scores_mixed_slots_low(latents):
    shuffled, _ = _shuffled_objects(latents, seed=4)
    # Each slot holds x of one object and y of the other.
    swapped = np.stack(
        [
            np.stack([shuffled[:, 0, 0], shuffled[:, 1, 1]], axis=1),
            np.stack([shuffled[:, 1, 0], shuffled[:, 0, 1]], axis=1),
        ],
        axis=1,
    )
    # Each slot a mixture of both objects.
    summed = np.stack([shuffled.sum(1), shuffled[:, 0] - shuffled[:, 1]], axis=1)

    def score(mixed):
        return slot_identifiability_score(
            latents, mixed, matching="per_sample", random_state=0
        )

    assert score(summed) < 0.6
    # Half of every object's concepts read from the wrong slot: about 0.5, plus
    # the optimism of choosing each sample's assignment with its true latents.
    assert score(swapped) < 0.7


def test_default_matching_is_global_for_slots_with_roles(latents):
    inferred = _warp(latents[:, ::-1], 0)  # one fixed order, a map per slot
    score, details = slot_identifiability_score(
        latents, inferred, readout="mlp", return_details=True, random_state=0
    )
    assert (details["matching"] == "global").all()
    assert score == slot_identifiability_score(
        latents, inferred, readout="mlp", matching="global", random_state=0
    )


def test_per_sample_details_and_more_inferred_slots(latents):
    shuffled, _ = _shuffled_objects(latents, seed=5)
    empty = np.zeros((len(latents), 1, 2))
    inferred = np.concatenate([empty, _shared_warp(shuffled)], axis=1)
    score, details = slot_identifiability_score(
        latents,
        inferred,
        matching="per_sample",
        return_details=True,
        random_state=0,
    )
    assert score >= 0.95
    assert list(details["concept"]) == _COLUMNS
    assert (details["matching"] == "per_sample").all()
    assert details["score"].mean() == pytest.approx(score)


def test_per_sample_matching_with_categorical_concepts():
    rng = np.random.default_rng(0)
    shapes = rng.integers(0, 3, size=(600, 2))
    x = rng.uniform(-1, 1, size=(600, 2))
    table = pd.DataFrame(
        {
            "a_shape": pd.Categorical(shapes[:, 0]),
            "a_x": x[:, 0],
            "b_shape": pd.Categorical(shapes[:, 1]),
            "b_x": x[:, 1],
        }
    )
    z = np.stack([shapes, x], axis=2).astype(float)
    shuffled, _ = _shuffled_objects(z, seed=1)
    inferred = np.concatenate(
        [np.eye(3)[shuffled[..., 0].astype(int)], shuffled[..., 1:]], axis=2
    )
    assert slot_identifiability_score(
        table, inferred, matching="per_sample", random_state=0
    ) == pytest.approx(1.0, abs=0.02)


def test_per_sample_matching_refuses_objects_of_different_kinds(latents):
    table = pd.DataFrame({"a_x": latents[:, 0, 0], "b_hue": latents[:, 1, 0]})
    with pytest.raises(ValueError, match="true slots of one kind"):
        slot_identifiability_score(table, latents, matching="per_sample")
    # The global matching reads them.
    assert slot_identifiability_score(table, latents, random_state=0) > 0.99
    with pytest.raises(ValueError, match="at least as many inferred slots"):
        slot_identifiability_score(latents, latents[:, :1], matching="per_sample")


@pytest.mark.parametrize("shape", [(50, 2, 2), (50, 3, 3), (50, 4, 3), (20, 8, 8)])
def test_best_assignment_equals_hungarian_per_sample(shape):
    from scipy.optimize import linear_sum_assignment

    from compgen_sk._assignment import best_assignment

    cost = np.random.default_rng(0).random(shape)
    assignment = best_assignment(cost)
    for c, a in zip(cost, assignment):
        rows, cols = linear_sum_assignment(c)
        best = c[rows, cols].sum()
        assert c[a, np.arange(shape[2])].sum() == pytest.approx(best)
        assert len(set(a.tolist())) == shape[2]


def test_identifiability_scorer_takes_matching():
    scorer = make_slot_scorer("identifiability", matching="per_sample")
    assert scorer.options["matching"] == "per_sample"
    with pytest.raises(ValueError, match="matching"):
        slot_identifiability_score(
            np.zeros((8, 2, 1)), np.zeros((8, 2, 1)), matching="sample"
        )


def test_per_sample_matching_with_any_readout_and_column_order(latents):
    from sklearn.ensemble import RandomForestRegressor

    shuffled, _ = _shuffled_objects(latents, seed=6)
    inferred = _shared_warp(shuffled)
    # Estimators whose warm_start means "add trees" are refitted every round
    # (kept from round 0, on random pairs, they scored about 0.4). Forests
    # read these objects at 0.67 to 0.83 over seeds of the probe.
    forest = RandomForestRegressor(n_estimators=20, random_state=0)
    assert (
        slot_identifiability_score(
            latents, inferred, readout=forest, matching="per_sample", random_state=0
        )
        >= 0.6
    )
    # Objects whose concepts come in another column order are still one kind.
    table = pd.DataFrame(
        {
            "a_x": latents[:, 0, 0],
            "a_y": latents[:, 0, 1],
            "b_y": latents[:, 1, 1],
            "b_x": latents[:, 1, 0],
        }
    )
    assert (
        slot_identifiability_score(
            table, inferred, matching="per_sample", random_state=0
        )
        >= 0.95
    )


# ------------------------------------------------- the score is a SlotProbe's


def _probe_score(latents, slots, fit_mask, **params):
    """Mean over true slots of a SlotProbe's concept scores, fitted on the
    fit part and scored on the rest."""
    n, n_slots = slots.shape[:2]
    flat = slots.reshape(n, -1)
    fit, evaluate = np.flatnonzero(fit_mask), np.flatnonzero(~fit_mask)

    def rows(index):
        if isinstance(latents, pd.DataFrame):
            return latents.iloc[index]
        return latents[index]

    probe = SlotProbe(n_slots=n_slots, **params).fit(flat[fit], rows(fit))
    scores = probe.concept_scores(flat[evaluate], rows(evaluate))
    return scores.groupby(probe.concept_slots_).mean().mean(), probe, scores


@pytest.mark.parametrize(
    "params",
    [
        dict(readout="linear", matching="global"),
        dict(readout="mlp", matching="global"),
        dict(readout="linear", matching="per_sample"),
    ],
    ids=["linear-global", "mlp-global", "linear-per_sample"],
)
def test_identifiability_is_the_mean_over_true_slots_of_a_probe(latents, params):
    shuffled, _ = _shuffled_objects(latents, seed=7)
    rng = np.random.default_rng(8)
    # Slot 1 holds one latent of each object, and noise.
    inferred = np.stack(
        [_shared_warp(shuffled[:, 0]), np.c_[shuffled[:, 1, 0], rng.normal(size=600)]],
        axis=1,
    )
    fit_mask = rng.random(600) < 0.6
    expected, probe, scores = _probe_score(
        latents, inferred, fit_mask, random_state=3, **params
    )
    score, details = slot_identifiability_score(
        latents,
        inferred,
        fit_mask=fit_mask,
        return_details=True,
        random_state=3,
        **params,
    )
    assert score == expected
    np.testing.assert_array_equal(details["score"], scores.to_numpy())
    assert details["concept"].tolist() == probe.concept_names_
    assert (details["matching"] == params["matching"]).all()
    if params["matching"] == "global":
        np.testing.assert_array_equal(
            details["inferred_slot"], probe.matching_[probe.concept_slots_]
        )
    else:
        assert (details["inferred_slot"] == -1).all()


def test_identifiability_reads_linearly_by_default(latents):
    inferred = latents[:, ::-1] ** 3  # a linear readout recovers R² of about 0.84
    fit_mask = np.arange(600) < 300
    default = slot_identifiability_score(
        latents, inferred, fit_mask=fit_mask, random_state=0
    )
    linear = slot_identifiability_score(
        latents, inferred, fit_mask=fit_mask, readout="linear", random_state=0
    )
    mlp = slot_identifiability_score(
        latents, inferred, fit_mask=fit_mask, readout="mlp", random_state=0
    )
    assert default == linear
    assert linear < 0.9 < mlp


def test_identifiability_weighs_true_slots_not_concepts():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 1)), rng.normal(size=(400, 2))
    # True slot "a" has one concept, read well; "b" two, one of them lost.
    table = pd.DataFrame({"a_x": a[:, 0], "b_x": b[:, 0], "b_y": b[:, 1]})
    inferred = np.stack(
        [np.c_[a[:, 0], a[:, 0]], np.c_[b[:, 0], rng.normal(size=400)]], axis=1
    )
    fit_mask = np.arange(400) < 200
    expected, _, scores = _probe_score(table, inferred, fit_mask, random_state=0)
    score = slot_identifiability_score(
        table, inferred, fit_mask=fit_mask, random_state=0
    )
    assert score == expected
    assert score == pytest.approx((scores["a_x"] + scores[["b_x", "b_y"]].mean()) / 2)
    # Not the mean over concepts (the probe's own score): 0.75, not 0.67.
    assert score > scores.mean() + 0.05


def test_identifiability_refuses_2d_latents_of_several_columns_with_a_hint(latents):
    flat = latents[:, :, 0]  # (600, 2)
    hint = (
        r"y is a 2-D array of 2 columns.*y\[:, :, None\] for one latent per slot, "
        r"y\.reshape\(600, K, m\)"
    )
    with pytest.raises(ValueError, match=hint):
        slot_identifiability_score(flat, latents)
    assert slot_identifiability_score(
        flat[:, :, None], latents, random_state=0
    ) == pytest.approx(1.0)
    # One column is one concept.
    assert slot_identifiability_score(
        flat[:, :1], latents, random_state=0
    ) == pytest.approx(1.0)
