"""Training control: data scaling, restarts, plateau stopping, diagnostics."""

import os
import pickle
import threading
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import Callback, GradientNormClipping

from compgen_sk import EncoderBaseline, GenerativeInverter, ReplayEncoder
from compgen_sk.estimators import _base
from compgen_sk.estimators._base import MIN_TRAINING_R2
from compgen_sk.estimators._nets import DivergenceError
from compgen_sk.modules import MLPRenderer

SMALL = dict(
    encoder_params={"hidden": (32,)},
    batch_size=32,
    search_steps=0,
    random_state=0,
)


@pytest.fixture(scope="module")
def easy():
    """Two one-dimensional slots rendered additively into 16 features."""
    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, size=(300, 2))
    W = rng.normal(size=(2, 16))
    X = np.tanh(z[:, :1]) * W[0] + z[:, 1:] ** 2 * W[1]
    return X.astype(np.float32)


@pytest.fixture(scope="module")
def noise():
    """No structure: nothing beyond a floor can be learned."""
    return np.random.default_rng(1).normal(size=(200, 20)).astype(np.float32)


def _baseline(**params):
    """A small one-slot EncoderBaseline."""
    small = {k: v for k, v in SMALL.items() if k != "search_steps"}
    return EncoderBaseline(**{"n_slots": 1, "slot_dim": 1, **small, **params})


def _fit_quietly(estimator, X, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


def test_n_init_keeps_the_restart_with_the_lowest_final_loss(easy):
    est = _fit_quietly(
        GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=4, n_init=3, **SMALL),
        easy,
    )
    assert est.init_losses_.shape == (3,)
    assert len(set(est.init_losses_)) == 3  # three different initializations
    assert est.best_init_ == int(np.argmin(est.init_losses_))
    assert est.loss_curve_[-1] == pytest.approx(est.init_losses_.min())
    assert est.net_.history[-1, "train_loss"] == pytest.approx(est.loss_curve_[-1])


def test_n_init_is_reproducible_and_single_init_matches_its_restart(easy):
    params = dict(n_slots=2, slot_dim=1, max_epochs=3, **SMALL)
    a = _fit_quietly(GenerativeInverter(n_init=2, **params), easy)
    b = _fit_quietly(GenerativeInverter(n_init=2, **params), easy)
    np.testing.assert_array_equal(a.init_losses_, b.init_losses_)
    np.testing.assert_array_equal(a.transform(easy), b.transform(easy))
    # The first restart is seeded as a single fit is.
    single = _fit_quietly(GenerativeInverter(n_init=1, **params), easy)
    assert single.init_losses_[0] == pytest.approx(a.init_losses_[0])


def test_plateau_stopping_ends_a_converged_fit_early(easy):
    est = GenerativeInverter(
        n_slots=2, slot_dim=1, decoder="additive", max_epochs=300, **SMALL
    ).fit(easy)
    assert est.converged_
    assert est.n_iter_ < 300
    assert est.n_iter_ == len(est.loss_curve_) == len(est.net_.history)
    assert est.score(easy) > 0.99


def test_plateau_stopping_on_data_without_structure(noise):
    est = _fit_quietly(_baseline(max_epochs=300, tol=1e-2, n_iter_no_change=3), noise)
    assert est.converged_
    assert est.n_iter_ < 100


def test_tol_none_trains_every_epoch(easy):
    est = _fit_quietly(
        GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=6, tol=None, **SMALL),
        easy,
    )
    assert est.n_iter_ == 6
    assert not est.converged_
    assert "plateau_stopping" not in dict(est.net_.callbacks_)


def test_no_convergence_warning_for_a_good_converged_fit(easy):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=300, **SMALL)
        est.fit(easy)
    assert est.converged_


def test_warns_when_stopped_while_the_loss_still_falls_fast(easy):
    est = GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=8, lr=3e-4, **SMALL)
    with pytest.warns(ConvergenceWarning, match="still fell by .*raise max_epochs"):
        est.fit(easy)
    assert not est.converged_


def test_replay_warning_names_its_epoch_cap(easy):
    generator = _fit_quietly(
        GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=20, **SMALL), easy
    )
    replay = ReplayEncoder(generator, replay_epochs=8, lr=3e-4, random_state=0)
    with pytest.warns(
        ConvergenceWarning, match="stopped at replay_epochs=8 .*raise replay_epochs"
    ):
        replay.fit(easy)
    assert not replay.converged_


def test_warns_when_the_training_data_is_reconstructed_poorly(noise):
    est = _baseline(max_epochs=30)
    with pytest.warns(ConvergenceWarning, match=f"training R² .* < {MIN_TRAINING_R2}"):
        est.fit(noise)
    # The warning's R² is that of the last epoch's standardized loss.
    assert est.score(noise) < MIN_TRAINING_R2


def test_the_poor_fit_warning_on_images_names_the_other_renderer():
    images = np.random.default_rng(0).random((64, 3, 8, 8)).astype(np.float32)
    params = dict(SMALL, encoder="mlp")
    est = GenerativeInverter(
        n_slots=2,
        slot_dim=1,
        max_epochs=3,
        decoder_params={"renderer": "broadcast"},
        **params,
    )
    with pytest.warns(ConvergenceWarning, match="renderer': 'mlp'"):
        est.fit(images)
    est.set_params(decoder_params={"renderer": "mlp"})
    with pytest.warns(ConvergenceWarning, match="renderer': 'broadcast'"):
        est.fit(images)
    # "auto" has tried both, and vectors have one renderer: no hint.
    for X in (images, images.reshape(64, -1)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.set_params(decoder_params=None).fit(X)
        poor = [w for w in caught if "poorly" in str(w.message)]
        assert poor and "renderer" not in str(poor[0].message)


def _patterns(n=128, size=8, seed=0):
    """Images mixing two fixed random patterns: content at fixed places."""
    rng = np.random.default_rng(seed)
    patterns = rng.random((2, 1, size, size))
    return np.einsum("nk,kchw->nchw", rng.random((n, 2)), patterns).astype(np.float32)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_auto_renderer_keeps_the_fit_with_the_lower_final_loss(n_jobs):
    X = _patterns()
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=8, encoder="mlp")
    auto = GenerativeInverter(**params, n_jobs=n_jobs).fit(X)
    losses = auto.renderer_losses_
    assert set(losses) == {"mlp", "broadcast"}
    assert auto.renderer_ == min(losses, key=losses.get)
    # Fixed patterns are what the MLP renderer draws well.
    assert auto.renderer_ == "mlp" and losses["mlp"] < losses["broadcast"]
    assert isinstance(auto.decoder_.decoder.slots.renderers[0], MLPRenderer)
    # Each renderer trains from the restart's seed, as the fit that names it
    # does: the kept fit is that fit, and both final losses are theirs.
    for renderer in ("mlp", "broadcast"):
        named = GenerativeInverter(**params, decoder_params={"renderer": renderer})
        named.fit(X)
        assert named.renderer_ == renderer and named.renderer_losses_ is None
        assert named.loss_curve_[-1] == pytest.approx(losses[renderer], rel=1e-5)
        if renderer == auto.renderer_ and n_jobs == 1:  # the same arithmetic
            assert auto.loss_curve_ == named.loss_curve_
            np.testing.assert_array_equal(auto.transform(X), named.transform(X))
        elif renderer == auto.renderer_:  # in workers, on fewer threads
            np.testing.assert_allclose(auto.loss_curve_, named.loss_curve_, rtol=1e-5)
            np.testing.assert_allclose(
                auto.transform(X), named.transform(X), rtol=1e-4, atol=1e-5
            )
    assert auto.init_losses_[0] == min(losses.values())


@pytest.mark.parametrize(
    "diverging, kept", [("broadcast", "mlp"), ("mlp", "broadcast"), ("both", None)]
)
def test_auto_renderer_keeps_the_one_that_did_not_diverge(monkeypatch, diverging, kept):
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=2, encoder="mlp")
    real = GenerativeInverter._fit_net

    def diverges(self, net, *args):
        if diverging in (self.renderer_, "both"):
            raise DivergenceError(1)
        return real(self, net, *args)

    monkeypatch.setattr(GenerativeInverter, "_fit_net", diverges)
    auto = GenerativeInverter(**params, n_jobs=1)  # the patch lives in this process
    if kept is None:
        with pytest.raises(ValueError, match=r"diverged.*epoch 1"):
            auto.fit(X)
        return
    auto.fit(X)
    assert auto.renderer_ == kept and auto.renderer_losses_[diverging] == np.inf
    assert np.isfinite(auto.renderer_losses_[kept])
    assert np.isfinite(auto.transform(X)).all()


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_verbose_auto_names_the_renderer_of_each_epoch_table(capsys, n_jobs):
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=1, encoder="mlp")
    GenerativeInverter(**params, verbose=1, n_jobs=n_jobs).fit(X)
    out = capsys.readouterr().out
    mlp, broadcast = out.index("renderer='mlp'"), out.index("renderer='broadcast'")
    # One epoch table per renderer, each after the line that names it (worker
    # processes' logs are printed here, in order).
    assert mlp < out.index("train_loss") < broadcast
    assert out.count("train_loss") == 2
    assert out.index("train_loss", broadcast) > broadcast
    GenerativeInverter(**params, decoder_params={"renderer": "mlp"}, verbose=1).fit(X)
    assert "renderer=" not in capsys.readouterr().out


def test_auto_renderer_with_restarts_reports_the_kept_restart():
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=3, encoder="mlp")
    auto = GenerativeInverter(**params, n_init=2).fit(X)
    losses = auto.renderer_losses_
    assert auto.renderer_ == min(losses, key=losses.get)
    assert auto.init_losses_[auto.best_init_] == min(losses.values())
    assert auto.loss_curve_[-1] == min(losses.values())
    assert auto.init_losses_.min() == auto.init_losses_[auto.best_init_]
    kind = {"mlp": "MLPRenderer", "broadcast": "BroadcastRenderer"}[auto.renderer_]
    assert type(auto.decoder_.decoder.slots.renderers[0]).__name__ == kind


class _RecordsItsProcess(Callback):
    """Records the process and torch's threads of each epoch in the history,
    and warns with the process id."""

    def on_epoch_end(self, net, **kwargs):
        net.history.record("pid", os.getpid())
        net.history.record("threads", torch.get_num_threads())
        warnings.warn(f"pid {os.getpid()}", UserWarning, stacklevel=1)


def _pids(caught):
    return {str(w.message) for w in caught if str(w.message).startswith("pid ")}


def test_candidates_fitted_side_by_side_equal_those_fitted_in_turn():
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=3, encoder="mlp", n_init=2)
    callbacks = [_RecordsItsProcess()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        in_turn = GenerativeInverter(**params, n_jobs=1, callbacks=callbacks).fit(X)
        side_by_side = GenerativeInverter(**params, n_jobs=2, callbacks=callbacks)
        side_by_side.fit(X)
    # In worker processes, each with half of torch's threads.
    assert in_turn.net_.history[-1, "pid"] == os.getpid()
    assert side_by_side.net_.history[-1, "pid"] != os.getpid()
    threads = max(1, torch.get_num_threads() // 2)
    assert side_by_side.net_.history[-1, "threads"] == threads
    assert side_by_side.renderer_ == in_turn.renderer_
    assert side_by_side.best_init_ == in_turn.best_init_
    np.testing.assert_allclose(
        side_by_side.init_losses_, in_turn.init_losses_, rtol=1e-5
    )
    assert side_by_side.renderer_losses_ == pytest.approx(in_turn.renderer_losses_)
    np.testing.assert_allclose(
        side_by_side.transform(X), in_turn.transform(X), rtol=1e-4, atol=1e-5
    )


def test_workers_are_reused_and_their_warnings_reach_the_caller_once_each():
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=3, encoder="mlp")
    est = GenerativeInverter(**params, n_jobs=2, callbacks=[_RecordsItsProcess()])
    pids = []
    for _ in range(3):  # the first starts the workers
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(X)
        ours = [w for w in caught if str(w.message).startswith("pid ")]
        # Every epoch warns from one line: once per candidate, not per epoch.
        assert len(ours) == 2 and all(w.category is UserWarning for w in ours)
        assert ours[0].filename == __file__
        # Nothing else: in particular no note from joblib of stopped workers.
        others = [w for w in caught if w not in ours]
        assert all(issubclass(w.category, ConvergenceWarning) for w in others)
        pids.append(_pids(caught))
    assert not pids[2] & {f"pid {os.getpid()}"}
    assert pids[1] & pids[2]  # the same worker processes serve later fits
    # The module's filters apply to a worker's warning, as to the caller's.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", "pid", module=_RecordsItsProcess.__module__)
        est.fit(X)
    assert not _pids(caught)


def test_errors_and_divergence_in_workers_reach_the_caller():
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=2, encoder="mlp", n_jobs=2)
    bad = GenerativeInverter(**params, optimizer_params={"no_such_option": 1})
    with pytest.raises(ValueError, match="optimizer_params"):
        bad.fit(X)
    error = pickle.loads(pickle.dumps(DivergenceError(3)))
    assert error.epoch == 3 and str(error) == str(DivergenceError(3))


class _InAScript(torch.nn.Module):
    """A module of a user's script: worker processes could not import it."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16))

    def forward(self, x):
        return self.net(x)


_InAScript.__module__ = "__main__"


def test_classes_of_the_callers_script_are_fitted_in_turn():
    X = _patterns(n=64)
    est = GenerativeInverter(
        **{**SMALL, "encoder": _InAScript()}, n_slots=1, slot_dim=2, max_epochs=1
    )
    est.set_params(n_jobs=2, callbacks=[_RecordsItsProcess()])
    assert est._n_parallel(2, X, None) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    assert est.net_.history[-1, "pid"] == os.getpid()
    assert est.renderer_losses_ is not None  # both renderers, in turn


def test_how_many_candidates_fit_side_by_side(monkeypatch, tmp_path):
    X = _patterns(n=8)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    est = GenerativeInverter()
    assert est._n_parallel(2, X, None) == 2  # None: as many as torch's threads
    assert est._n_parallel(6, X, None) == 4
    assert est._n_parallel(1, X, None) == 1
    with joblib.parallel_config(n_jobs=1):  # as for scikit-learn's estimators
        assert est._n_parallel(2, X, None) == 1
    with joblib.parallel_config(n_jobs=3):
        assert est._n_parallel(6, X, None) == 3
    assert est.set_params(n_jobs=1)._n_parallel(6, X, None) == 1
    assert est.set_params(n_jobs=3)._n_parallel(6, X, None) == 3
    assert est.set_params(n_jobs=-1)._n_parallel(2, X, None) == min(
        2, joblib.cpu_count()
    )
    est.set_params(n_jobs=None)
    assert est._n_parallel(2, X.tolist(), None) == 1  # not an array: in turn
    assert est.set_params(device="meta")._n_parallel(2, X, None) == 1  # not CPU

    # Where joblib cannot start processes (threads of a threading backend,
    # daemonic workers), the default fits in turn rather than warn.
    def in_a_thread():
        found = []
        thread = threading.Thread(
            target=lambda: found.append(est._n_parallel(2, X, None))
        )
        thread.start()
        thread.join()
        return found

    est.set_params(device="cpu")
    assert in_a_thread() == [1]
    est.set_params(n_jobs=2)  # even when asked for
    assert in_a_thread() == [1]
    # In-memory arrays up to a size are shared; memory maps of any size.
    monkeypatch.setattr(_base, "_MAX_SHARED_BYTES", X.nbytes)
    bigger = np.concatenate([X, X[:1]])
    assert est._n_parallel(2, X, None) == 2
    assert est._n_parallel(2, bigger, None) == 1
    assert est._n_parallel(2, X, bigger) == 1
    assert (
        est._n_parallel(
            2, np.memmap(tmp_path / "X", "float32", "w+", shape=(99, 64)), None
        )
        == 2
    )


def test_a_plateau_ends_each_renderer_fit():
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=8, encoder="mlp")
    params.update(tol=10.0, n_iter_no_change=1)  # no epoch ever improves enough
    auto = GenerativeInverter(**params).fit(X)
    assert auto.renderer_losses_ is not None and auto.n_iter_ == 2
    for renderer in ("mlp", "broadcast"):
        named = GenerativeInverter(**params, decoder_params={"renderer": renderer})
        assert named.fit(X).n_iter_ == 2
        assert named.loss_curve_[-1] == pytest.approx(
            auto.renderer_losses_[renderer], rel=1e-5
        )


def test_renderer_is_reported_where_there_is_one(easy):
    vectors = GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=2, **SMALL)
    vectors.fit(easy)
    assert vectors.renderer_ == "mlp" and vectors.renderer_losses_ is None
    transformer = GenerativeInverter(
        n_slots=2, slot_dim=1, max_epochs=2, decoder="transformer", **SMALL
    ).fit(easy)
    assert transformer.renderer_ is None
    targets = np.random.default_rng(0).normal(size=(len(easy), 2))
    supervised = _baseline(objective="supervised", max_epochs=2).fit(easy, targets)
    assert supervised.renderer_ is None
    replay = ReplayEncoder(vectors, replay_epochs=2, random_state=0).fit(easy)
    assert not hasattr(replay, "renderer_")


def test_supervised_and_replay_fits_report_their_diagnostics(easy):
    rng = np.random.default_rng(0)
    y = rng.normal(size=(len(easy), 2, 1))
    sup = _fit_quietly(
        _baseline(n_slots=2, objective="supervised", max_epochs=3),
        easy,
        y,
    )
    assert sup.n_iter_ == 3 and len(sup.loss_curve_) == 3
    gen = _fit_quietly(
        GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=3, **SMALL), easy
    )
    replay = _fit_quietly(
        ReplayEncoder(gen, replay_epochs=4, n_init=2, random_state=0), easy
    )
    assert replay.n_iter_ == 4
    assert replay.init_losses_.shape == (2,)


def test_training_is_invariant_to_an_affine_change_of_units(easy):
    """Data are standardized inside the modules: fitting 10 X + 3 learns the
    same model as fitting X, up to float rounding."""
    params = dict(n_slots=2, slot_dim=1, max_epochs=3, tol=None, **SMALL)
    a = _fit_quietly(GenerativeInverter(**params), easy)
    b = _fit_quietly(GenerativeInverter(**params), 10 * easy + 3)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-3)
    np.testing.assert_allclose(a.transform(easy), b.transform(10 * easy + 3), atol=1e-3)
    np.testing.assert_allclose(
        10 * a.inverse_transform(a.transform(easy)) + 3,
        b.inverse_transform(b.transform(10 * easy + 3)),
        rtol=1e-3,
        atol=1e-2,
    )
    np.testing.assert_allclose(b.data_mean_, 10 * a.data_mean_ + 3, rtol=1e-5)
    assert b.data_scale_ == pytest.approx(10 * a.data_scale_, rel=1e-5)


def test_constant_data_have_a_usable_scale():
    X = np.ones((40, 6), dtype=np.float32)
    est = _fit_quietly(
        GenerativeInverter(n_slots=1, slot_dim=1, max_epochs=2, **SMALL), X
    )
    assert est.data_scale_ == 1.0
    assert np.isfinite(est.transform(X)).all()


def test_default_callbacks_are_named_and_a_user_callback_replaces_one(easy):
    est = _fit_quietly(
        GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=2, **SMALL), easy
    )
    callbacks = dict(est.net_.callbacks_)
    assert {"lr_plateau", "gradient_clipping", "plateau_stopping"} <= set(callbacks)
    clip = GradientNormClipping(gradient_clip_value=0.5)
    est = _fit_quietly(
        GenerativeInverter(
            n_slots=2,
            slot_dim=1,
            max_epochs=2,
            callbacks=[("gradient_clipping", clip)],
            **SMALL,
        ),
        easy,
    )
    assert dict(est.net_.callbacks_)["gradient_clipping"].gradient_clip_value == 0.5
    assert clip is not dict(est.net_.callbacks_)["gradient_clipping"]  # a copy


def test_learning_rate_halves_on_a_plateau(noise):
    est = _fit_quietly(_baseline(max_epochs=40, tol=1e-2, n_iter_no_change=30), noise)
    optimizer = est.net_.optimizer_
    assert optimizer.param_groups[0]["lr"] < est.lr


@pytest.mark.parametrize(
    "param, value, message",
    [
        ("n_init", 0, "n_init"),
        ("tol", -1.0, "tol"),
        ("n_iter_no_change", 0, "n_iter_no_change"),
        ("n_jobs", 0, "n_jobs"),
        ("n_jobs", 1.5, "n_jobs"),
    ],
)
def test_training_control_parameters_are_validated(easy, param, value, message):
    est = GenerativeInverter(**{param: value})
    with pytest.raises(ValueError, match=message):
        est.fit(easy)


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("Estimator", [GenerativeInverter, EncoderBaseline])
def test_divergence_stops_fit_with_an_error_naming_the_cause(easy, Estimator, n_jobs):
    est = Estimator(
        n_slots=2, slot_dim=1, max_epochs=50, lr=1e6, random_state=0, n_jobs=n_jobs
    )
    if n_jobs > 1:
        est.set_params(n_init=2)  # two candidates, fitted side by side
    with pytest.raises(ValueError, match=r"diverged.*epoch \d+.*lr=1000000\.0"):
        est.fit(easy)
    assert not hasattr(est, "net_")


def test_data_of_huge_magnitude_train_and_score_like_unit_data(easy):
    params = dict(n_slots=2, slot_dim=1, max_epochs=3, tol=None, **SMALL)
    params["search_steps"] = 5
    a = _fit_quietly(GenerativeInverter(**params), easy)
    b = _fit_quietly(GenerativeInverter(**params), easy * 1e30)
    assert np.isfinite(b.loss_curve_).all()
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-3)
    np.testing.assert_allclose(a.transform(easy), b.transform(easy * 1e30), atol=1e-3)
    assert b.score(easy * 1e30) == pytest.approx(a.score(easy), abs=1e-3)


def test_validation_split_follows_random_state(easy):
    def split_seed(seed):
        model = _baseline(max_epochs=1, validation_fraction=0.2, random_state=seed)
        return _fit_quietly(model, easy).net_.train_split.random_state

    assert split_seed(0) == split_seed(0)
    assert split_seed(0) != split_seed(1)


def test_loss_terms_are_recorded_as_floats(easy):
    model = _fit_quietly(
        GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=2, **SMALL), easy
    )
    batches = model.net_.history[-1, "batches"]
    assert batches and all(
        type(value) is float
        for batch in batches
        for key, value in batch.items()
        if key.startswith("train_") and key != "train_batch_size"
    )


def test_replay_stream_is_an_iterable_dataset_and_its_loader_is_strict(easy):
    import torch
    from torch.utils.data import IterableDataset

    from compgen_sk.estimators._loaders import StreamLoader
    from compgen_sk.inversion import ReplayStream

    decoder = torch.nn.Flatten()
    stream = ReplayStream(decoder, torch.zeros(10, 2, 3), n_replay=5)
    assert isinstance(stream, IterableDataset)
    pairs = list(stream)
    assert len(pairs) == 5 and pairs[0][0].shape == (6,)
    assert pairs[0][1].shape == (2, 3)
    with pytest.raises(ValueError, match="fixed order"):
        StreamLoader(stream, batch_size=2, shuffle=False)
    with pytest.raises(TypeError, match="unexpected keyword"):
        StreamLoader(stream, batch_size=2, num_workers=2)


def test_auto_interaction_weight_is_an_early_overlap_penalty_on_broadcast_only():
    assert GenerativeInverter().interaction_weight == 0.0  # opt-in
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=2, slot_dim=1, max_epochs=2, encoder="mlp", n_jobs=1)
    expected = {"broadcast": (0.1, 15, True), "mlp": (0.0, None, False)}
    for renderer, (weight, epochs, overlap) in expected.items():
        est = _fit_quietly(
            GenerativeInverter(
                **params,
                decoder_params={"renderer": renderer},
                interaction_weight="auto",
            ),
            X,
        )
        assert est.interaction_weight == "auto"  # the parameter is left as given
        net = est.net_
        assert (net.interaction_weight, net.interaction_epochs) == (weight, epochs)
        assert est.decoder_.decoder.overlap is overlap
        # The same fit as the recipe spelled out.
        spelled = GenerativeInverter(
            **params,
            decoder_params={"renderer": renderer},
            interaction_weight=weight,
            interaction_epochs=epochs,
        )
        _fit_quietly(spelled, X)
        assert spelled.loss_curve_ == est.loss_curve_
    # A user's epochs apply to the automatic weight; other decoders get none
    # and do not warn.
    est = _fit_quietly(
        GenerativeInverter(
            **params,
            decoder_params={"renderer": "broadcast"},
            interaction_weight="auto",
            interaction_epochs=1,
        ),
        X,
    )
    assert est.net_.interaction_epochs == 1
    for decoder in ("masked", "mlp"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            est = _fit_quietly(
                GenerativeInverter(
                    **params, decoder=decoder, interaction_weight="auto"
                ),
                X,
            )
        assert est.net_.interaction_weight == 0.0
