"""Training control: data scaling, restarts, plateau stopping, diagnostics,
candidate fits, threads and interrupts."""

import os
import pickle
import re
import signal
import threading
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from skorch.callbacks import Callback, GradientNormClipping

from compgen_sk import (
    AdditiveDecoder,
    EncoderBaseline,
    GenerativeInverter,
    MLPEncoder,
    ReplayEncoder,
    TransformerDecoder,
)
from compgen_sk._torch import n_cores
from compgen_sk.estimators import _training, _workers
from compgen_sk.estimators._nets import DivergenceError
from compgen_sk.estimators._training import MIN_TRAINING_R2
from compgen_sk.estimators._workers import can_use_workers
from compgen_sk.modules import BroadcastRenderer, MLPRenderer

SMALL = dict(
    encoder=MLPEncoder(hidden=(32,)),
    batch_size=32,
    search=None,
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
    small = {k: v for k, v in SMALL.items() if k != "search"}
    return EncoderBaseline(**{"n_slots": 1, "slot_dim": 1, **small, **params})


def _fit(estimator, X, y=None):
    """``estimator.fit``; a KeyboardInterrupt that it raises fails the test
    instead of ending the whole test session. (skorch's EarlyStopping, the
    estimators' plateau stopping, ends training by raising one, which fit must
    not take for Ctrl-C.)"""
    try:
        return estimator.fit(X, y)
    except KeyboardInterrupt as exc:
        pytest.fail(f"fit raised {exc!r}, though nothing interrupted it")


def _fit_quietly(estimator, X, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _fit(estimator, X, y)


def test_n_init_keeps_the_restart_with_the_lowest_final_loss(easy):
    est = _fit_quietly(
        GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=4, n_init=3, **SMALL),
        easy,
    )
    assert est.init_losses_.shape == (3,)
    assert len(set(est.init_losses_)) == 3  # three different initializations
    assert est.best_init_ == int(np.argmin(est.init_losses_))
    assert est.loss_curve_[-1] == est.init_losses_.min()
    assert est.net_.history[-1, "train_loss"] == est.loss_curve_[-1]


def test_n_init_is_reproducible_and_single_init_matches_its_restart(easy):
    params = dict(n_slots=2, slot_dim=1, max_epochs=3, **SMALL)
    a = _fit_quietly(GenerativeInverter(n_init=2, **params), easy)
    b = _fit_quietly(GenerativeInverter(n_init=2, **params), easy)
    np.testing.assert_array_equal(a.init_losses_, b.init_losses_)
    np.testing.assert_array_equal(a.transform(easy), b.transform(easy))
    # The first restart is seeded as a single fit is: the same arithmetic.
    single = _fit_quietly(GenerativeInverter(n_init=1, **params), easy)
    assert single.init_losses_[0] == a.init_losses_[0]


def test_plateau_stopping_ends_a_converged_fit_early(easy):
    est = _fit(
        GenerativeInverter(
            n_slots=2, slot_dim=1, decoder="additive", max_epochs=300, **SMALL
        ),
        easy,
    )
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
        _fit(est, easy)
    assert est.converged_


def test_warns_when_stopped_while_the_loss_still_falls_fast(easy):
    est = GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=8, lr=3e-4, **SMALL)
    with pytest.warns(
        ConvergenceWarning,
        match="has not converged: it stopped at max_epochs=8 while its training "
        "loss still fell by .*raise max_epochs",
    ):
        est.fit(easy)
    assert not est.converged_


def test_one_convergence_warning_gives_every_reason(easy):
    est = GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=8, lr=3e-4, **SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(easy)
    ours = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(ours) == 1
    message = str(ours[0].message)
    assert message.startswith("GenerativeInverter has not converged: it stopped at ")
    assert "raise max_epochs. Also, it fits its own training data poorly" in message
    r2 = 1 - np.mean(
        [b["train_reconstruction"] for b in est.net_.history[-1, "batches"]]
    )
    assert r2 < MIN_TRAINING_R2 and f"training R² {r2:.3f} < 0.9" in message
    assert ours[0].filename == __file__  # points at the caller's line


def test_replay_warning_names_its_epoch_cap(easy):
    generator = _fit_quietly(
        GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=20, tol=None, **SMALL),
        easy,
    )
    replay = ReplayEncoder(generator, max_epochs=8, lr=3e-4, random_state=0)
    with pytest.warns(
        ConvergenceWarning,
        match="ReplayEncoder has not converged: it stopped at max_epochs=8 "
        ".*raise max_epochs",
    ) as record:
        replay.fit(easy)
    assert not replay.converged_
    assert not any("replay_epochs" in str(w.message) for w in record)


def test_warns_when_the_training_data_is_reconstructed_poorly(noise):
    est = _baseline(max_epochs=30, tol=None)
    with pytest.warns(
        ConvergenceWarning,
        match=f"fits its own training data poorly: training R² .* < {MIN_TRAINING_R2}",
    ):
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
        decoder=AdditiveDecoder(renderer="broadcast"),
        **params,
    )
    with pytest.warns(ConvergenceWarning, match="try the decoder's renderer='mlp'"):
        est.fit(images)
    est.set_params(decoder=AdditiveDecoder(renderer="mlp"))
    with pytest.warns(ConvergenceWarning, match="renderer='broadcast'"):
        est.fit(images)
    # "auto" has tried both, and vectors have one renderer: no hint.
    for X in (images, images.reshape(64, -1)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.set_params(decoder="additive").fit(X)
        poor = [w for w in caught if "poorly" in str(w.message)]
        assert len(poor) == 1 and "renderer" not in str(poor[0].message)


def _patterns(n=128, size=8, seed=0):
    """Images mixing two fixed random patterns: content at fixed places."""
    rng = np.random.default_rng(seed)
    patterns = rng.random((2, 1, size, size))
    return np.einsum("nk,kchw->nchw", rng.random((n, 2)), patterns).astype(np.float32)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_auto_renderer_continues_the_candidate_with_the_lower_trial_loss(n_jobs):
    X = _patterns()
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=8, encoder="mlp")
    auto = _fit_quietly(GenerativeInverter(**params, n_jobs=n_jobs), X)
    losses = auto.renderer_losses_
    assert set(losses) == {"mlp", "broadcast"}
    assert auto.renderer_ == min(losses, key=losses.get)
    # Fixed patterns are what the MLP renderer draws well.
    assert auto.renderer_ == "mlp" and losses["mlp"] < losses["broadcast"]
    assert isinstance(auto.decoder_.decoder.slots.renderers[0], MLPRenderer)
    assert auto.n_iter_ == 8
    # Each renderer trains from the restart's seed, as the fit that names it
    # does, on one torch thread in this process or in a worker: its trial
    # loss is that fit's lowest in the first half of max_epochs, and the kept
    # fit, paused there and resumed, is the named fit bit for bit.
    auto.set_params(n_jobs=1)  # transform on the named fit's thread count
    for renderer in ("mlp", "broadcast"):
        named = GenerativeInverter(**params, decoder=AdditiveDecoder(renderer=renderer))
        _fit_quietly(named, X)
        assert named.renderer_ == renderer and named.renderer_losses_ is None
        assert min(named.loss_curve_[:4]) == losses[renderer]
        if renderer == auto.renderer_:
            assert auto.loss_curve_ == named.loss_curve_
            np.testing.assert_array_equal(auto.transform(X), named.transform(X))
            assert auto.init_losses_[0] == named.loss_curve_[-1]


def test_a_paused_fit_resumes_as_the_fit_that_never_paused(easy):
    """The learning-rate schedule, the plateau stop and the random state
    carry over the pause, also for a fit sent back from a worker."""
    params = dict(SMALL, n_slots=2, slot_dim=1, max_epochs=80)
    est = _fit_quietly(GenerativeInverter(**params), easy)
    inputs, targets = est._training_data(easy, None)
    (candidate,) = est._candidates()
    whole = _training.fit_candidate(est, 7, candidate, None, inputs, targets)
    # The plateau stop and the halved learning rate happen after the pause.
    assert 5 < len(whole.history) < 80
    assert whole.optimizer_.param_groups[0]["lr"] < est.lr
    paused = _training.fit_candidate(est, 7, candidate, 5, inputs, targets)
    assert isinstance(paused, _training.Paused) and len(paused.net.history) == 5
    paused = pickle.loads(pickle.dumps(paused))  # as from a worker
    resumed = _training.resume(est, paused, inputs, targets)
    assert resumed.history[:, "train_loss"] == whole.history[:, "train_loss"]
    assert resumed.history[:, "event_lr"] == whole.history[:, "event_lr"]


def test_renderer_lists_name_the_candidates_and_auto_fits_one_on_vectors(easy):
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=3, encoder="mlp")
    listed = _fit_quietly(
        GenerativeInverter(**params, decoder=AdditiveDecoder(["broadcast", "mlp"])), X
    )
    auto = _fit_quietly(GenerativeInverter(**params), X)
    # The list is "auto" on images, whatever its order.
    assert set(listed.renderer_losses_) == {"mlp", "broadcast"}
    assert listed.renderer_losses_ == auto.renderer_losses_
    losses = listed.renderer_losses_
    assert listed.renderer_ == min(losses, key=losses.get) == auto.renderer_
    # max_epochs=3: a trial of one epoch.
    assert listed.loss_curve_[0] == min(losses.values())
    kind = {"mlp": MLPRenderer, "broadcast": BroadcastRenderer}[listed.renderer_]
    assert isinstance(listed.decoder_.decoder.slots.renderers[0], kind)
    # A list of one is that renderer, with nothing to compare.
    one = _fit_quietly(
        GenerativeInverter(**params, decoder=AdditiveDecoder(["broadcast"])), X
    )
    assert one.renderer_ == "broadcast" and one.renderer_losses_ is None
    assert one.loss_curve_[0] == losses["broadcast"]
    # On vectors, "auto" is the MLP renderer alone: one fit.
    vectors = _fit_quietly(
        GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=2, **SMALL), easy
    )
    assert vectors.renderer_ == "mlp" and vectors.renderer_losses_ is None
    named = GenerativeInverter(
        n_slots=2, slot_dim=1, max_epochs=2, decoder=AdditiveDecoder("mlp"), **SMALL
    )
    assert _fit_quietly(named, easy).loss_curve_ == vectors.loss_curve_


def _diverging(monkeypatch, diverges):
    """Make every fit for which ``diverges(seed, renderer)`` diverge in epoch 1,
    as :func:`fit_candidate` reports it."""
    real = _training.fit_candidate

    def fit_candidate(estimator, seed, candidate, epochs, X, y):
        if diverges(seed, candidate.renderer):
            return DivergenceError(1)
        return real(estimator, seed, candidate, epochs, X, y)

    monkeypatch.setattr(_training, "fit_candidate", fit_candidate)


@pytest.mark.parametrize(
    "diverging, kept", [("broadcast", "mlp"), ("mlp", "broadcast"), ("both", None)]
)
def test_auto_renderer_keeps_the_one_that_did_not_diverge(monkeypatch, diverging, kept):
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=2, encoder="mlp")
    _diverging(monkeypatch, lambda seed, renderer: diverging in (renderer, "both"))
    auto = GenerativeInverter(**params, n_jobs=1)  # the patch lives in this process
    if kept is None:
        with pytest.raises(ValueError, match=r"diverged.*epoch 1"):
            auto.fit(X)
        assert not hasattr(auto, "net_")
        return
    _fit_quietly(auto, X)
    assert auto.renderer_ == kept and auto.renderer_losses_[diverging] == np.inf
    assert np.isfinite(auto.renderer_losses_[kept])
    assert auto.renderer_losses_[kept] == auto.loss_curve_[0]
    assert auto.init_losses_[0] == auto.loss_curve_[-1]
    assert np.isfinite(auto.transform(X)).all()


def test_a_restart_whose_every_fit_diverged_is_passed_over(monkeypatch):
    """Only when no fit ends finite does fit raise; a restart that diverged
    with every renderer loses to one that did not."""
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=2, encoder="mlp")
    seeds = []

    def diverges(seed, renderer):
        seeds.append(seed)
        return seed == seeds[0]  # every fit of the first restart

    _diverging(monkeypatch, diverges)
    est = _fit_quietly(GenerativeInverter(**params, n_init=2, n_jobs=1), X)
    assert len(set(seeds)) == 2 and len(seeds) == 4
    assert est.init_losses_[0] == np.inf and np.isfinite(est.init_losses_[1])
    assert est.best_init_ == 1
    assert all(np.isfinite(v) for v in est.renderer_losses_.values())
    assert est.loss_curve_[-1] == est.init_losses_[1]
    # With every fit of every restart diverged, fit raises.
    _diverging(monkeypatch, lambda seed, renderer: True)
    with pytest.raises(ValueError, match=r"GenerativeInverter diverged.*epoch 1"):
        GenerativeInverter(**params, n_init=2, n_jobs=1).fit(X)


def _epoch_rows(out):
    """The train_loss cell of every row of skorch's epoch tables in ``out``."""
    out = re.sub(r"\x1b\[[0-9;]*m", "", out)  # skorch colours the best losses
    return re.findall(r"^\s+\d+\s+(\d+\.\d+)\s", out, flags=re.MULTILINE)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_verbose_prints_the_epoch_table_of_every_candidate_in_order(capsys, n_jobs):
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=2, encoder="mlp")
    auto = _fit_quietly(GenerativeInverter(**params, verbose=1, n_jobs=n_jobs), X)
    out = capsys.readouterr().out
    # One table per candidate renderer, "mlp" first, as each trial printed it
    # (worker processes' logs are printed here, in order), then the rest of
    # the kept candidate's table.
    assert out.count("train_loss") == 2
    losses = auto.renderer_losses_
    rows = _epoch_rows(out)
    assert rows[:2] == [f"{losses['mlp']:.4f}", f"{losses['broadcast']:.4f}"]
    assert len(rows) == 3 and rows[2] == f"{auto.loss_curve_[-1]:.4f}"
    kept = auto.renderer_
    named = GenerativeInverter(**params, decoder=AdditiveDecoder(kept), verbose=1)
    _fit_quietly(named, X)
    out = capsys.readouterr().out
    assert out.count("train_loss") == 1
    # The same fit as auto's kept one.
    assert _epoch_rows(out) == [rows[0 if kept == "mlp" else 1], rows[2]]


def test_auto_renderer_with_restarts_reports_the_kept_restart():
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=3, encoder="mlp")
    auto = _fit_quietly(GenerativeInverter(**params, n_init=2), X)
    losses = auto.renderer_losses_
    assert auto.renderer_ == min(losses, key=losses.get)
    assert auto.loss_curve_[0] == min(losses.values())  # a one-epoch trial
    assert auto.init_losses_[auto.best_init_] == auto.loss_curve_[-1]
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
        in_turn = _fit(GenerativeInverter(**params, n_jobs=1, callbacks=callbacks), X)
        side_by_side = GenerativeInverter(**params, n_jobs=2, callbacks=callbacks)
        _fit(side_by_side, X)
    # Four trials, then the two restarts' kept candidates, in two worker
    # processes, each with one of the two cores.
    assert in_turn.net_.history[-1, "pid"] == os.getpid()
    assert side_by_side.net_.history[-1, "pid"] != os.getpid()
    assert in_turn.net_.history[:, "threads"] == [1, 1, 1]
    assert side_by_side.net_.history[:, "threads"] == [1, 1, 1]
    # One thread each: the same arithmetic, bit for bit.
    assert side_by_side.renderer_ == in_turn.renderer_
    assert side_by_side.best_init_ == in_turn.best_init_
    np.testing.assert_array_equal(side_by_side.init_losses_, in_turn.init_losses_)
    assert side_by_side.renderer_losses_ == in_turn.renderer_losses_
    assert side_by_side.loss_curve_ == in_turn.loss_curve_
    side_by_side.set_params(n_jobs=1)
    np.testing.assert_array_equal(side_by_side.transform(X), in_turn.transform(X))


def test_workers_are_reused_and_their_warnings_reach_the_caller_once_each():
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=3, encoder="mlp")
    est = GenerativeInverter(**params, n_jobs=2, callbacks=[_RecordsItsProcess()])
    pids = []
    for _ in range(3):  # the first starts the workers
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _fit(est, X)
        ours = [w for w in caught if str(w.message).startswith("pid ")]
        # Every epoch warns from one line: a worker's warning reaches the
        # caller once per candidate's trial, not per epoch; the kept
        # candidate's other two epochs run here.
        here = [w for w in ours if str(w.message) == f"pid {os.getpid()}"]
        assert len(ours) == 4 and len(here) == 2
        assert all(w.category is UserWarning for w in ours)
        assert ours[0].filename == __file__
        # Nothing else: in particular no note from joblib of stopped workers.
        others = [w for w in caught if w not in ours]
        assert all(issubclass(w.category, ConvergenceWarning) for w in others)
        pids.append(_pids(caught))
    workers = [p - {f"pid {os.getpid()}"} for p in pids]
    assert len(workers[2]) == 2
    assert workers[1] & workers[2]  # the same worker processes serve later fits
    # The module's filters apply to a worker's warning, as to the caller's.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", "pid", module=_RecordsItsProcess.__module__)
        _fit(est, X)
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
    assert not can_use_workers(est.get_params(deep=False), X, None)
    assert can_use_workers(est.set_params(encoder="mlp").get_params(deep=False), X)
    est.set_params(encoder=_InAScript())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _fit(est, X)
    assert est.net_.history[-1, "pid"] == os.getpid()
    assert est.net_.history[-1, "threads"] == 2  # the two cores of n_jobs=2
    assert est.renderer_losses_ is not None  # both renderers, in turn


def test_n_jobs_grants_cores_as_scikit_learn_reads_it():
    assert n_cores(None) == 1
    assert n_cores(1) == 1 and n_cores(3) == 3
    assert n_cores(-1) == joblib.cpu_count()
    with joblib.parallel_config(n_jobs=3):
        assert n_cores(None) == 3
        assert n_cores(2) == 2  # a number given wins
    with joblib.parallel_config(n_jobs=1):
        assert n_cores(None) == 1


def _how_fits_run(monkeypatch, est, n_fits, X, y=None):
    """How ``fit_best`` would run ``n_fits`` candidate fits: ("in turn",) or
    ("workers", n_workers, threads per worker)."""
    plans = []

    def in_turn(*args):
        plans.append(("in turn",))

    def in_workers(function, jobs, n_workers, n_threads):
        plans.append(("workers", n_workers, n_threads))
        return iter(())

    monkeypatch.setattr(_training, "run_in_workers", in_workers)
    list(_training._run(est, in_turn, [(0, None, None)] * n_fits, X, y))
    return plans[0]


def test_how_many_candidates_fit_side_by_side(monkeypatch, tmp_path):
    X = _patterns(n=8)
    est = GenerativeInverter()
    plan = _how_fits_run
    in_turn = ("in turn",)
    assert plan(monkeypatch, est, 2, X) == in_turn  # None: one core
    with joblib.parallel_config(n_jobs=2):  # as for scikit-learn's estimators
        assert plan(monkeypatch, est, 2, X) == ("workers", 2, 1)
    with joblib.parallel_config(n_jobs=1):
        assert plan(monkeypatch, est, 2, X) == in_turn
    est.set_params(n_jobs=4)
    assert plan(monkeypatch, est, 6, X) == ("workers", 4, 1)
    assert plan(monkeypatch, est, 2, X) == ("workers", 2, 2)  # two cores each
    assert plan(monkeypatch, est, 1, X) == in_turn  # one fit: here, four threads
    assert plan(monkeypatch, est.set_params(n_jobs=3), 6, X) == ("workers", 3, 1)
    assert plan(monkeypatch, est.set_params(n_jobs=1), 6, X) == in_turn
    cpus = joblib.cpu_count()
    expected = ("workers", min(2, cpus), cpus // min(2, cpus)) if cpus > 1 else in_turn
    assert plan(monkeypatch, est.set_params(n_jobs=-1), 2, X) == expected
    est.set_params(n_jobs=2)
    assert plan(monkeypatch, est, 2, X.tolist()) == in_turn  # not an array
    assert plan(monkeypatch, est.set_params(device="meta"), 2, X) == in_turn  # not CPU
    est.set_params(device="cpu")

    # Where joblib cannot start processes (threads of a threading backend,
    # daemonic workers), the fits run in turn rather than warn.
    def in_a_thread():
        found = []
        thread = threading.Thread(
            target=lambda: found.append(can_use_workers(est.get_params(), X))
        )
        thread.start()
        thread.join()
        return found

    assert can_use_workers(est.get_params(), X)
    assert in_a_thread() == [False]
    # In-memory arrays up to a size are shared; memory maps of any size.
    monkeypatch.setattr(_workers, "_MAX_SHARED_BYTES", X.nbytes)
    bigger = np.concatenate([X, X[:1]])
    assert plan(monkeypatch, est, 2, X) == ("workers", 2, 1)
    assert plan(monkeypatch, est, 2, bigger) == in_turn
    assert plan(monkeypatch, est, 2, X, bigger) == in_turn
    disk = np.memmap(tmp_path / "X", "float32", "w+", shape=(99, 64))
    assert plan(monkeypatch, est, 2, disk) == ("workers", 2, 1)


class _RecordsThreads(Callback):
    """Records torch's threads at the start of every epoch."""

    def on_epoch_begin(self, net, **kwargs):
        net.history.record("threads", torch.get_num_threads())


class _CountsThreads(torch.nn.Module):
    """A backbone that notes torch's threads whenever it runs in eval mode
    (inference, not training)."""

    seen = []

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(16, 8)

    def forward(self, x):
        if not self.training:
            type(self).seen.append(torch.get_num_threads())
        return self.linear(x)


@pytest.fixture
def threads():
    """Three torch threads in the caller, restored after the test."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(before)


def test_fit_and_transform_run_on_the_cores_that_n_jobs_grants(easy, threads):
    X = easy[:64]
    est = GenerativeInverter(
        n_slots=2,
        slot_dim=1,
        max_epochs=2,
        encoder=_CountsThreads(),
        callbacks=[_RecordsThreads()],
        **{k: v for k, v in SMALL.items() if k != "encoder"},
    )
    seen = _CountsThreads.seen
    for n_jobs, config, expected in [(None, None, 1), (None, 2, 2), (2, None, 2)]:
        seen.clear()
        est.set_params(n_jobs=n_jobs)
        with joblib.parallel_config(n_jobs=config):
            _fit_quietly(est, X)
            assert est.net_.history[:, "threads"] == [expected, expected]
            assert torch.get_num_threads() == threads  # restored after fit
            est.transform(X)
            est.score(X)
        assert seen and set(seen) == {expected}
        assert torch.get_num_threads() == threads  # and after transform


def _fitted_attributes(est):
    return [name for name in vars(est) if name.endswith("_") and name[0] != "_"]


class _Interrupts(Callback):
    """Raises KeyboardInterrupt, as Ctrl-C does, in the middle of epoch 2; counts
    the fits it saw start."""

    starts = 0

    def on_train_begin(self, net, **kwargs):
        type(self).starts += 1

    def on_batch_end(self, net, **kwargs):
        if len(net.history) == 2 and len(net.history[-1, "batches"]) == 2:
            raise KeyboardInterrupt


@pytest.mark.parametrize("Estimator", [GenerativeInverter, EncoderBaseline])
def test_ctrl_c_stops_fit_and_leaves_the_estimator_unfitted(easy, threads, Estimator):
    _Interrupts.starts = 0
    est = Estimator(
        n_slots=2,
        slot_dim=1,
        max_epochs=4,
        n_init=2,  # the second restart never starts
        n_jobs=1,
        callbacks=[_Interrupts()],
        **{k: v for k, v in SMALL.items() if k != "search"},
    )
    with pytest.raises(KeyboardInterrupt, match=f"{Estimator.__name__}.fit was interr"):
        est.fit(easy)
    assert _Interrupts.starts == 1
    assert not hasattr(est, "net_") and _fitted_attributes(est) == []
    assert torch.get_num_threads() == threads
    with pytest.raises(NotFittedError):
        est.transform(easy)


def test_an_interrupted_or_diverged_refit_leaves_the_estimator_unfitted(easy):
    params = dict(n_slots=2, slot_dim=1, max_epochs=4, n_jobs=1, **SMALL)
    interrupted = _fit_quietly(GenerativeInverter(**params), easy)
    assert np.isfinite(interrupted.transform(easy)).all()
    interrupted.set_params(callbacks=[_Interrupts()])
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(easy)
    diverged = _fit_quietly(GenerativeInverter(**params), easy)
    with pytest.raises(ValueError, match="diverged"):
        diverged.set_params(lr=1e6, max_epochs=50).fit(easy)
    for est in (interrupted, diverged):
        # Nothing of the earlier fit nor of the failed one is left.
        assert _fitted_attributes(est) == []
        with pytest.raises(NotFittedError):
            est.transform(easy)


@pytest.mark.skipif(
    not hasattr(signal, "SIGKILL") or not hasattr(os, "kill"),
    reason="needs SIGKILL and os.kill",
)
def test_a_worker_pool_broken_by_an_interrupt_is_replaced(easy):
    from joblib.externals.loky import reusable_executor

    params = dict(n_slots=2, slot_dim=1, max_epochs=2, n_init=2, n_jobs=2, **SMALL)
    first = _fit_quietly(GenerativeInverter(**params), easy)
    pids = list(reusable_executor._executor._processes)
    assert len(pids) == 2
    # Ctrl-C in a terminal reaches the idle workers too and ends them; SIGKILL
    # ends them for sure (a test runner's processes may ignore SIGINT).
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    again = _fit_quietly(GenerativeInverter(**params), easy)
    np.testing.assert_array_equal(again.init_losses_, first.init_losses_)
    assert again.loss_curve_ == first.loss_curve_
    assert not set(reusable_executor._executor._processes) & set(pids)  # new ones


def test_a_plateau_ends_each_renderer_fit():
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=1, slot_dim=2, max_epochs=8, encoder="mlp")
    params.update(tol=10.0, n_iter_no_change=1)  # no epoch ever improves enough
    auto = _fit_quietly(GenerativeInverter(**params), X)
    assert auto.renderer_losses_ is not None and auto.n_iter_ == 2
    for renderer in ("mlp", "broadcast"):
        named = GenerativeInverter(**params, decoder=AdditiveDecoder(renderer))
        assert _fit_quietly(named, X).n_iter_ == 2
        assert named.loss_curve_[-1] == auto.renderer_losses_[renderer]


def test_renderer_is_reported_where_there_is_one(easy):
    vectors = GenerativeInverter(n_slots=2, slot_dim=1, max_epochs=2, **SMALL)
    _fit_quietly(vectors, easy)
    assert vectors.renderer_ == "mlp" and vectors.renderer_losses_ is None
    transformer = _fit_quietly(
        GenerativeInverter(
            n_slots=2, slot_dim=1, max_epochs=2, decoder="transformer", **SMALL
        ),
        easy,
    )
    assert transformer.renderer_ is None and transformer.renderer_losses_ is None
    targets = np.random.default_rng(0).normal(size=(len(easy), 2))
    supervised = _fit_quietly(
        _baseline(objective="supervised", max_epochs=2), easy, targets
    )
    assert supervised.renderer_ is None
    replay = _fit_quietly(ReplayEncoder(vectors, max_epochs=2, random_state=0), easy)
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
        ReplayEncoder(gen, max_epochs=4, n_init=2, random_state=0), easy
    )
    assert replay.n_iter_ == 4 and not replay.converged_
    assert replay.init_losses_.shape == (2,)
    assert replay.loss_curve_[-1] == replay.init_losses_.min()


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
    assert {"lr_plateau", "gradient_clipping", "divergence", "plateau_stopping"} <= set(
        callbacks
    )
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


def test_learning_rate_halves_on_a_plateau_whatever_tol():
    X = np.ones((64, 6), dtype=np.float32)  # a loss that soon stops improving
    fits = {
        tol: _fit_quietly(_baseline(max_epochs=20, tol=tol, n_iter_no_change=50), X)
        for tol in (1e-2, None)
    }
    for est in fits.values():
        assert est.n_iter_ == 20
        scheduler = dict(est.net_.callbacks_)["lr_plateau"]
        # tol sets the stopping rule only: the plateau threshold is fixed.
        assert scheduler.kwargs["threshold"] == 1e-4
        assert scheduler.kwargs["patience"] == 4 and scheduler.kwargs["factor"] == 0.5
        lr = est.net_.optimizer_.param_groups[0]["lr"]
        halvings = np.log2(est.lr / lr)
        assert halvings >= 1 and halvings == round(halvings)
    assert fits[1e-2].loss_curve_ == fits[None].loss_curve_
    lrs = [est.net_.optimizer_.param_groups[0]["lr"] for est in fits.values()]
    assert lrs[0] == lrs[1]


def test_a_default_callback_named_with_none_is_switched_off():
    X = np.ones((64, 6), dtype=np.float32)  # a plateau from the start
    est = _fit_quietly(
        _baseline(max_epochs=12, tol=None, callbacks=[("lr_plateau", None)]), X
    )
    assert "lr_plateau" not in dict(est.net_.callbacks_)
    assert est.net_.optimizer_.param_groups[0]["lr"] == est.lr
    assert est.get_params()["callbacks"] == [("lr_plateau", None)]


@pytest.mark.parametrize(
    "param, value, message",
    [
        ("n_init", 0, "n_init"),
        ("tol", -1.0, "tol"),
        ("n_iter_no_change", 0, "n_iter_no_change"),
        ("n_jobs", 0, "n_jobs"),
        ("n_jobs", 1.5, "n_jobs"),
        ("kl_weight", "yes", "kl_weight"),
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
    from compgen_sk import GradientSearch

    params = dict(n_slots=2, slot_dim=1, max_epochs=3, tol=None, **SMALL)
    params["search"] = GradientSearch(steps=5)
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


@pytest.mark.parametrize(
    "decoder, overlap",
    [
        (AdditiveDecoder("broadcast", overlap_penalty=0.1, penalty_epochs=1), True),
        (
            TransformerDecoder(embed_dim=8, n_heads=2, n_layers=1, penalty_epochs=1),
            None,
        ),
    ],
)
def test_the_decoder_penalty_weighs_the_loss_in_its_epochs(decoder, overlap):
    X = _patterns(n=64)
    params = dict(SMALL, n_slots=2, slot_dim=1, max_epochs=3, encoder="mlp", tol=None)
    if overlap is None:  # the transformer's penalty
        decoder.set_params(interaction_penalty=0.1)
    est = _fit_quietly(GenerativeInverter(**params, decoder=decoder), X)
    if overlap:
        assert est.decoder_.decoder.overlap is True
    schedule = dict(est.net_.callbacks_)["interaction_weight"]
    assert (schedule.term, schedule.weight, schedule.last) == ("interaction", 0.1, 1)
    # Epoch 1 weighs the penalty by 0.1; the later epochs record it unweighed.
    for epoch, weight in ((0, 0.1), (1, 0.0), (2, 0.0)):
        for batch in est.net_.history[epoch, "batches"]:
            assert batch["train_interaction"] > 0
            assert batch["train_loss"] == pytest.approx(
                batch["train_reconstruction"] + weight * batch["train_interaction"],
                rel=1e-5,
            )
    # Without a penalty, no schedule and no penalty computed.
    plain = _fit_quietly(
        GenerativeInverter(**params, decoder=AdditiveDecoder("broadcast")), X
    )
    assert "interaction_weight" not in dict(plain.net_.callbacks_)
    assert plain.decoder_.decoder.overlap is False
    assert "train_interaction" not in plain.net_.history[0, "batches"][0]


def test_replay_stream_is_an_iterable_dataset_and_its_loader_is_strict(easy):
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
