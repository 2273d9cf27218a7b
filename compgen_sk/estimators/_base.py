"""What the three slot estimators share: their common parameters and validation,
the fit template, and the scikit-learn API (transform, inverse_transform,
score, feature names, tags)."""

from __future__ import annotations

import functools
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted
from torch import nn

from .._concepts import FLOAT32_MAX
from .._readout import check_slots
from .._sklearn_compat import Interval, StrOptions
from .._torch import n_cores, torch_threads
from ..encoders import ConvEncoder, MLPEncoder, build_backbone
from ..metrics import reconstruction_r2_score
from ..modules import RescaledDecoder, SlotEncoder, Standardize
from ..search import GradientSearch, check_search
from ._data import (
    as_float_array,
    check_X,
    check_y_length,
    data_scaling,
    is_lazy_array,
    read_rows,
)
from ._inference import decode, encode_slots, infer
from ._training import (
    OPTIMIZERS,
    check_callbacks,
    fit_best,
    training_r2,
    warn_if_not_converged,
)

# Training images whose slots multi-start search recombines guesses with.
_START_BANK = 64


def _positive_int(low=1):
    return [Interval(Integral, low, None, closed="left")]


def _with_threads(method):
    """Run an estimator method with the torch threads that its ``n_jobs``
    grants (one by default: fast alone and beside other work)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with torch_threads(n_cores(self.n_jobs)):
            return method(self, *args, **kwargs)

    return wrapper


class SlotEstimatorBase(TransformerMixin, BaseEstimator):
    """Base class of the slot estimators; not for direct use.

    ``fit`` runs the template :meth:`_fit`: check X and compute its scaling,
    prepare the training data (hook :meth:`_training_data`), and keep the best
    of the fits of every candidate decoder (hook :meth:`_candidates`) from
    each of ``n_init`` seeds, each net built by the hook :meth:`_new_net`
    (:func:`~compgen_sk.estimators._training.fit_best`). The hook
    :meth:`_set_fitted_modules` then names the fitted ``encoder_`` and
    ``decoder_`` that inference uses.

    Capabilities are class attributes: ``_searches`` (``transform`` refines
    the encoder's guess by the ``search`` parameter) and ``_trains_decoder``
    (the fit trains a decoder of its own, and reports its renderer).
    """

    _searches = False
    _trains_decoder = False

    _parameter_constraints: dict = {
        "encoder": [
            StrOptions({"auto", "cnn", "mlp"}),
            ConvEncoder,
            MLPEncoder,
            nn.Module,
        ],
        "max_epochs": _positive_int(),
        "n_init": _positive_int(),
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "n_iter_no_change": _positive_int(),
        "batch_size": _positive_int(),
        "lr": [Interval(Real, 0, FLOAT32_MAX, closed="neither")],
        "optimizer": [StrOptions(set(OPTIMIZERS)), type],
        "optimizer_params": [dict, None],
        "n_jobs": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Integral, None, -1, closed="right"),
            None,
        ],
        "device": [str, torch.device],
        "callbacks": [list, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }
    # Estimators that choose the number and size of their slots.
    _slot_constraints: dict = {
        "n_slots": _positive_int(),
        "slot_dim": _positive_int(),
        "validation_fraction": [Interval(Real, 0, 1, closed="neither"), None],
    }
    _search_constraints: dict = {
        "search": [StrOptions({"gradient"}), GradientSearch, None],
    }

    # ------------------------------------------------------------------ fit

    @_with_threads
    def _fit(self, X, y=None):
        """The fit template that every estimator's ``fit`` runs. A fit that
        fails (or is interrupted) leaves the estimator unfitted."""
        try:
            return self._fit_steps(X, y)
        except BaseException:
            for name in [k for k in vars(self) if k.endswith("_") and k[0] != "_"]:
                delattr(self, name)
            raise

    def _fit_steps(self, X, y):
        optimizer = self.optimizer
        if not isinstance(optimizer, str) and not issubclass(
            optimizer, torch.optim.Optimizer
        ):
            raise ValueError(
                f"optimizer must be one of {sorted(OPTIMIZERS)} or a subclass of "
                f"torch.optim.Optimizer; got {optimizer!r}."
            )
        check_callbacks(self)
        if self._searches:
            check_search(self.search, type(self).__name__)  # before training
        X = check_X(self, X, reset=True)
        check_y_length(y, X)
        self.data_mean_, self.data_scale_ = data_scaling(X)
        inputs, targets = self._training_data(X, y)
        candidates = self._candidates()
        best = fit_best(self, candidates, inputs, targets)
        self.net_ = best.net
        self.init_losses_ = best.init_losses
        self.best_init_ = best.best_init
        self.loss_curve_ = [float(v) for v in best.net.history[:, "train_loss"]]
        self.n_iter_ = len(self.loss_curve_)
        self.converged_ = self.n_iter_ < self.max_epochs
        if self._trains_decoder:
            self.renderer_ = getattr(best.candidate, "renderer", None)
            self.renderer_losses_ = (
                dict(zip([c.renderer for c in candidates], best.candidate_losses))
                if len(candidates) > 1
                else None
            )
        self._set_fitted_modules()
        warn_if_not_converged(self, self._training_r2(), self._poor_fit_hint())
        if self._searches:
            # Slots of training images, evenly spaced: what multi-start search
            # recombines the encoder's guesses with.
            rows = np.unique(np.linspace(0, len(X) - 1, _START_BANK).astype(int))
            self.start_slots_ = encode_slots(
                self.encoder_, read_rows(X, rows), self._inference_device()
            )
        return self

    def _training_data(self, X, y):
        """Hook: the inputs and targets the nets train on (default: X alone,
        for autoencoding)."""
        return X, None

    def _candidates(self):
        """Hook: the concrete decoder specifications that ``fit`` tries
        (default: one fit with no decoder of its own, ``[None]``)."""
        return [None]

    def _fitted_candidate(self):
        """The candidate of the kept fit (the one with its renderer)."""
        renderer = getattr(self, "renderer_", None)
        return next(
            c for c in self._candidates() if getattr(c, "renderer", None) == renderer
        )

    def _new_net(self, candidate):
        """Hook: a fresh, unfitted skorch net for ``candidate``, built from the
        parameters and the fitted attributes set so far (``input_shape_``,
        ``data_scale_``…)."""
        raise NotImplementedError

    def _set_fitted_modules(self):
        """Hook: ``encoder_``, ``decoder_``, ``n_slots_`` and ``slot_dim_``
        from the kept net: what inference, metrics and users read."""
        raise NotImplementedError

    def _training_r2(self):
        return training_r2(self.net_)

    def _poor_fit_hint(self):
        """For images drawn by one named renderer, a sentence naming the
        other kind; else ''."""
        if getattr(self, "renderer_losses_", None) or len(self.input_shape_) != 3:
            return ""
        renderer = getattr(self, "renderer_", None)
        if renderer == "broadcast":
            return (
                " For content drawn at fixed places (such as digits in fixed "
                "cells or a background), try the decoder's renderer='mlp'."
            )
        if renderer == "mlp":
            return (
                " For images of objects that move about, try the decoder's "
                "renderer='broadcast'."
            )
        return ""

    def _build_encoder(self, n_slots, slot_dim, *, vae=False):
        """The slot encoder that ``encoder`` names, its inputs standardized
        with ``data_mean_`` and ``data_scale_``."""
        backbone, width = build_backbone(self.encoder, self.input_shape_)
        backbone = nn.Sequential(
            Standardize(self.data_mean_, self.data_scale_), backbone
        )
        return SlotEncoder(backbone, width, n_slots, slot_dim, vae=vae)

    def _build_decoder(self, spec):
        """The decoder module of a concrete specification, rendering
        standardized values that :class:`~compgen_sk.modules.RescaledDecoder`
        maps back to data units."""
        module = spec.build(self.n_slots, self.slot_dim, self.input_shape_)
        return RescaledDecoder(module, self.data_mean_, self.data_scale_)

    def _set_slot_shape(self):
        self.n_slots_ = self.encoder_.n_slots
        self.slot_dim_ = self.encoder_.slot_dim

    def _has_decoder(self):
        return True

    def _inference_device(self):
        return torch.device(self.net_.device)

    # ------------------------------------------------------------ inference

    def _check_rendering(self, X, Z):
        """X rendered from the slots Z, checked to be finite."""
        if not np.isfinite(X).all():
            raise ValueError(
                f"{type(self).__name__} rendered non-finite values for "
                f"{int((~np.isfinite(X.reshape(len(X), -1))).any(axis=1).sum())} "
                f"of {len(X)} slot rows: its decoder overflows on this Z, whose "
                f"values reach {float(np.abs(Z).max()):.3g}. Pass slots on the "
                "scale of those that transform infers."
            )
        return X

    def _validate_slots(self, Z):
        """Check slot arrays (n, K * d) or (n, K, d) against the fitted encoder."""
        return check_slots(Z, self.n_slots_, self.slot_dim_, estimator=self)

    def get_feature_names_out(self, input_features=None):
        """Output feature names ``slot{k}_{j}``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Ignored; present for API consistency.

        Returns
        -------
        feature_names_out : ndarray of str
        """
        check_is_fitted(self)
        return np.asarray(
            [
                f"slot{k}_{j}"
                for k in range(self.n_slots_)
                for j in range(self.slot_dim_)
            ],
            dtype=object,
        )

    @_with_threads
    def transform(self, X):
        """Infer slots: the encoder's guess, refined by ``search`` where the
        estimator searches (Eq. :eq:`eq-search`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Images or vectors, in the layout of the data fitted on.

        Returns
        -------
        slots : ndarray of shape (n_samples, n_slots * slot_dim), float32
        """
        check_is_fitted(self)
        search = (
            check_search(self.search, type(self).__name__) if self._searches else None
        )
        X = check_X(self, X, reset=False)
        device = self._inference_device()
        if search is None:
            slots = encode_slots(self.encoder_, X, device)
        else:
            slots = infer(
                self.encoder_,
                self.decoder_,
                X,
                search,
                self.start_slots_,
                device,
                progress=bool(self.verbose),
            )
        if not np.isfinite(slots).all():
            raise ValueError(
                f"{type(self).__name__} inferred non-finite slots for "
                f"{int((~np.isfinite(slots)).any(axis=(1, 2)).sum())} of {len(X)} "
                "samples: its networks overflow on this X. Check the scale of X "
                "against the data it was fitted on, and whether training diverged "
                "(a training loss far from 0: lower lr)."
            )
        return slots.reshape(len(slots), -1)

    @available_if(lambda self: self._has_decoder())
    @_with_threads
    def inverse_transform(self, Z):
        """Render slots with the decoder, in the layout of X.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_slots * slot_dim) or \
(n_samples, n_slots, slot_dim)
            Slots, flat or one row per slot.

        Returns
        -------
        X : ndarray of shape ``(n_samples, *input_shape_)``, float32
        """
        check_is_fitted(self)
        Z = self._validate_slots(Z)
        X = decode(self.decoder_, Z, self.input_shape_, self._inference_device())
        return self._check_rendering(X, Z)

    def score(self, X, y=None, sample_weight=None):
        """Reconstruction R² of X through ``transform`` and the decoder.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Images or vectors, in the layout of the data fitted on.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,) or None, default=None
            Weights of the samples.

        Returns
        -------
        score : float
            1 is a perfect reconstruction; higher is better.
        """
        check_is_fitted(self)
        if not self._has_decoder():
            raise ValueError(f"{type(self).__name__} has no decoder to reconstruct X.")
        X_hat = self.inverse_transform(self.transform(X))
        if is_lazy_array(X):  # as large as X_hat, which is in memory already
            X = np.asarray(X[0 : len(X)])
        X = as_float_array(
            check_array(X, allow_nd=True, dtype=[np.float32, np.float64, np.uint8])
        )
        return reconstruction_r2_score(X, X_hat, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.non_deterministic = False
        return tags


# Docstring parts that every estimator shares, filled in by share_docs.
_SHARED_DOCS = {
    "training": """\
    n_init : int, default=1
        Fits from different initializations; the one with the lowest final
        training loss is kept (``best_init_``), as in
        :class:`~sklearn.cluster.KMeans`. Costs ``n_init`` fits (each one
        and a half fits where the decoder names two candidate renderers).
    tol : float >= 0 or None, default=1e-4
        Training stops once the training loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs; None trains all ``max_epochs``. The
        training loss is standardized (1 - R² of what the net fits). Apart
        from it, the learning rate halves after 4 epochs without a 1e-4
        improvement (the ``"lr_plateau"`` callback).
    n_iter_no_change : int, default=10
        Epochs without a ``tol`` improvement that stop training.
    batch_size : int, default=64
        Samples per training step.
    lr : float, default=1e-3
        Learning rate of training.
    optimizer : {"adamw", "adam", "sgd", "rmsprop"} or torch optimizer class, \
default="adamw"
    optimizer_params : dict or None, default=None
        Extra optimizer arguments, e.g. ``{"weight_decay": 1e-4}``.""",
    "runtime": """\
    n_jobs : int or None, default=None
        CPU cores that ``fit`` and ``transform`` use, as in scikit-learn:
        None is 1 unless a :func:`joblib.parallel_config` block says
        otherwise, -1 is every core. One fit runs in this process with
        ``n_jobs`` torch threads; several fits (``n_init`` restarts,
        candidate renderers) run side by side in up to ``n_jobs`` worker
        processes that share the cores out (in turn on a GPU, and for data
        read on demand or in-memory arrays over 1 GiB). One thread per fit
        stays fast beside other work, where spinning OpenMP threads can make
        a step many times slower (:ref:`parallel`).
    device : str or torch.device, default="cpu"
        Where to train and infer ("cpu", "cuda", "cuda:1", …).
    callbacks : list of skorch callbacks or None, default=None
        E.g. ``[ProgressBar()]``; copied before use. A ``(name, callback)``
        pair under a default's name (``"lr_plateau"``,
        ``"gradient_clipping"``, ``"divergence"``, ``"plateau_stopping"``)
        replaces that default; ``(name, None)`` switches it off, e.g.
        ``[("lr_plateau", None)]`` keeps the learning rate constant.
    random_state : int, RandomState instance or None, default=None
        Seeds initialization, shuffling and every random draw of ``fit``;
        the same int on CPU with the same ``n_jobs`` gives the same result.
        Torch's global generators are never touched; None draws a seed from
        NumPy's global generator, as scikit-learn does.
    verbose : int, default=0
        Print skorch's epoch log and a search progress bar when > 0.""",
    "fitted": """\
    net_ : skorch.NeuralNet
        The kept fit's skorch net; ``net_.history`` records every loss term.
    encoder_ : torch.nn.Module
        The fitted slot encoder: inputs (n, ...) to slots (n, n_slots, slot_dim).
    n_slots_ : int
        Number of inferred slots.
    slot_dim_ : int
        Dimension of each inferred slot.
    n_iter_ : int
        Epochs run by the kept fit.
    loss_curve_ : list of float
        Its training loss per epoch.
    converged_ : bool
        Whether it stopped on a loss plateau before ``max_epochs``.
    init_losses_ : ndarray of shape (n_init,)
        Final training loss of every initialization (of its kept candidate).
    best_init_ : int
        Index of the kept initialization.
    data_mean_ : ndarray of the shape of one sample
        Mean of X; with ``data_scale_``, the standardization that the
        networks work in.
    data_scale_ : float
        Root mean squared deviation of X from ``data_mean_``.
    input_shape_ : tuple
        Shape of one sample of X.
    n_features_in_ : int
        Number of input features (pixels times channels for images).
    feature_names_in_ : ndarray of str
        Column names of X, when X was a DataFrame.""",
    "renderer": """\
    renderer_ : str or None
        The renderer of the kept fit's decoder (``"mlp"``, ``"broadcast"`` or
        ``"conv"``); None where no renderer is trained.
    renderer_losses_ : dict or None
        Where the decoder named several candidate renderers, each one's
        lowest training loss in its trial, the first half of ``max_epochs``,
        in the kept initialization (``inf`` for one whose fit diverged);
        None otherwise.""",
    "convergence": """\
    A :class:`~sklearn.exceptions.ConvergenceWarning` says that the kept fit
    has not converged: it ended at ``max_epochs`` with its training loss still
    falling by more than 1 % per epoch (over the last 5 epochs), or it
    explains less than 90 % of its training data's variance.""",
}


def share_docs(cls):
    """Fill the shared parts (``{{training}}`` and the like) into a class
    docstring."""
    for name, text in _SHARED_DOCS.items():
        cls.__doc__ = cls.__doc__.replace(f"    {{{{{name}}}}}", text)
    return cls
