"""Training: one fit from a seed, and the best of several, as KMeans keeps its best.

:func:`fit_best` fits from each of ``n_init`` seeds and keeps the fit with the
lowest final training loss; where the estimator tries several decoders, each
seed's candidates first have a trial of half the epochs, and only the best one
trains on (:func:`resume`). :func:`fit_candidate` is one fit, a pure function
of its seed. The skorch net of a fit comes from :func:`make_net`, with the
default training control of :func:`training_callbacks`.
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from skorch.callbacks import (
    Callback,
    EarlyStopping,
    GradientNormClipping,
    LRScheduler,
)
from skorch.dataset import ValidSplit
from torch import nn

from .._torch import n_cores, resolve_device, rng_state, seeded, set_rng_state
from .._warnings import user_stacklevel
from ._data import ArrayDataset, is_lazy_array
from ._loaders import BatchLoader
from ._nets import DivergenceError, InterruptibleNet, StopOnNonFiniteLoss
from ._workers import can_use_workers, run_in_workers

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
# The learning rate halves after this many epochs without an improvement of
# the training loss by _LR_THRESHOLD ...
_LR_PATIENCE = 4
_LR_THRESHOLD = 1e-4
# ... and every gradient is clipped to this norm (losses are standardized, so a
# norm this large only ever stops a blow-up).
_MAX_GRAD_NORM = 10.0
# The convergence rule (see warn_if_not_converged).
_FAST_DECREASE = 0.01
_CONVERGENCE_WINDOW = 5
MIN_TRAINING_R2 = 0.9


def _silent(*args, **kwargs):
    """A sink for skorch callbacks' messages when ``verbose=0``."""


def check_callbacks(estimator):
    """The checks of ``callbacks`` that its declared constraint cannot
    express: skorch callbacks or (name, callback) pairs, and none that
    monitors validation scores where no data is held out."""
    validated = bool(getattr(estimator, "validation_fraction", None))
    for item in estimator.callbacks or []:
        callback = item
        if isinstance(item, tuple):
            if len(item) != 2 or not isinstance(item[0], str):
                raise ValueError(
                    "callbacks must hold skorch callbacks or (name, callback) "
                    f"pairs; got the tuple {item!r}."
                )
            callback = item[1]
            if callback is None:  # a default switched off, as in skorch
                continue
        if not (
            isinstance(callback, Callback)
            or (isinstance(callback, type) and issubclass(callback, Callback))
        ):
            raise ValueError(
                "callbacks must hold skorch callbacks (instances of "
                "skorch.callbacks.Callback, e.g. ProgressBar()) or (name, "
                f"callback) pairs; got {callback!r}."
            )
        monitor = getattr(callback, "monitor", None)
        if isinstance(callback, type):  # skorch instantiates it with defaults
            default = inspect.signature(callback).parameters.get("monitor")
            monitor = default.default if default is not None else None
        if isinstance(monitor, str) and monitor.startswith("valid") and not validated:
            advice = (
                "set validation_fraction (e.g. 0.1) or "
                if "validation_fraction" in estimator.get_params(deep=False)
                else ""
            )
            kind = callback if isinstance(callback, type) else type(callback)
            raise ValueError(
                f"The callback {kind.__name__} monitors {monitor!r}, but "
                f"{type(estimator).__name__} holds out no validation data: "
                f"{advice}monitor 'train_loss' instead."
            )


def training_callbacks(estimator, schedules=()):
    """The user's callbacks, the estimator's loss ``schedules``, then the
    default training control, each under a name: ``"lr_plateau"`` (halve the
    learning rate after 4 epochs without a 1e-4 improvement of the training
    loss), ``"gradient_clipping"`` (clip gradients to norm 10),
    ``"divergence"`` (stop at the first epoch whose loss is not finite; the
    fit then raises) and, unless ``tol=None``, ``"plateau_stopping"`` (stop
    after ``n_iter_no_change`` epochs without a ``tol`` improvement). A user
    callback under one of these names, as a ``(name, callback)`` pair,
    replaces the default; ``(name, None)`` switches it off."""
    user = copy.deepcopy(estimator.callbacks) or []
    names = {item[0] for item in user if isinstance(item, tuple)}
    defaults = [
        (
            "lr_plateau",
            LRScheduler(
                policy="ReduceLROnPlateau",
                monitor="train_loss",
                factor=0.5,
                patience=_LR_PATIENCE,
                threshold=_LR_THRESHOLD,
                threshold_mode="abs",
            ),
        ),
        ("gradient_clipping", GradientNormClipping(_MAX_GRAD_NORM)),
        ("divergence", StopOnNonFiniteLoss()),
    ]
    if estimator.tol is not None:
        stopping = EarlyStopping(
            monitor="train_loss",
            patience=estimator.n_iter_no_change,
            threshold=estimator.tol,
            threshold_mode="abs",
            sink=print if estimator.verbose else _silent,
        )
        defaults.append(("plateau_stopping", stopping))
    defaults = list(schedules) + defaults
    return user + [(name, cb) for name, cb in defaults if name not in names]


def _validation_split(fraction):
    """skorch's ValidSplit holding out ``fraction`` of X, drawn from the
    seeded torch generator, so that it follows ``random_state``."""
    if not fraction:
        return None
    seed = int(torch.randint(np.iinfo(np.int32).max, (1,)))
    return ValidSplit(fraction, random_state=seed)


def make_net(
    estimator,
    module,
    *,
    net_class=InterruptibleNet,
    criterion=nn.MSELoss,
    schedules=(),
    **kwargs,
):
    """A skorch net around ``module`` with the estimator's training settings
    (``kwargs`` replace them)."""
    optimizer = estimator.optimizer
    if isinstance(optimizer, str):
        optimizer = OPTIMIZERS[optimizer]
    settings = dict(
        module=module,
        criterion=criterion,
        optimizer=optimizer,
        lr=estimator.lr,
        batch_size=estimator.batch_size,
        max_epochs=estimator.max_epochs,
        iterator_train=BatchLoader,
        iterator_train__shuffle=True,
        iterator_valid=BatchLoader,
        train_split=_validation_split(getattr(estimator, "validation_fraction", None)),
        callbacks=training_callbacks(estimator, schedules),
        device=resolve_device(estimator.device),
        verbose=estimator.verbose,
    )
    settings.update(
        {f"optimizer__{k}": v for k, v in (estimator.optimizer_params or {}).items()}
    )
    settings.update(kwargs)
    return net_class(**settings)


def fit_candidate(estimator, seed, candidate, epochs, X, y):
    """One fit: the net that ``estimator._new_net(candidate)`` builds, trained
    on X (and y) with torch's generators seeded by ``seed``; or the
    :class:`DivergenceError` that ended it. ``epochs=None`` trains up to
    ``max_epochs``; a number of ``epochs``, only the first ones: a
    :class:`Paused` fit, which :func:`resume` completes exactly as the fit
    would have gone on. An interrupt (Ctrl-C) is re-raised once skorch has
    ended training."""
    device = resolve_device(estimator.device)
    with seeded(seed, device):
        net = estimator._new_net(candidate)
        X, y = _dataset(X, y)
        try:
            net.initialize()
        except TypeError as exc:
            raise ValueError(
                f"optimizer_params={estimator.optimizer_params!r} do not fit "
                f"optimizer={estimator.optimizer!r}: {exc}"
            ) from exc
        net.notify("on_train_begin", X=X, y=y)
        error = _train(net, X, y, epochs)
        if error is None and epochs is not None and _can_go_on(net, epochs):
            return Paused(net, rng_state(device))
    return _end(estimator, net, X, y, error)


@dataclass
class Paused:
    """A fit paused after its first epochs, with torch's random state."""

    net: object
    rng: object


def resume(estimator, paused, X, y):
    """Train a :class:`Paused` fit to ``max_epochs`` (or its plateau stop),
    on torch's random state where it paused: the net that the fit without a
    pause ends with, bit for bit."""
    device = resolve_device(estimator.device)
    net = paused.net
    # A net sent back from a worker carries its optimizer apart from its
    # callbacks (skorch pickles the modules and the optimizer on their own):
    # the learning-rate scheduler must act on the net's optimizer.
    for _, callback in net.callbacks_:
        scheduler = getattr(callback, "lr_scheduler_", None)
        if scheduler is not None:
            scheduler.optimizer = net.optimizer_
    X, y = _dataset(X, y)
    with seeded(0, device):
        set_rng_state(paused.rng, device)
        error = _train(net, X, y, estimator.max_epochs - len(net.history))
    return _end(estimator, net, X, y, error)


def _dataset(X, y):
    if isinstance(X, np.ndarray) or is_lazy_array(X):
        # Read a batch at a time, never copied whole.
        return ArrayDataset(X, y), None
    return X, y


def _train(net, X, y, epochs):
    """``epochs`` epochs of skorch's training loop (None: ``max_epochs``); the
    :class:`DivergenceError` that ended them, or None."""
    try:
        net.fit_loop(X, y, epochs=epochs, _routing_method="partial_fit")
    except KeyboardInterrupt:
        pass  # a plateau stop, or an interrupt that net.interrupted_ records
    except DivergenceError as exc:
        # Not exc itself: its traceback holds the diverged net.
        return DivergenceError(exc.epoch)
    return None


def _can_go_on(net, epochs):
    """Whether a fit that ran ``epochs`` epochs has epochs left, and was
    neither stopped on a plateau nor interrupted."""
    return not (net.interrupted_ or net.stopped_) and epochs < net.max_epochs


def _end(estimator, net, X, y, error):
    if error is not None:
        return error
    net.notify("on_train_end", X=X, y=y)
    if net.interrupted_:
        raise KeyboardInterrupt(f"{type(estimator).__name__}.fit was interrupted.")
    return net


def _final_loss(net):
    """The last epoch's training loss; infinite if it is not finite, so that
    such a fit is never kept over a finite one."""
    loss = float(net.history[-1, "train_loss"])
    return loss if math.isfinite(loss) else math.inf


@dataclass
class BestFit:
    """The kept fit of :func:`fit_best`."""

    net: object
    candidate: object
    init_losses: np.ndarray  # (n_init,): each seed's final loss
    best_init: int
    candidate_losses: list | None  # each candidate's trial loss for the kept seed


def _run(estimator, function, jobs, X, y):
    """``function(estimator, *job, X, y)`` of every job, in order: side by side
    in worker processes where the estimator's ``n_jobs`` grants several cores
    to several CPU fits, else one after another here."""
    cores = n_cores(estimator.n_jobs)
    parallel = (
        len(jobs) > 1
        and cores > 1
        and resolve_device(estimator.device).type == "cpu"
        and can_use_workers(estimator.get_params(deep=False), X, y)
    )
    if not parallel:
        for job in jobs:
            yield function(estimator, *job, X, y)
        return
    n_workers = min(len(jobs), cores)
    worker = copy.copy(estimator)  # without the modules of a previous fit
    for attr in ("net_", "encoder_", "decoder_", "start_slots_"):
        worker.__dict__.pop(attr, None)
    args = [(worker, *job, X, y) for job in jobs]
    yield from run_in_workers(function, args, n_workers, max(1, cores // n_workers))


def _loss(result):
    """The final training loss of a fit; the lowest of a paused fit's epochs
    (one bad epoch at the pause does not decide); inf for a divergence."""
    if isinstance(result, DivergenceError):
        return math.inf
    if isinstance(result, Paused):
        return float(np.min(result.net.history[:, "train_loss"]))
    return _final_loss(result)


def _best_of_groups(results, n_groups, group_size):
    """Consecutive groups of the results of a :func:`_run`: the best result of
    each (the first of the lowest loss), its index in the group and every
    loss. Only the best so far of a group is held; the runs still going are
    stopped on an error."""
    losses = np.full((n_groups, group_size), math.inf)
    best, picks = [None] * n_groups, [0] * n_groups
    try:
        for index, result in enumerate(results):
            i, j = divmod(index, group_size)
            losses[i, j] = _loss(result)
            if best[i] is None or losses[i, j] < losses[i, picks[i]]:
                best[i], picks[i] = result, j
            del result  # a losing fit's memory, before the next one
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joblib's note that it stopped them
            results.close()
    return best, picks, losses


def fit_best(estimator, candidates, X, y=None):
    """Fit from each of ``n_init`` seeds drawn from ``random_state`` and keep
    the fit with the lowest final training loss.

    With several candidates, each seed's candidates first train for half of
    ``max_epochs``, their trial; the one whose training loss was lowest in an
    epoch of its trial then trains on as if it had never paused, and the
    others are dropped.

    Raises a ValueError naming the divergence when no fit ends finite.
    """
    seeds = check_random_state(estimator.random_state).randint(
        np.iinfo(np.int32).max, size=estimator.n_init
    )
    n = len(candidates)
    trial = max(1, estimator.max_epochs // 2) if n > 1 else None
    jobs = [(int(seed), c, trial) for seed in seeds for c in candidates]
    fits = _run(estimator, fit_candidate, jobs, X, y)
    picks, trial_losses = [0] * len(seeds), None
    if n > 1:
        # Each seed's best trial, trained on to its end.
        fits, picks, trial_losses = _best_of_groups(fits, len(seeds), n)
        fits = _resumed(estimator, fits, X, y)
    # The best seed; only the best so far is held, as the fits arrive.
    (fit,), (best,), losses = _best_of_groups(fits, 1, len(seeds))
    if not math.isfinite(losses[0, best]):
        raise diverged(estimator, fit)
    return BestFit(
        fit,
        candidates[picks[best]],
        losses[0],
        best,
        None if trial_losses is None else list(trial_losses[best]),
    )


def _resumed(estimator, fits, X, y):
    """``fits`` in order, each :class:`Paused` one trained to its end (side by
    side in workers, as :func:`_run` runs them)."""
    ends = _run(estimator, resume, [(f,) for f in fits if isinstance(f, Paused)], X, y)
    try:
        for fit in fits:
            yield next(ends) if isinstance(fit, Paused) else fit
    finally:
        ends.close()


def diverged(estimator, exc):
    """The ValueError that a fit raises for a :class:`DivergenceError`."""
    return ValueError(
        f"{type(estimator).__name__} diverged: the training loss or the weights "
        f"became NaN or infinite in epoch {exc.epoch}. Lower the learning rate "
        f"(lr={estimator.lr!r}) or check the scale of X (its root mean square "
        f"deviation is {estimator.data_scale_:.3g})."
    )


def training_r2(net):
    """R² of a fitted autoencoder on its own training data, from its last
    epoch's standardized reconstruction loss; None for other nets."""
    losses = [
        b["train_reconstruction"]
        for b in net.history[-1, "batches"]
        if "train_reconstruction" in b
    ]
    return 1.0 - float(np.mean(losses)) if losses else None


def warn_if_not_converged(estimator, r2, hint=""):
    """The one convergence rule of every estimator: a
    :class:`~sklearn.exceptions.ConvergenceWarning` when the kept fit ended at
    ``max_epochs`` with its training loss still falling by more than 1 % per
    epoch (over the last 5 epochs), or when it explains less than 90 % of its
    training data's variance (``r2``, the training R², below 0.9). ``hint``
    follows the second reason."""
    name = type(estimator).__name__
    curve = estimator.loss_curve_
    reasons = []
    if not estimator.converged_ and len(curve) > _CONVERGENCE_WINDOW:
        before, last = curve[-1 - _CONVERGENCE_WINDOW], curve[-1]
        rate = (before - last) / max(abs(before), 1e-12) / _CONVERGENCE_WINDOW
        if rate > _FAST_DECREASE:
            reasons.append(
                f"it stopped at max_epochs={estimator.max_epochs} while its "
                f"training loss still fell by {100 * rate:.1f}% per epoch over the "
                f"last {_CONVERGENCE_WINDOW} epochs; raise max_epochs."
            )
    if r2 is not None and not r2 >= MIN_TRAINING_R2:
        reasons.append(
            f"it fits its own training data poorly: training R² {r2:.3f} < "
            f"{MIN_TRAINING_R2} (1 - the standardized loss of the last epoch); "
            "train longer (max_epochs), try n_init > 1, or give the model more "
            f"room (slot_dim, the decoder's hidden widths).{hint}"
        )
    if reasons:
        warnings.warn(
            f"{name} has not converged: {' Also, '.join(reasons)}",
            ConvergenceWarning,
            stacklevel=user_stacklevel(),
        )


__all__ = [
    "OPTIMIZERS",
    "BestFit",
    "check_callbacks",
    "fit_best",
    "fit_candidate",
    "make_net",
    "training_callbacks",
    "warn_if_not_converged",
]
