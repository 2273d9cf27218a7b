"""SlotProbe and the end-to-end model-selection story."""

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from compgen_sk import (
    AdditiveDecoder,
    ConvEncoder,
    EncoderBaseline,
    GenerativeInverter,
    GradientSearch,
    HeldOutCombinations,
    MLPDecoder,
    ReplayEncoder,
    SlotProbe,
)
from compgen_sk.datasets import make_digit_compositions, make_sprites
from compgen_sk.metrics import slot_scorers


@parametrize_with_checks([SlotProbe(random_state=0)])
def test_sklearn_compatible_probe(estimator, check):
    check(estimator)


def _one_hot_slots(classes, order, noise=0.1, seed=0):
    """One-hot blocks of the classes (n, K, 1) of the true slots in ``order``."""
    rng = np.random.default_rng(seed)
    blocks = [np.eye(3)[classes[:, k, 0]] for k in order]
    slots = np.concatenate(blocks, axis=1)
    return slots + noise * rng.normal(size=slots.shape)


@pytest.fixture
def classes():
    """One class per true slot: latents (n, K, 1)."""
    return np.random.default_rng(0).integers(0, 3, size=(300, 2, 1))


def test_default_probe_is_continuous_and_global():
    probe = SlotProbe()
    assert probe.categorical is False
    assert probe.matching == "global"
    assert probe.readout == "linear"


def test_probe_matches_swapped_slots_and_reads_classes(classes):
    slots = _one_hot_slots(classes, order=(1, 0))
    probe = SlotProbe(categorical=True, random_state=0).fit(slots, classes)
    assert probe.matching_.tolist() == [1, 0]
    assert probe.categorical_.all()
    assert probe.score(slots, classes) == 1.0
    np.testing.assert_array_equal(probe.predict(slots), classes)
    assert probe.slot_scores_.shape == (2, 2)
    assert probe.slot_scores_.iloc[1, 0] > probe.slot_scores_.iloc[0, 0]


def test_integer_latents_are_continuous_unless_said_categorical(classes):
    slots = _one_hot_slots(classes, order=(1, 0))
    probe = SlotProbe(random_state=0).fit(slots, classes)
    assert not probe.categorical_.any()
    assert isinstance(probe.readouts_["slot0_0"][-1], Ridge)
    # R² of a linear readout of the one-hot class, not an accuracy.
    assert 0.9 < probe.score(slots, classes) < 1.0
    assert probe.matching_.tolist() == [1, 0]
    listed = SlotProbe(categorical=[0], random_state=0).fit(slots, classes)
    assert listed.categorical_.all()
    assert listed.score(slots, classes) == 1.0


def test_string_latents_are_class_labels(classes):
    labels = np.array(["a", "b", "c"])[classes]
    slots = _one_hot_slots(classes, order=(0, 1))
    probe = SlotProbe(random_state=0).fit(slots, labels)
    assert probe.categorical_.all()
    assert probe.score(slots, labels) == 1.0
    np.testing.assert_array_equal(probe.predict(slots), labels)


def test_probe_with_a_concept_table_predicts_a_table(classes):
    table = pd.DataFrame(
        {
            "left_digit": pd.Categorical(classes[:, 0, 0].astype(str)),
            "right_digit": pd.Categorical(classes[:, 1, 0].astype(str)),
        }
    )
    slots = _one_hot_slots(classes, order=(1, 0))
    probe = SlotProbe(random_state=0).fit(slots, table)
    assert probe.true_slot_names_ == ["left", "right"]
    assert probe.categorical_.all()  # by dtype, whatever ``categorical`` says
    predicted = probe.predict(slots)
    assert list(predicted.columns) == ["left_digit", "right_digit"]
    assert (
        predicted["left_digit"].astype(str) == table["left_digit"].astype(str)
    ).all()
    with pytest.raises(ValueError, match="fitted on"):
        probe.score(slots, table[["right_digit", "left_digit"]])


def test_probe_continuous_latents_score_r2():
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(400, 2, 2))
    slots = np.concatenate([latents[:, 1] * 3 + 1, latents[:, 0]], axis=1)
    probe = SlotProbe(random_state=0).fit(slots, latents)
    assert probe.score(slots, latents) == pytest.approx(1.0)
    assert probe.predict(slots).shape == latents.shape


@pytest.mark.parametrize("shape", [(200,), (200, 1)])
def test_probe_reads_one_concept_from_1d_or_one_column_y(shape):
    rng = np.random.default_rng(0)
    z = rng.normal(size=200)
    slots = np.c_[rng.normal(size=200), 2 * z]
    y = z.reshape(shape)
    probe = SlotProbe(n_slots=2, random_state=0).fit(slots, y)
    assert probe.true_slot_names_ == ["slot0"]
    assert probe.matching_.tolist() == [1]
    assert probe.score(slots, y) == pytest.approx(1.0)
    assert probe.predict(slots).shape == shape


def test_probe_reads_slot_count_from_pandas_column_names():
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(200, 2, 1))
    frame = pd.DataFrame(
        np.concatenate(
            [latents[:, 0], rng.normal(size=(200, 1)), latents[:, 1]], axis=1
        ),
        columns=["slot0_0", "slot1_0", "slot2_0"],
    )
    probe = SlotProbe(random_state=0).fit(frame, latents)
    assert probe.n_slots_ == 3
    assert probe.matching_.tolist() == [0, 2]


def test_probe_with_mlp_and_custom_readouts(classes):
    slots = _one_hot_slots(classes, order=(0, 1))
    assert (
        SlotProbe("mlp", categorical=True, random_state=0)
        .fit(slots, classes)
        .score(slots, classes)
        > 0.95
    )
    continuous = classes.astype(float)
    probe = SlotProbe(Ridge(), random_state=0).fit(slots, continuous)
    assert isinstance(probe.readouts_["slot0_0"], Ridge)
    assert probe.score(slots, continuous) > 0.9


def test_probe_errors(classes):
    slots = _one_hot_slots(classes, order=(0, 1))
    with pytest.raises(ValueError, match="does not divide"):
        SlotProbe(n_slots=4).fit(slots, classes)
    with pytest.raises(ValueError, match="samples"):
        SlotProbe().fit(slots[:10], classes)
    with pytest.raises(ValueError, match="readout"):
        SlotProbe(readout="forest").fit(slots, classes)
    with pytest.raises(ValueError, match="matching"):
        SlotProbe(matching="auto").fit(slots, classes)
    with pytest.raises(ValueError, match="categorical"):
        SlotProbe(categorical="auto").fit(slots, classes)


def test_probe_refuses_a_2d_y_of_several_columns_with_a_hint(classes):
    slots = _one_hot_slots(classes, order=(0, 1))
    flat = classes[:, :, 0]  # (300, 2): one latent of two slots, or two of one?
    hint = (
        r"y is a 2-D array of 2 columns.*y\[:, :, None\] for one latent per slot, "
        r"y\.reshape\(300, K, m\)"
    )
    with pytest.raises(ValueError, match=hint):
        SlotProbe(categorical=True).fit(slots, flat)
    # Reshaped as the hint says, it is read.
    probe = SlotProbe(categorical=True, random_state=0).fit(slots, flat[:, :, None])
    assert probe.score(slots, flat[:, :, None]) == 1.0
    # Scoring a fitted probe with such a y says the same.
    with pytest.raises(ValueError, match=hint):
        probe.score(slots, flat)


def test_probe_with_fewer_inferred_than_true_slots():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 3, 2))
    # Two inferred slots hold true slots 2 and 0; nothing holds true slot 1.
    slots = np.concatenate([np.tanh(z[:, 2]), 2 * z[:, 0] + 1], axis=1)
    probe = SlotProbe(n_slots=2, random_state=0).fit(slots, z)
    assert probe.matching_.tolist() == [1, -1, 0]
    assert probe.slot_scores_.shape == (2, 3)
    scores = probe.concept_scores(slots, z)
    assert scores.index.tolist() == [f"slot{k}_{j}" for k in range(3) for j in (0, 1)]
    # The concepts of the true slot without an inferred slot score exactly 0.
    assert (scores[["slot1_0", "slot1_1"]] == 0.0).all()
    assert (scores[["slot0_0", "slot0_1"]] > 0.99).all()
    assert (scores[["slot2_0", "slot2_1"]] > 0.9).all()
    assert probe.score(slots, z) == pytest.approx(scores.mean())
    # It is predicted from no feature: its fit mean.
    predicted = probe.predict(slots)
    assert predicted.shape == z.shape
    np.testing.assert_allclose(
        predicted[:, 1], np.broadcast_to(z[:, 1].mean(axis=0), (400, 2)), atol=1e-9
    )
    np.testing.assert_allclose(predicted[:, 0], z[:, 0], atol=1e-3)


# --------------------------------------------------------------- pipelines


@pytest.fixture(scope="module")
def digits():
    return make_digit_compositions(
        320, digit_size=8, jitter=1, n_classes=4, random_state=0, split="all"
    )


def _tiny(cls, **extra):
    params = dict(max_epochs=2, batch_size=32, random_state=0, slot_dim=4)
    params["encoder"] = ConvEncoder(channels=8, hidden=32)
    # One renderer (digits sit in fixed cells): one fit per candidate, not two.
    decoder = MLPDecoder if cls is EncoderBaseline else AdditiveDecoder
    params["decoder"] = decoder(renderer="mlp")
    params.update(extra)
    return cls(**params)


def _pipelines():
    generator = _tiny(GenerativeInverter, search=GradientSearch(steps=3))
    return {
        "generative": (
            Pipeline([("inv", generator), ("probe", SlotProbe(random_state=0))]),
            {"inv__slot_dim": [2, 4], "inv__search__steps": [0, 3]},
        ),
        "baseline": (
            Pipeline(
                [("inv", _tiny(EncoderBaseline)), ("probe", SlotProbe(random_state=0))]
            ),
            {"inv__objective": ["autoencoder", "supervised"]},
        ),
        "replay": (
            Pipeline(
                [
                    (
                        "inv",
                        ReplayEncoder(
                            _tiny(GenerativeInverter, search=None),
                            max_epochs=1,
                            n_replay=64,
                            random_state=0,
                            encoder=ConvEncoder(channels=8, hidden=32),
                        ),
                    ),
                    ("probe", SlotProbe(random_state=0)),
                ]
            ),
            # A renderer per slot replays shuffled slots, a shared one pooled
            # slots (the generator's recombination_).
            {"inv__generator__decoder__shared": [False, True]},
        ),
    }


@pytest.mark.parametrize("name", ["generative", "baseline", "replay"])
@pytest.mark.parametrize("routing", [False, True])
def test_grid_search_on_held_out_combinations(name, routing, digits):
    pipe, grid = _pipelines()[name]
    cv = HeldOutCombinations(n_splits=2, test_size=0.3, random_state=0)
    with sklearn.config_context(enable_metadata_routing=routing):
        search = GridSearchCV(pipe, grid, cv=cv, n_jobs=1).fit(
            digits.images, digits.concepts, groups=digits.concepts
        )
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == np.prod([len(v) for v in grid.values()])
    assert np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()  # accuracies of digit readouts
    assert search.best_params_ == search.cv_results_["params"][np.argmax(scores)]
    assert search.best_estimator_.score(digits.images, digits.concepts) >= 0
    if name == "replay":
        shared = search.best_params_["inv__generator__decoder__shared"]
        replay = search.best_estimator_.named_steps["inv"]
        assert replay.recombination_ == ("pool" if shared else "shuffle")


def test_grid_search_runs_in_two_processes(digits):
    pipe, grid = _pipelines()["generative"]
    cv = HeldOutCombinations(n_splits=2, test_size=0.3, random_state=0)
    serial = GridSearchCV(pipe, grid, cv=cv, n_jobs=1).fit(
        digits.images, digits.concepts, groups=digits.concepts
    )
    parallel = GridSearchCV(pipe, grid, cv=cv, n_jobs=2).fit(
        digits.images, digits.concepts, groups=digits.concepts
    )
    # Same seeds, same CPU arithmetic: the same scores in a worker process.
    np.testing.assert_allclose(
        parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"]
    )


def test_cross_validate_with_several_scorers(digits):
    pipe, _ = _pipelines()["generative"]
    cv = HeldOutCombinations(n_splits=2, test_size=0.3, random_state=0)
    result = cross_validate(
        pipe,
        digits.images,
        digits.concepts,
        groups=digits.concepts,
        cv=cv,
        scoring=slot_scorers(),
    )
    for key in ("test_readout", "test_identifiability", "test_reconstruction_r2"):
        assert len(result[key]) == 2
        assert np.isfinite(result[key]).all()
    assert (result["test_readout"] <= 1).all()


def test_pipeline_scores_ood_readout_as_the_paper_does(digits):
    """Fit on ID, score held-out combinations: the OOD readout of
    :ref:`background-metrics`."""
    ood = digits.ood
    pipe = Pipeline(
        [
            (
                "inv",
                _tiny(GenerativeInverter, max_epochs=4, search=GradientSearch(steps=5)),
            ),
            ("probe", SlotProbe(random_state=0)),
        ]
    ).fit(digits.images[~ood], digits.concepts[~ood])
    id_score = pipe.score(digits.images[~ood], digits.concepts[~ood])
    ood_score = pipe.score(digits.images[ood], digits.concepts[ood])
    assert 0 <= ood_score <= 1 and 0 <= id_score <= 1
    probe = pipe.named_steps["probe"]
    assert sorted(probe.matching_.tolist()) == [0, 1]


def test_frozen_estimator_linear_probe_idiom(digits):
    ood = digits.ood
    fitted = _tiny(GenerativeInverter, search=None).fit(digits.images[~ood])
    probe = make_pipeline(
        FrozenEstimator(fitted), StandardScaler(), LogisticRegression(max_iter=500)
    ).fit(digits.images[~ood], digits.concepts["slot0_digit"][~ood])
    accuracy = probe.score(digits.images[ood], digits.concepts["slot0_digit"][ood])
    assert 0 <= accuracy <= 1


# ---------------------------------------------------------- slot matching


def test_probe_per_sample_matching_reads_exchangeable_objects():
    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, size=(900, 2, 2))
    swap = rng.random(900) < 0.5
    inferred = z.copy()
    inferred[swap] = z[swap][:, ::-1]
    inferred = np.tanh(1.5 * inferred).reshape(900, 4)
    fit, test = slice(0, 600), slice(600, None)
    probe = SlotProbe("mlp", matching="per_sample", random_state=0)
    probe.fit(inferred[fit], z[fit])
    assert probe.per_sample_ and probe.slot_scores_ is None
    assert probe.score(inferred[test], z[test]) >= 0.95
    assert probe.predict(inferred[test]).shape == (300, 2, 2)
    glob = SlotProbe("mlp", matching="global", random_state=0)
    assert not glob.fit(inferred[fit], z[fit]).per_sample_
    assert glob.score(inferred[test], z[test]) < 0.5
    # Readouts are shared by the objects' concepts.
    assert probe.readouts_["slot0_0"] is probe.readouts_["slot1_0"]


def test_probe_matching_is_stated_not_sniffed_from_the_data():
    bunch = make_sprites(60, image_size=16, random_state=0)
    concepts = bunch.concepts
    assert bunch.exchangeable_slots
    rng = np.random.default_rng(0)
    slots = rng.normal(size=(60, 8))
    matching = "per_sample" if bunch.exchangeable_slots else "global"
    assert SlotProbe(matching=matching, random_state=0).fit(slots, concepts).per_sample_
    # The default is global matching, for sprites too...
    assert not SlotProbe(random_state=0).fit(slots, concepts).per_sample_
    # ... and a mark in the table's attrs means nothing to the probe.
    marked = concepts.copy()
    marked.attrs["exchangeable_slots"] = True
    assert not SlotProbe(random_state=0).fit(slots, marked).per_sample_


def test_probe_default_matching_is_global_for_ordered_slots(classes):
    slots = _one_hot_slots(classes, order=(1, 0))
    probe = SlotProbe(categorical=True, random_state=0).fit(slots, classes)
    assert not probe.per_sample_
    assert probe.matching_.tolist() == [1, 0]
    table = pd.DataFrame({"a_x": classes[:, 0, 0], "b_y": classes[:, 1, 0] * 1.0})
    with pytest.raises(ValueError, match="one kind"):
        SlotProbe(matching="per_sample").fit(slots, table)
    with pytest.raises(ValueError, match="at least as many inferred slots"):
        SlotProbe(n_slots=1, matching="per_sample").fit(slots, classes)


@pytest.mark.parametrize("matching", ["global", "per_sample"])
def test_concept_scores_show_the_concept_the_slots_miss(matching):
    # Two objects of (position, size); the slots hold the positions and noise
    # instead of the sizes.
    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, size=(900, 2, 2))
    slots = np.stack([z[:, :, 0], rng.normal(size=(900, 2))], axis=2)
    fit, test = slice(0, 600), slice(600, None)
    probe = SlotProbe("mlp", matching=matching, random_state=0)
    probe.fit(slots[fit].reshape(600, 4), z[fit])
    scores = probe.concept_scores(slots[test].reshape(300, 4), z[test])
    assert isinstance(scores, pd.Series)
    assert scores.index.tolist() == probe.concept_names_
    assert (scores[["slot0_0", "slot1_0"]] > 0.9).all()
    assert (scores[["slot0_1", "slot1_1"]] < 0.1).all()
    assert scores.mean() == probe.score(slots[test].reshape(300, 4), z[test])


def test_concept_scores_of_a_concept_table_and_sample_weights(classes):
    table = pd.DataFrame(
        {"left": pd.Categorical(classes[:, 0, 0]), "right": classes[:, 1, 0] * 1.0}
    )
    slots = _one_hot_slots(classes, order=(0, 1))
    slots[:, 3:] = np.random.default_rng(1).normal(size=(300, 3))  # right is lost
    probe = SlotProbe(random_state=0).fit(slots, table)
    scores = probe.concept_scores(slots, table)
    assert scores.index.tolist() == ["left", "right"]
    assert scores["left"] == 1.0 and scores["right"] < 0.5
    weights = np.r_[np.ones(150), np.zeros(150)]
    weighted = probe.concept_scores(slots, table, sample_weight=weights)
    assert weighted.mean() == probe.score(slots, table, sample_weight=weights)
    with pytest.raises(NotFittedError):
        SlotProbe().concept_scores(slots, table)
