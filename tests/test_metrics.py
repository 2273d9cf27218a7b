"""Metric correctness with known answers, and the scorers."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import Ridge
from torch import nn

from compgen_sk import EncoderBaseline, GenerativeInverter
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
    _, details = slot_identifiability_score(
        latents, inferred, readout="mlp", return_details=True, random_state=0
    )
    matched = details[details["matched"]]
    assert set(zip(matched["inferred_slot"], matched["true_slot"])) == {(0, 1), (1, 0)}
    assert set(details.columns) >= {"inferred_slot", "true_slot", "concept", "score"}
    assert len(details) == 2 * 4  # inferred slots x (true slots x latents)


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
        classes, inferred, categorical=[0], readout="linear", return_details=True
    )
    assert score == pytest.approx(1.0)
    assert details["categorical"].all()
    # Chance accuracy, not R², for the unmatched pairs.
    unmatched = details[~details["matched"]]["score"]
    assert unmatched.between(0.2, 0.5).all()


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
    assert not details[details["inferred_slot"] == 0]["matched"].any()


def test_a_true_slot_without_an_inferred_slot_scores_zero(latents):
    one = latents[:, 1] + 0.01 * np.random.default_rng(3).normal(size=(600, 2))
    score, details = slot_identifiability_score(
        latents, one, n_slots=1, readout="linear", random_state=0, return_details=True
    )
    matched = details[details["matched"]]  # one row per latent of true slot 1
    assert set(matched["true_slot"]) == {1} and (matched["score"] > 0.99).all()
    assert score == pytest.approx(matched["score"].mean() / 2)


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
    est = GenerativeInverter(
        slot_dim=2, max_epochs=3, search_steps=0, random_state=0
    ).fit(X)
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
    # "auto" matches per sample for a table marked as holding exchangeable
    # objects, and globally otherwise.
    table = pd.DataFrame(latents.reshape(len(latents), -1), columns=_COLUMNS)
    assert score(table, inferred, readout=readout, random_state=0) == global_
    table.attrs["exchangeable_slots"] = True
    assert score(table, inferred, readout=readout, random_state=0) == per_sample


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


def test_auto_keeps_global_matching_for_slots_with_roles(latents):
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
    # "auto" falls back to the global matching.
    slot_identifiability_score(table, latents, random_state=0)
    with pytest.raises(ValueError, match="at least as many inferred slots"):
        slot_identifiability_score(latents, latents[:, :1], matching="per_sample")


@pytest.mark.parametrize("shape", [(50, 2, 2), (50, 3, 3), (50, 4, 3), (20, 8, 8)])
def test_best_assignment_equals_hungarian_per_sample(shape):
    from scipy.optimize import linear_sum_assignment

    from compgen_sk._objects import best_assignment

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
    # (kept from round 0, on random pairs, they scored about 0.4).
    forest = RandomForestRegressor(n_estimators=20, random_state=0)
    assert (
        slot_identifiability_score(
            latents, inferred, readout=forest, matching="per_sample", random_state=0
        )
        >= 0.7
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
    table.attrs["exchangeable_slots"] = True
    assert slot_identifiability_score(table, inferred, random_state=0) >= 0.95


def test_auto_falls_back_to_global_where_per_sample_cannot_apply(latents):
    from compgen_sk.datasets import make_sprites

    table = pd.DataFrame(latents.reshape(len(latents), -1), columns=_COLUMNS)
    table.attrs["exchangeable_slots"] = True
    # Fewer inferred slots than objects: global matching, as before.
    _, details = slot_identifiability_score(
        table, latents[:, :1], return_details=True, random_state=0
    )
    assert (details["matching"] == "global").all()
    assert (
        "exchangeable_slots"
        not in make_sprites(20, n_slots=1, image_size=16, random_state=0).concepts.attrs
    )
