"""scikit-learn conformance of the three slot estimators."""

import copy
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils.estimator_checks import parametrize_with_checks
from skorch.callbacks import EarlyStopping, ProgressBar
from torch import nn

from compgen_sk import EncoderBaseline, GenerativeInverter, ReplayEncoder
from compgen_sk.datasets import make_additive, make_sprites
from compgen_sk.modules import Standardize

FAST = dict(max_epochs=2, batch_size=16, random_state=0)
SMALL_MLP = dict(encoder_params={"hidden": (32,)}, decoder_params={"hidden": (32,)})


def _estimators():
    return [
        GenerativeInverter(search_steps=3, **FAST),
        EncoderBaseline(**FAST),
        ReplayEncoder(
            GenerativeInverter(search_steps=0, **FAST),
            replay_epochs=1,
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
    small = dict(SMALL_MLP)
    if images:
        small["encoder_params"] = {"channels": 8, "hidden": 32}
    if name == "generative":
        return GenerativeInverter(search_steps=5, **FAST, **small)
    if name == "baseline":
        return EncoderBaseline(**FAST, **small)
    generator = GenerativeInverter(search_steps=0, **FAST, **small)
    return ReplayEncoder(
        generator,
        replay_epochs=1,
        n_replay=32,
        random_state=0,
        encoder_params=small["encoder_params"],
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
        ({"search_steps": -5}, "search_steps"),
        ({"lr": 0.0}, "lr"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"encoder": "resnet"}, "encoder"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"decoder_params": {"widths": 3}}, "decoder_params"),
        ({"encoder_params": {"depth": 3}}, "encoder_params"),
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


def test_user_backbone_is_used_and_not_trained_in_place(vectors):
    X, _ = vectors
    backbone = nn.Sequential(nn.Linear(16, 24), nn.Tanh())
    before = copy.deepcopy(backbone.state_dict())
    est = EncoderBaseline(encoder=backbone, **FAST).fit(X)
    standardize, fitted_backbone = est.net_.module_.encoder.backbone
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
        search_steps=0,
        **SMALL_MLP,
    ).fit(X)
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


def test_grid_search_over_estimator_parameters(vectors):
    X, _ = vectors
    grid = GridSearchCV(
        GenerativeInverter(**FAST, search_steps=2),
        {"slot_dim": [2, 4], "decoder": ["additive", "mlp"], "lr": [1e-3]},
        cv=KFold(2),
    ).fit(X)
    assert set(grid.best_params_) == {"slot_dim", "decoder", "lr"}
    assert len(grid.cv_results_["params"]) == 4
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()


def test_replay_generator_params_are_nested_and_generator_kept(vectors):
    X, _ = vectors
    replay = _make("replay")
    assert replay.get_params()["generator__max_epochs"] == 2
    replay.set_params(generator__slot_dim=3)
    replay.fit(X)
    assert replay.transform(X).shape == (len(X), 6)
    assert replay.generator_ is not replay.generator  # an unfitted one is cloned
    fitted = GenerativeInverter(slot_dim=2, **FAST).fit(X)
    state = copy.deepcopy(fitted.net_.module_.state_dict())
    reused = ReplayEncoder(fitted, replay_epochs=1, random_state=0).fit(X)
    assert reused.generator_ is fitted
    for key, value in fitted.net_.module_.state_dict().items():
        torch.testing.assert_close(value, state[key])
    with pytest.raises(ValueError, match="fitted generator expects"):
        ReplayEncoder(fitted, replay_epochs=1).fit(X[:, :8])


def test_replay_keeps_a_frozen_generator_through_clone_and_cv(vectors):
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import cross_validate

    X, _ = vectors
    fitted = GenerativeInverter(slot_dim=2, **FAST).fit(X)
    replay = ReplayEncoder(FrozenEstimator(fitted), replay_epochs=1, random_state=0)
    folds = cross_validate(replay, X, cv=KFold(2), return_estimator=True)
    assert all(est.generator_ is fitted for est in folds["estimator"])
    direct = ReplayEncoder(fitted, replay_epochs=1, random_state=0).fit(X)
    np.testing.assert_array_equal(
        clone(replay).fit(X).transform(X), direct.transform(X)
    )
    with pytest.raises(NotFittedError, match="inside the FrozenEstimator"):
        ReplayEncoder(FrozenEstimator(GenerativeInverter(**FAST))).fit(X)
    with pytest.raises(ValueError, match="must wrap a GenerativeInverter"):
        ReplayEncoder(FrozenEstimator(EncoderBaseline(**FAST).fit(X))).fit(X)


def test_a_frozen_generator_is_saved_and_loaded_frozen(vectors, tmp_path):
    from sklearn.frozen import FrozenEstimator

    from compgen_sk import load, save

    X, _ = vectors
    fitted = GenerativeInverter(slot_dim=2, **FAST).fit(X)
    replay = ReplayEncoder(FrozenEstimator(fitted), replay_epochs=1, random_state=0)
    save(replay.fit(X), tmp_path / "replay.zip")
    loaded = load(tmp_path / "replay.zip")
    assert isinstance(loaded.generator, FrozenEstimator)
    assert loaded.generator.estimator is loaded.generator_
    np.testing.assert_array_equal(loaded.transform(X), replay.transform(X))


def test_replay_sampler_auto_pools_the_slots_of_a_shared_renderer(vectors):
    X, _ = vectors
    replays = {}
    for shared in (False, True):
        generator = GenerativeInverter(
            slot_dim=2, decoder_params={"shared": shared}, **FAST
        ).fit(X)
        replays[shared] = ReplayEncoder(generator, replay_epochs=1, random_state=0)
        assert replays[shared].fit(X).sampler_ == ("pool" if shared else "shuffle")
    # "auto" is exactly the sampler it resolves to, named.
    named = ReplayEncoder(
        replays[True].generator, sampler="pool", replay_epochs=1, random_state=0
    ).fit(X)
    np.testing.assert_array_equal(named.transform(X), replays[True].transform(X))
    assert named.net_.criterion_.__class__ is replays[True].net_.criterion_.__class__
    forced = ReplayEncoder(
        replays[True].generator, sampler="shuffle", replay_epochs=1
    ).fit(X)
    assert forced.sampler_ == "shuffle"
    # The masked decoder shares its renderer unless told otherwise.
    for params, sampler in (({}, "pool"), ({"shared": False}, "shuffle")):
        masked = GenerativeInverter(
            slot_dim=2, decoder="masked", decoder_params=params, **FAST
        ).fit(X)
        replay = ReplayEncoder(masked, replay_epochs=1, random_state=0).fit(X)
        assert replay.sampler_ == sampler


@pytest.mark.parametrize("decoder", ["additive", "masked", "transformer", "mlp"])
def test_every_decoder_fits_images_and_vectors(decoder, vectors, images):
    for X, _ in (vectors, images):
        est = GenerativeInverter(decoder=decoder, search_steps=2, **FAST).fit(X)
        assert est.inverse_transform(est.transform(X)).shape == X.shape


@pytest.mark.parametrize("decoder", ["additive", "masked"])
def test_render_slots_sum_to_the_rendering(decoder, images):
    X, _ = images
    est = GenerativeInverter(decoder=decoder, search_steps=0, **FAST).fit(X)
    Z = est.transform(X[:5])
    per_slot = est.render_slots(Z)
    assert per_slot.shape == (5, 2, *X.shape[1:])
    np.testing.assert_allclose(per_slot.sum(1), est.inverse_transform(Z), atol=1e-5)


def test_render_slots_is_refused_for_mixing_decoders(images):
    X, _ = images
    est = GenerativeInverter(decoder="mlp", search_steps=0, **FAST).fit(X)
    with pytest.raises(ValueError, match="no per-slot renderings"):
        est.render_slots(est.transform(X[:2]))


@pytest.mark.parametrize("renderer", ["conv", "broadcast"])
def test_image_renderers_draw_images_and_refuse_vectors(renderer, vectors, images):
    X, _ = images
    params = {"renderer": renderer}
    for decoder in ("additive", "masked"):
        est = GenerativeInverter(decoder=decoder, decoder_params=params, **FAST)
        est.fit(X)
        assert est.inverse_transform(est.transform(X[:3])).shape == (3, *X.shape[1:])
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(restored.transform(X[:3]), est.transform(X[:3]))
    with pytest.raises(ValueError, match=f"renderer='{renderer}' draws images"):
        GenerativeInverter(decoder_params=params, **FAST).fit(vectors[0])


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
    loaded.load_state_dict(trained.state_dict())
    z = torch.randn(4, 3)
    torch.testing.assert_close(loaded(z), trained(z))
    # Weights saved before the gain existed were trained at gain 1.
    old = {k: v for k, v in trained.state_dict().items() if k != "gain"}
    loaded = BroadcastRenderer(3, (2, 4, 5))
    loaded.load_state_dict(old)
    assert float(loaded.gain) == 1.0
    torch.testing.assert_close(loaded(z), trained(z))
