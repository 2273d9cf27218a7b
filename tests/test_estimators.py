"""scikit-learn conformance of the three slot estimators."""

import copy
import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks
from skorch.callbacks import Callback, EarlyStopping, ProgressBar
from torch import nn

from compgen_sk import (
    AdditiveDecoder,
    ConvEncoder,
    EncoderBaseline,
    GenerativeInverter,
    GradientSearch,
    MaskedDecoder,
    MLPDecoder,
    MLPEncoder,
    ReplayEncoder,
    SlotProbe,
    TransformerDecoder,
    load,
    save,
)
from compgen_sk.datasets import make_additive, make_sprites
from compgen_sk.estimators._nets import MatchedSlotLoss
from compgen_sk.modules import Standardize

FAST = dict(max_epochs=2, batch_size=16, random_state=0)


def _small(images=False, decoder=AdditiveDecoder):
    """Small encoder and decoder specifications (new objects on every call:
    nested set_params changes them in place)."""
    encoder = ConvEncoder(channels=8, hidden=32) if images else MLPEncoder(hidden=(32,))
    return dict(encoder=encoder, decoder=decoder(renderer="mlp", hidden=(32,)))


def _estimators():
    return [
        GenerativeInverter(search=GradientSearch(steps=3), **FAST),
        EncoderBaseline(**FAST),
        ReplayEncoder(
            GenerativeInverter(search=None, **FAST),
            max_epochs=1,
            n_replay=32,
            random_state=0,
        ),
    ]


@parametrize_with_checks(_estimators())
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def vectors():
    X, latents = make_additive(
        120, n_slots=2, slot_dim=2, n_features=16, return_X_y=True, random_state=0
    )
    return X, latents


@pytest.fixture(scope="module")
def images():
    X, latents = make_sprites(
        48, image_size=16, scale_range=(0.15, 0.3), return_X_y=True, random_state=0
    )
    return X, latents


def _make(name, images=False):
    """A tiny estimator of each kind, for vectors or for images."""
    if name == "generative":
        return GenerativeInverter(
            search=GradientSearch(steps=5), **FAST, **_small(images)
        )
    if name == "baseline":
        return EncoderBaseline(**FAST, **_small(images, MLPDecoder))
    generator = GenerativeInverter(search=None, **FAST, **_small(images))
    return ReplayEncoder(
        generator,
        max_epochs=1,
        n_replay=32,
        random_state=0,
        encoder=_small(images)["encoder"],
    )


NAMES = ["generative", "baseline", "replay"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vectors_and_images_give_slot_features(name, dtype, vectors, images):
    for X, _ in (vectors, images):
        X = X.astype(dtype)
        est = _make(name, images=X.ndim == 4).fit(X)
        Z = est.transform(X)
        assert Z.shape == (len(X), 8)
        assert Z.dtype == np.float32
        assert est.n_features_in_ == int(np.prod(X.shape[1:]))
        assert est.input_shape_ == X.shape[1:]
        assert (est.n_slots_, est.slot_dim_) == (2, 4)
        assert np.isfinite(Z).all()


@pytest.mark.parametrize("name", NAMES)
def test_feature_names_and_pandas_output(name, vectors):
    X, _ = vectors
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = _make(name).fit(frame)
    names = est.get_feature_names_out()
    assert list(names) == [f"slot{k}_{j}" for k in range(2) for j in range(4)]
    assert list(est.feature_names_in_) == list(frame.columns)
    out = est.set_output(transform="pandas").transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(names)
    np.testing.assert_allclose(
        out.to_numpy(), est.set_output(transform="default").transform(frame)
    )


@pytest.mark.parametrize("name", NAMES)
def test_same_random_state_same_result_and_other_state_differs(name, vectors):
    X, _ = vectors
    first = _make(name).fit(X).transform(X)
    second = _make(name).fit(X).transform(X)
    np.testing.assert_array_equal(first, second)
    other = clone(_make(name)).set_params(random_state=1)
    if name == "replay":
        other.set_params(generator__random_state=1)
    assert not np.allclose(first, other.fit(X).transform(X))


@pytest.mark.parametrize("name", NAMES)
def test_fit_does_not_touch_global_torch_rng(name, vectors):
    X, _ = vectors
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _make(name).fit(X)
    np.testing.assert_array_equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", NAMES)
def test_pickle_and_joblib_round_trips_reproduce_transform(name, vectors, tmp_path):
    X, _ = vectors
    est = _make(name).fit(X)
    expected = est.transform(X)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.transform(X), expected)
    joblib.dump(est, tmp_path / "est.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "est.joblib").transform(X), expected
    )


@pytest.mark.parametrize("name", NAMES)
def test_inputs_are_not_modified(name, vectors):
    X, _latents = vectors
    X_copy = X.copy()
    est = _make(name).fit(X)
    est.transform(X)
    np.testing.assert_array_equal(X, X_copy)
    X_ro = X.copy()
    X_ro.setflags(write=False)
    est.transform(X_ro)


@pytest.mark.parametrize("name", NAMES)
def test_unfitted_estimator_raises_not_fitted(name, vectors):
    X, _ = vectors
    est = _make(name)
    with pytest.raises(NotFittedError):
        est.transform(X)
    if name != "replay":
        with pytest.raises(NotFittedError):
            est.inverse_transform(np.zeros((2, 8)))


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_get_clear_errors(name, vectors, images):
    X, _ = vectors
    est = _make(name).fit(X)
    with pytest.raises(ValueError, match=r"X has 15 features, but .* expecting 16"):
        est.transform(X[:, :15])
    with pytest.raises(ValueError, match="shape"):
        est.transform(images[0])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.transform(bad)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        _make(name).fit(bad)
    with pytest.raises(ValueError, match="0 sample"):
        est.transform(X[:0])
    with pytest.raises(ValueError, match="images"):
        _make(name).fit(X.reshape(len(X), 4, 4))
    with pytest.raises(ValueError, match="Z must have shape"):
        est.inverse_transform(np.zeros((2, 7)))


@pytest.mark.parametrize("name", NAMES)
def test_fit_rejects_one_sample_strings_and_a_y_of_another_length(name, vectors):
    X, latents = vectors
    with pytest.raises(ValueError, match="1 sample"):
        _make(name).fit(X[:1])
    with pytest.raises(ValueError, match="holds strings"):
        _make(name).fit(X.astype(str))
    # Checked before training, also where y is ignored.
    est = _make(name)
    with pytest.raises(ValueError, match="y has 119 samples but X has 120"):
        est.fit(X, latents[:-1])
    assert not hasattr(est, "net_")


def test_image_shape_mismatch_names_both_shapes(images):
    X, _ = images
    est = _make("generative", images=True).fit(X)
    with pytest.raises(ValueError, match=r"\(3, 8, 8\).*\(3, 16, 16\)"):
        est.transform(X[:, :, :8, :8])


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_slots": 0}, "n_slots"),
        ({"slot_dim": -1}, "slot_dim"),
        ({"decoder": "convolutional"}, "decoder"),
        ({"search": "adam"}, "search"),
        ({"search": GradientSearch(steps=-5)}, "'steps' parameter of GradientSearch"),
        ({"lr": 0.0}, "lr"),
        ({"kl_weight": -1.0}, "kl_weight"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"encoder": "resnet"}, "encoder"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        (
            {"decoder": AdditiveDecoder(hidden=3)},
            "'hidden' parameter of AdditiveDecoder",
        ),
        ({"decoder": AdditiveDecoder(renderer="nope")}, "'renderer' parameter"),
        ({"decoder": AdditiveDecoder(renderer=["mlp", "mlp"])}, "distinct"),
        ({"encoder": MLPEncoder(hidden=3)}, "'hidden' parameter of MLPEncoder"),
        ({"encoder": ConvEncoder(channels=0)}, "'channels' parameter of ConvEncoder"),
        ({"optimizer_params": {"momentumm": 0.9}}, "optimizer_params"),
        ({"device": "gpu0"}, "device"),
    ],
)
def test_invalid_parameters_are_named(params, match, vectors):
    X, _ = vectors
    with pytest.raises(ValueError, match=match):
        GenerativeInverter(**FAST).set_params(**params).fit(X)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_cuda_requested_without_cuda_is_a_clear_error(vectors):
    X, _ = vectors
    with pytest.raises(ValueError, match="CUDA is not available"):
        GenerativeInverter(device="cuda", **FAST).fit(X)


def test_supervised_baseline_requires_y_and_reads_latents(vectors):
    X, latents = vectors
    with pytest.raises(ValueError, match="requires y"):
        EncoderBaseline(objective="supervised", **FAST).fit(X)
    with pytest.raises(ValueError, match="n_slots=3"):
        EncoderBaseline(objective="supervised", n_slots=3, **FAST).fit(X, latents)
    est = EncoderBaseline(
        objective="supervised", slot_dim=2, max_epochs=40, batch_size=16, random_state=0
    )
    flat = latents.reshape(len(latents), -1)
    est.fit(X, flat)
    assert est.score(X, latents) > 0.8
    assert est.score(X, latents) == pytest.approx(est.score(X, flat))
    assert not hasattr(est, "inverse_transform")
    # One slot with one latent: y may be 1-D, an array or a Series.
    one = EncoderBaseline(objective="supervised", n_slots=1, **FAST)
    one.fit(X, pd.Series(latents[:, 0, 0]))
    assert one.target_mean_.shape == (1, 1)
    assert np.isfinite(one.score(X, latents[:, 0, 0]))
    with pytest.raises(ValueError, match="y is 1-D"):
        EncoderBaseline(objective="supervised", **FAST).fit(X, latents[:, 0, 0])


def test_supervised_baseline_accepts_a_concept_table():
    bunch = make_additive(
        120, n_slots=2, slot_dim=2, n_features=16, support="random", random_state=0
    )
    est = EncoderBaseline(objective="supervised", **FAST).fit(
        bunch.data, bunch.concepts
    )
    # Two binned concepts of 4 bins per slot: one-hot targets of width 8.
    assert est.target_mean_.shape == (2, 8)
    assert np.isfinite(est.score(bunch.data, bunch.concepts))


def test_baseline_decoder_is_an_mlp_decoder_only(vectors):
    X, _ = vectors
    est = EncoderBaseline(decoder=MLPDecoder(hidden=(24,)), **FAST).fit(X)
    assert est.renderer_ == "mlp" and est.renderer_losses_ is None
    widths = [
        m.out_features for m in est.decoder_.modules() if isinstance(m, nn.Linear)
    ]
    assert widths == [24, 16]
    for decoder in ("additive", AdditiveDecoder()):
        with pytest.raises(ValueError, match="'decoder' parameter of EncoderBaseline"):
            EncoderBaseline(decoder=decoder, **FAST).fit(X)


def test_user_backbone_is_used_and_not_trained_in_place(vectors):
    X, _ = vectors
    backbone = nn.Sequential(nn.Linear(16, 24), nn.Tanh())
    before = copy.deepcopy(backbone.state_dict())
    est = EncoderBaseline(encoder=backbone, **FAST).fit(X)
    standardize, fitted_backbone = est.encoder_.backbone
    assert est.encoder_ is est.net_.module_.encoder
    assert isinstance(standardize, Standardize)
    assert isinstance(fitted_backbone[1], nn.Tanh)
    assert fitted_backbone is not backbone
    for key, value in backbone.state_dict().items():
        torch.testing.assert_close(value, before[key])


def test_callbacks_progress_bar_and_early_stopping(vectors):
    X, _ = vectors
    callbacks = [ProgressBar(), EarlyStopping(patience=1, threshold=10.0)]
    est = GenerativeInverter(
        max_epochs=20,
        validation_fraction=0.25,
        callbacks=callbacks,
        random_state=0,
        search=None,
        **_small(),
    )
    try:
        est.fit(X)
    except KeyboardInterrupt as exc:  # skorch's EarlyStopping stops by raising one
        pytest.fail(f"fit raised {exc!r} when EarlyStopping ended training")
    history = est.net_.history
    assert "valid_loss" in history[-1]
    # A threshold no epoch can beat stops training after patience + 1 epochs.
    assert len(history) == 2
    # The estimator trained copies: the user's callbacks keep their initial state.
    assert callbacks[1].misses_ == 0
    assert callbacks[1].dynamic_threshold_ is None


def test_optimizer_class_and_params_reach_the_optimizer(vectors):
    X, _ = vectors
    est = GenerativeInverter(
        optimizer=torch.optim.SGD, optimizer_params={"momentum": 0.5}, lr=0.01, **FAST
    ).fit(X)
    optimizer = est.net_.optimizer_
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["momentum"] == 0.5
    assert optimizer.param_groups[0]["lr"] == 0.01


def test_kl_weight_adds_the_weighted_kl_term_to_the_loss(vectors):
    X, _ = vectors
    deterministic = GenerativeInverter(**FAST, **_small()).fit(X)
    assert deterministic.encoder_.log_var is None
    assert "train_kl" not in deterministic.net_.history[-1, "batches"][0]
    vae = GenerativeInverter(kl_weight=0.5, **FAST, **_small()).fit(X)
    assert vae.encoder_.log_var is not None
    for batch in vae.net_.history[-1, "batches"]:
        assert batch["train_kl"] > 0
        assert batch["train_loss"] == pytest.approx(
            batch["train_reconstruction"] + 0.5 * batch["train_kl"], rel=1e-5
        )
    # kl_weight=0 keeps the VAE head and records the term without weighing it.
    free = GenerativeInverter(kl_weight=0.0, **FAST, **_small()).fit(X)
    assert free.encoder_.log_var is not None
    batch = free.net_.history[-1, "batches"][0]
    assert batch["train_loss"] == pytest.approx(batch["train_reconstruction"], rel=1e-6)


def test_grid_search_over_estimator_parameters(vectors):
    X, _ = vectors
    grid = GridSearchCV(
        GenerativeInverter(**FAST, search=GradientSearch(steps=2)),
        {"slot_dim": [2, 4], "decoder": ["additive", "mlp"], "lr": [1e-3]},
        cv=KFold(2),
    ).fit(X)
    assert set(grid.best_params_) == {"slot_dim", "decoder", "lr"}
    assert len(grid.cv_results_["params"]) == 4
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()


# ---------------------------------------------------- specification objects


def test_specifications_are_nested_parameters_that_clone_copies():
    decoder = AdditiveDecoder(renderer="broadcast", hidden=(16,))
    encoder = ConvEncoder(channels=8)
    search = GradientSearch(steps=7, lr=0.1)
    est = GenerativeInverter(decoder=decoder, encoder=encoder, search=search)
    params = est.get_params(deep=True)
    assert params["decoder__renderer"] == "broadcast"
    assert params["decoder__hidden"] == (16,)
    assert params["encoder__channels"] == 8
    assert params["search__steps"] == 7
    assert params["search__lr"] == 0.1
    assert params["decoder"] is decoder and params["search"] is search
    copied = clone(est)
    for key in ("decoder", "encoder", "search"):
        assert copied.get_params()[key] is not params[key]  # copies ...
        assert copied.get_params()[key].get_params() == params[key].get_params()
    # ... so that tuning the clone leaves the original as it was.
    copied.set_params(
        decoder__renderer="mlp",
        search__steps=0,
        encoder__channels=4,
        decoder__shared=True,
    )
    assert (decoder.renderer, search.steps, encoder.channels) == ("broadcast", 7, 8)
    assert decoder.shared is False
    assert copied.get_params()["decoder__renderer"] == "mlp"
    assert copied.get_params()["search__steps"] == 0
    assert copied.get_params()["encoder__channels"] == 4
    replay = ReplayEncoder(search=GradientSearch(restarts=3), encoder=MLPEncoder())
    assert replay.get_params()["search__restarts"] == 3
    assert replay.get_params()["encoder__hidden"] == (256, 256)
    assert "decoder__embed_dim" in GenerativeInverter(
        decoder=TransformerDecoder()
    ).get_params(deep=True)


def test_strings_stand_for_the_specifications_at_their_defaults(vectors):
    X, _ = vectors
    for name, spec in (("additive", AdditiveDecoder()), ("mlp", MLPDecoder())):
        a = GenerativeInverter(decoder=name, search="gradient", **FAST).fit(X)
        b = GenerativeInverter(decoder=spec, search=GradientSearch(), **FAST).fit(X)
        assert a.loss_curve_ == b.loss_curve_
        np.testing.assert_array_equal(a.transform(X[:20]), b.transform(X[:20]))


def test_set_params_names_a_misspelled_nested_key():
    est = GenerativeInverter(decoder=AdditiveDecoder(), search=GradientSearch())
    with pytest.raises(ValueError, match="Invalid parameter 'hiden' for estimator Add"):
        est.set_params(decoder__hiden=(32,))
    with pytest.raises(ValueError, match="Invalid parameter 'step' for estimator Grad"):
        est.set_params(search__step=3)
    with pytest.raises(ValueError, match="Invalid parameter 'chanels'"):
        est.set_params(encoder=ConvEncoder(), encoder__chanels=3)


class _CountsFits(Callback):
    """Counts the fits that start training."""

    starts = 0

    def on_train_begin(self, net, **kwargs):
        type(self).starts += 1


@pytest.mark.parametrize(
    "params, name",
    [
        ({"decoder": AdditiveDecoder(overlap_penalty=-1)}, "overlap_penalty"),
        ({"decoder": AdditiveDecoder(penalty_epochs=0)}, "penalty_epochs"),
        ({"decoder": MaskedDecoder(shared="yes")}, "shared"),
        ({"decoder": TransformerDecoder(n_heads=0)}, "n_heads"),
        ({"encoder": ConvEncoder(n_layers=-1)}, "n_layers"),
        ({"search": GradientSearch(steps=-1)}, "steps"),
    ],
)
def test_an_invalid_specification_option_raises_at_fit(params, name, vectors, images):
    X = images[0] if "encoder" in params else vectors[0]
    _CountsFits.starts = 0
    est = GenerativeInverter(**FAST, callbacks=[_CountsFits()]).set_params(**params)
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of"):
        est.fit(X)
    assert _CountsFits.starts == 0  # raised before any training
    assert not hasattr(est, "net_")


@pytest.mark.parametrize(
    "option, value", [("steps", -1), ("lr", 0.0), ("restarts", 0), ("batch_size", 0)]
)
def test_an_invalid_search_option_raises_at_transform(option, value, vectors):
    X, _ = vectors
    est = GenerativeInverter(search=GradientSearch(steps=2), **FAST, **_small()).fit(X)
    est.set_params(**{f"search__{option}": value})
    with pytest.raises(
        InvalidParameterError, match=f"The '{option}' parameter of GradientSearch"
    ):
        est.transform(X)
    with pytest.raises(InvalidParameterError, match=f"'{option}' parameter"):
        est.score(X)


def test_search_may_be_changed_after_fit_without_refitting(vectors):
    X, _ = vectors
    est = GenerativeInverter(search=GradientSearch(steps=0), **FAST, **_small()).fit(X)
    net, guess = est.net_, est.encode(X)
    np.testing.assert_array_equal(est.transform(X), guess)
    searched = est.set_params(search=GradientSearch(steps=20)).transform(X)
    assert est.net_ is net  # not refitted
    assert not np.allclose(searched, guess)
    # Each image keeps the best slots it met: never worse than the guess.
    error = ((est.inverse_transform(searched) - X) ** 2).sum(axis=1)
    start = ((est.inverse_transform(guess) - X) ** 2).sum(axis=1)
    assert (error <= start * (1 + 1e-5)).all() and error.mean() < start.mean()
    more = est.set_params(search__steps=40).transform(X)
    assert not np.array_equal(more, searched)
    np.testing.assert_array_equal(est.set_params(search=None).transform(X), guess)
    assert est.net_ is net
    # Fitting with the final search gives the same net: search is not training.
    refit = GenerativeInverter(search=None, **FAST, **_small()).fit(X)
    np.testing.assert_array_equal(refit.transform(X), guess)


def test_replay_search_refines_on_the_generators_decoder(vectors):
    X, _ = vectors
    replay = _make("replay").fit(X)  # search=None: the encoder alone
    guess = replay.transform(X)
    searched = replay.set_params(search=GradientSearch(steps=10)).transform(X)
    assert not np.allclose(searched, guess)
    error = ((replay.inverse_transform(searched) - X) ** 2).sum(axis=1)
    start = ((replay.inverse_transform(guess) - X) ** 2).sum(axis=1)
    assert (error <= start * (1 + 1e-5)).all()


def test_grid_search_tunes_nested_decoder_and_search_options_in_a_pipeline(images):
    X, latents = images
    pipe = Pipeline(
        [
            (
                "inverter",
                GenerativeInverter(
                    n_slots=2,
                    slot_dim=2,
                    decoder=AdditiveDecoder(hidden=(16,)),
                    encoder=ConvEncoder(channels=4, hidden=16),
                    search=GradientSearch(steps=3),
                    max_epochs=1,
                    batch_size=16,
                    random_state=0,
                ),
            ),
            ("probe", SlotProbe(random_state=0)),
        ]
    )
    grid = {
        "inverter__decoder__renderer": ["mlp", "broadcast"],
        "inverter__search__steps": [0, 3],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        found = GridSearchCV(pipe, grid, cv=KFold(2)).fit(X, latents)
    assert set(found.best_params_) == set(grid)
    assert found.best_params_["inverter__decoder__renderer"] in ("mlp", "broadcast")
    assert found.best_params_["inverter__search__steps"] in (0, 3)
    assert len(found.cv_results_["params"]) == 4
    assert np.isfinite(found.cv_results_["mean_test_score"]).all()
    best = found.best_estimator_["inverter"]
    assert best.renderer_ == found.best_params_["inverter__decoder__renderer"]
    assert best.renderer_losses_ is None  # one renderer named
    assert best.search.steps == found.best_params_["inverter__search__steps"]
    # The pipeline's own specifications are left as they were.
    assert pipe.get_params()["inverter__decoder__renderer"] == "auto"
    assert pipe.get_params()["inverter__search__steps"] == 3


def test_replay_generator_params_are_nested_and_generator_kept(vectors):
    X, _ = vectors
    replay = _make("replay")
    assert replay.get_params()["generator__max_epochs"] == 2
    assert replay.get_params()["generator__decoder__hidden"] == (32,)
    replay.set_params(generator__slot_dim=3)
    replay.fit(X)
    assert replay.transform(X).shape == (len(X), 6)
    assert replay.generator_ is not replay.generator  # an unfitted one is cloned
    fitted = GenerativeInverter(slot_dim=2, **FAST).fit(X)
    state = copy.deepcopy(fitted.net_.module_.state_dict())
    reused = ReplayEncoder(fitted, max_epochs=1, random_state=0).fit(X)
    assert reused.generator_ is fitted
    for key, value in fitted.net_.module_.state_dict().items():
        torch.testing.assert_close(value, state[key])
    with pytest.raises(ValueError, match="fitted generator expects"):
        ReplayEncoder(fitted, max_epochs=1).fit(X[:, :8])


def test_replay_keeps_a_frozen_generator_through_clone_and_cv(vectors):
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import cross_validate

    X, _ = vectors
    fitted = GenerativeInverter(slot_dim=2, **FAST).fit(X)
    replay = ReplayEncoder(FrozenEstimator(fitted), max_epochs=1, random_state=0)
    folds = cross_validate(replay, X, cv=KFold(2), return_estimator=True)
    assert all(est.generator_ is fitted for est in folds["estimator"])
    direct = ReplayEncoder(fitted, max_epochs=1, random_state=0).fit(X)
    np.testing.assert_array_equal(
        clone(replay).fit(X).transform(X), direct.transform(X)
    )
    with pytest.raises(NotFittedError, match="inside the FrozenEstimator"):
        ReplayEncoder(FrozenEstimator(GenerativeInverter(**FAST))).fit(X)
    with pytest.raises(ValueError, match="must wrap a GenerativeInverter"):
        ReplayEncoder(FrozenEstimator(EncoderBaseline(**FAST).fit(X))).fit(X)


def test_a_frozen_generator_is_saved_and_loaded_frozen(vectors, tmp_path):
    from sklearn.frozen import FrozenEstimator

    X, _ = vectors
    fitted = GenerativeInverter(slot_dim=2, **FAST).fit(X)
    replay = ReplayEncoder(FrozenEstimator(fitted), max_epochs=1, random_state=0)
    save(replay.fit(X), tmp_path / "replay.zip")
    loaded = load(tmp_path / "replay.zip")
    assert isinstance(loaded.generator, FrozenEstimator)
    assert loaded.generator.estimator is loaded.generator_
    np.testing.assert_array_equal(loaded.transform(X), replay.transform(X))


def _spec_params(est):
    """An estimator's parameters with specification objects as their params."""
    return {
        key: (
            (type(value).__name__, value.get_params())
            if hasattr(value, "get_params")
            else value
        )
        for key, value in est.get_params(deep=False).items()
    }


def test_save_and_load_round_trip_specification_parameters(vectors, tmp_path):
    X, _ = vectors
    est = GenerativeInverter(
        decoder=AdditiveDecoder(renderer="mlp", shared=True, hidden=(32,)),
        encoder=MLPEncoder(hidden=(32,)),
        search=GradientSearch(steps=5, restarts=2),
        **FAST,
    ).fit(X)
    save(est, tmp_path / "model.pt")
    loaded = load(tmp_path / "model.pt")
    assert type(loaded.decoder) is AdditiveDecoder
    assert type(loaded.encoder) is MLPEncoder
    assert type(loaded.search) is GradientSearch
    assert _spec_params(loaded) == _spec_params(est)
    assert loaded.get_params(deep=True)["decoder__hidden"] == (32,)
    assert loaded.recombination_ == est.recombination_ == "pool"
    assert loaded.renderer_ == "mlp"
    for key, value in est.net_.module_.state_dict().items():
        assert torch.equal(loaded.net_.module_.state_dict()[key], value)
    np.testing.assert_array_equal(loaded.start_slots_, est.start_slots_)
    # Bit for bit: the encoder, the searched slots (two restarts), the decoder.
    np.testing.assert_array_equal(loaded.encode(X), est.encode(X))
    Z = est.transform(X)
    np.testing.assert_array_equal(loaded.transform(X), Z)
    np.testing.assert_array_equal(loaded.inverse_transform(Z), est.inverse_transform(Z))
    assert loaded.score(X) == est.score(X)
    # A ReplayEncoder with specifications, and its generator's, round-trips too.
    replay = ReplayEncoder(
        _make("generative"),
        encoder=MLPEncoder(hidden=(32,)),
        search=GradientSearch(steps=3),
        max_epochs=1,
        random_state=0,
    ).fit(X)
    save(replay, tmp_path / "replay.pt")
    loaded = load(tmp_path / "replay.pt")
    assert _spec_params(loaded.generator) == _spec_params(replay.generator)
    assert _spec_params(loaded.generator_) == _spec_params(replay.generator_)
    assert loaded.get_params()["search__steps"] == 3
    np.testing.assert_array_equal(loaded.transform(X), replay.transform(X))


def test_replay_recombines_as_the_generator_says(vectors):
    X, _ = vectors
    cases = [
        (AdditiveDecoder(), "shuffle"),
        (AdditiveDecoder(shared=True), "pool"),
        (MaskedDecoder(), "pool"),  # shares its renderer unless told otherwise
        (MaskedDecoder(shared=False), "shuffle"),
        (TransformerDecoder(embed_dim=8, n_heads=2, n_layers=1), "pool"),
        (MLPDecoder(), "shuffle"),
    ]
    for decoder, recombination in cases:
        generator = GenerativeInverter(slot_dim=2, decoder=decoder, **FAST).fit(X)
        assert generator.recombination_ == recombination
        replay = ReplayEncoder(generator, max_epochs=1, random_state=0).fit(X)
        assert replay.recombination_ == recombination
        pooled = isinstance(replay.net_.criterion_, MatchedSlotLoss)
        assert pooled is (recombination == "pool")


@pytest.mark.parametrize("decoder", ["additive", "masked", "transformer", "mlp"])
def test_every_decoder_fits_images_and_vectors(decoder, vectors, images):
    for X, _ in (vectors, images):
        est = GenerativeInverter(
            decoder=decoder, search=GradientSearch(steps=2), **FAST
        ).fit(X)
        assert est.inverse_transform(est.transform(X)).shape == X.shape


@pytest.mark.parametrize("decoder", ["additive", "masked"])
def test_render_slots_sum_to_the_rendering(decoder, images):
    X, _ = images
    est = GenerativeInverter(decoder=decoder, search=None, **FAST).fit(X)
    Z = est.transform(X[:5])
    per_slot = est.render_slots(Z)
    assert per_slot.shape == (5, 2, *X.shape[1:])
    np.testing.assert_allclose(per_slot.sum(1), est.inverse_transform(Z), atol=1e-5)


def test_render_slots_is_refused_for_mixing_decoders(images):
    X, _ = images
    est = GenerativeInverter(decoder="mlp", search=None, **FAST).fit(X)
    with pytest.raises(ValueError, match="no per-slot renderings"):
        est.render_slots(est.transform(X[:2]))


@pytest.mark.parametrize("renderer", ["conv", "broadcast"])
def test_image_renderers_draw_images_and_refuse_vectors(renderer, vectors, images):
    X, _ = images
    for decoder in (AdditiveDecoder, MaskedDecoder):
        est = GenerativeInverter(decoder=decoder(renderer=renderer), **FAST)
        est.fit(X)
        assert est.renderer_ == renderer
        assert est.inverse_transform(est.transform(X[:3])).shape == (3, *X.shape[1:])
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(restored.transform(X[:3]), est.transform(X[:3]))
    with pytest.raises(ValueError, match=f"renderer='{renderer}' draws images"):
        GenerativeInverter(decoder=AdditiveDecoder(renderer), **FAST).fit(vectors[0])


def test_conv_renderer_takes_its_channels_as_hidden(images):
    X, _ = images
    est = GenerativeInverter(decoder=AdditiveDecoder("conv", hidden=(6,)), **FAST)
    est.fit(X)
    convs = [m for m in est.decoder_.modules() if isinstance(m, nn.Conv2d)]
    assert convs and convs[-1].in_channels == 6
    with pytest.raises(ValueError, match="takes one width"):
        GenerativeInverter(decoder=AdditiveDecoder("conv", hidden=(6, 6)), **FAST).fit(
            X
        )


def test_broadcast_renderer_is_one_mlp_applied_at_every_pixel():
    from compgen_sk.modules import BroadcastRenderer

    torch.manual_seed(0)
    renderer = BroadcastRenderer(3, (2, 4, 5), hidden=(6, 7))
    z = torch.randn(8, 3)
    # The same MLP written the plain way: its input is the slot and the pixel's
    # (x, y) in [-1, 1]; its first layer is the renderer's two halves side by side,
    # and its weights are the stored ones times the gain.
    first = nn.Linear(5, 6)
    plain = nn.Sequential(first, *copy.deepcopy(renderer.net))
    with torch.no_grad():
        first.weight.copy_(
            torch.cat([renderer.from_slot.weight, renderer.from_coords.weight], 1)
        )
        first.bias.copy_(renderer.from_slot.bias)
        for weight in plain.parameters():
            weight.mul_(renderer.gain)
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, 4), torch.linspace(-1, 1, 5), indexing="ij"
    )
    expected = torch.empty(8, 2, 4, 5)
    for i in range(4):
        for j in range(5):
            where = torch.tensor([xs[i, j], ys[i, j]]).expand(8, 2)
            expected[:, :, i, j] = plain(torch.cat([z, where], 1))
    torch.testing.assert_close(renderer(z), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="at least one hidden layer"):
        BroadcastRenderer(3, (2, 4, 5), hidden=())


def test_broadcast_gain_is_a_learning_rate_multiplier_for_adam():
    from compgen_sk.modules import BroadcastRenderer

    z, target = torch.randn(8, 3), torch.randn(8, 2, 4, 5)

    def after_one_adam_step(gain, lr):
        torch.manual_seed(0)
        renderer = BroadcastRenderer(3, (2, 4, 5), hidden=(6, 7), gain=gain)
        before = renderer(z).detach()
        optimizer = torch.optim.Adam(renderer.parameters(), lr=lr)
        ((renderer(z) - target) ** 2).mean().backward()
        optimizer.step()
        return before, renderer(z).detach()

    before_1, after_1 = after_one_adam_step(gain=1.0, lr=3e-3)
    before_3, after_3 = after_one_adam_step(gain=3.0, lr=1e-3)
    torch.testing.assert_close(before_3, before_1)  # the same function at init
    torch.testing.assert_close(after_3, after_1)  # and the same step at 3x the lr
    assert not torch.allclose(after_3, before_3)
    for gain in (0, -1.0, float("nan"), "3"):
        with pytest.raises(ValueError, match="gain must be a positive number"):
            BroadcastRenderer(3, (2, 4, 5), gain=gain)


def test_broadcast_weights_load_with_the_gain_they_were_trained_at():
    from compgen_sk.modules import BroadcastRenderer

    torch.manual_seed(0)
    trained = BroadcastRenderer(3, (2, 4, 5), gain=1.0)
    loaded = BroadcastRenderer(3, (2, 4, 5))
    assert float(loaded.gain) == 9.0
    loaded.load_state_dict(trained.state_dict())
    assert float(loaded.gain) == 1.0
    z = torch.randn(4, 3)
    torch.testing.assert_close(loaded(z), trained(z))
    # Weights without their gain are refused, not read at a guessed gain.
    old = {k: v for k, v in trained.state_dict().items() if k != "gain"}
    with pytest.raises(RuntimeError, match="gain"):
        BroadcastRenderer(3, (2, 4, 5)).load_state_dict(old)
