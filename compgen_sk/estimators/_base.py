"""What the three estimators share: validation, seeding, device, data scaling,
the skorch net and its training (restarts, plateau stopping, diagnostics),
batched inference, feature names and tags."""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import math
import multiprocessing
import os
import sys
import threading
import warnings
from numbers import Integral, Real

import joblib
import numpy as np
import sklearn
import skorch
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from skorch import NeuralNet
from skorch.callbacks import (
    Callback,
    EarlyStopping,
    GradientNormClipping,
    LRScheduler,
)
from skorch.dataset import ValidSplit
from torch import nn

from .._concepts import _FLOAT32_MAX
from .._sklearn_compat import Interval, StrOptions, validate_parameter_constraints
from .._torch import eval_mode, resolve_device
from ..inversion import search_latents, search_starts
from ..metrics import check_slots, reconstruction_r2_score
from ..modules import (
    RENDERER_DECODERS,
    RENDERERS,
    RescaledDecoder,
    SlotEncoder,
    Standardize,
    infer_out_features,
    make_backbone,
    make_decoder,
)
from ._data import (
    ArrayDataset,
    as_float_array,
    as_float_tensor,
    is_lazy_array,
    read_rows,
)
from ._loaders import BatchLoader
from ._nets import DivergenceError, StopOnNonFiniteLoss

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
# Rows per forward pass when encoding or decoding without gradient.
_INFERENCE_BATCH = 512
# Training control (see ``SlotEstimatorBase._training_callbacks``): the learning
# rate halves after this many epochs without a ``tol`` improvement of the
# training loss ...
_LR_PATIENCE = 4
# ... and every gradient is clipped to this norm (losses are standardized, so a
# norm this large only ever stops a blow-up).
_MAX_GRAD_NORM = 10.0
# A fit that ends at ``max_epochs`` while its loss still fell by more than this
# fraction per epoch, on average over the last _CONVERGENCE_WINDOW epochs, warns.
_FAST_DECREASE = 0.01
_CONVERGENCE_WINDOW = 5
# Channel counts that make a last axis look like the channels of images.
_CHANNEL_COUNTS = (1, 3, 4)
# Training images whose slots multi-start search recombines guesses with.
_START_BANK = 64
# Code whose frames a warning skips to point at the user's call.
_LIBRARY_DIRS = tuple(
    os.path.dirname(m.__file__) + os.sep
    for m in (sys.modules[__name__.split(".")[0]], sklearn, skorch, joblib)
)
# A fit whose training R² (1 - standardized training loss) is below this warns.
MIN_TRAINING_R2 = 0.9


def _final_loss(net):
    """The last epoch's training loss of a fitted net; infinite if it is not
    finite, so that such a fit is never kept over a finite one."""
    loss = float(net.history[-1, "train_loss"])
    return loss if math.isfinite(loss) else math.inf


def _silent(*args, **kwargs):
    """A sink for skorch callbacks' messages when ``verbose=0``."""


def _fit_in_worker(estimator, seed, renderer, X, y, n_threads):
    """Run ``estimator._fit_candidate`` in a worker process with ``n_threads``
    torch threads; return its result, what it printed and the warnings it
    raised (message, category, filename, line number), for the parent to
    replay."""
    threads, log = torch.get_num_threads(), io.StringIO()
    torch.set_num_threads(n_threads)
    try:
        with contextlib.redirect_stdout(log), warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            result = estimator._fit_candidate(seed, renderer, X, y)
    finally:  # the worker may serve other joblib calls next
        torch.set_num_threads(threads)
    # Each warning once, as the default filter would show it.
    caught = {(m.category, str(m.message), m.filename, m.lineno): m for m in w}
    caught = [(m.message, m.category, m.filename, m.lineno) for m in caught.values()]
    return result, log.getvalue(), caught


def _replay_warning(message, category, filename, lineno):
    """Raise a warning of a worker process here, as if raised at its origin
    (its module's filters and once-per-location registry apply)."""
    module = next(
        (
            m
            for m in list(sys.modules.values())
            if getattr(m, "__file__", None) == filename
        ),
        None,
    )
    if module is None:
        warnings.warn_explicit(message, category, filename, lineno)
        return
    registry = module.__dict__.setdefault("__warningregistry__", {})
    warnings.warn_explicit(
        message, category, filename, lineno, module.__name__, registry
    )


# In-memory arrays larger than this are not shared with worker processes (joblib
# would copy them once into shared memory); candidate fits then run in turn.
_MAX_SHARED_BYTES = 2**30


def _shareable(array):
    """Whether candidate fits may run in worker processes on ``array`` (X or
    y): None, a memory-mapped array (sent by reference) or an in-memory array
    of at most ``_MAX_SHARED_BYTES``."""
    if array is None or isinstance(array, np.memmap):
        return True
    return isinstance(array, np.ndarray) and array.nbytes <= _MAX_SHARED_BYTES


def _defined_in_main(value):
    """Whether ``value`` (a parameter) holds a class or module defined in a
    script or notebook (``__main__``), which worker processes cannot load
    back by name."""
    if isinstance(value, dict):
        return any(_defined_in_main(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_defined_in_main(v) for v in value)
    objects = list(value.modules()) if isinstance(value, nn.Module) else [value]
    return any(
        (obj if isinstance(obj, type) else type(obj)).__module__ == "__main__"
        for obj in objects
    )


def _can_start_processes():
    """Whether joblib can start worker processes from here: not from a
    thread (a threading backend, dask's threads) nor a daemonic process."""
    return (
        threading.current_thread() is threading.main_thread()
        and not multiprocessing.current_process().daemon
    )


def _positive_int(low=1):
    return [Interval(Integral, low, None, closed="left")]


def check_parameters(estimator):
    """Validate an estimator's parameters against its declared constraints,
    as ``fit`` does first (for callers that must fail before any fit)."""
    validate_parameter_constraints(
        estimator._parameter_constraints,
        estimator.get_params(deep=False),
        caller_name=type(estimator).__name__,
    )


def _warn_if_channels_last(sample_shape):
    """Warn when images (C, H, W) look like channels-last images (H, W, C)."""
    if len(sample_shape) != 3:
        return
    channels, _, last = sample_shape
    if last in _CHANNEL_COUNTS and channels not in _CHANNEL_COUNTS:
        warnings.warn(
            f"X has images of shape (C, H, W) = {sample_shape}: {channels} channels "
            f"of {sample_shape[1]} x {last} pixels. If they are channels-last "
            f"images (H, W, C), pass X.transpose(0, 3, 1, 2); the estimators "
            "expect (n_samples, channels, height, width).",
            UserWarning,
            stacklevel=_user_stacklevel(),
        )


def _check_lazy_array(X):
    """Check an array read on demand (h5py, zarr…) a chunk at a time, as
    ``check_array`` would check an array: dtype, at least one sample, finite
    values. Returns the (min, max) of its values (None for uint8 or empty)."""
    dtype = np.dtype(X.dtype)
    ndim = len(X.shape)
    if dtype not in (np.float32, np.float64) and not (dtype == np.uint8 and ndim == 4):
        raise ValueError(
            f"X is an array read on demand ({type(X).__name__}) of dtype {dtype}; "
            "such X must hold float32 or float64 values, or uint8 images "
            "(n, C, H, W). Convert it, or load it with np.asarray(X)."
        )
    if len(X) < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a "
            "minimum of 1 is required."
        )
    if dtype == np.uint8:
        return None
    low, high = math.inf, -math.inf
    for start in range(0, len(X), _INFERENCE_BATCH):
        chunk = np.asarray(X[start : start + _INFERENCE_BATCH])
        if not np.isfinite(chunk).all():
            raise ValueError("Input X contains NaN or infinity.")
        low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
    return low, high


def _user_stacklevel():
    """The ``stacklevel`` that makes a warning point at the user's code: the
    first frame, going up from the caller of ``warnings.warn``, outside
    compgen-sk, scikit-learn, skorch and joblib (their wrappers add frames that differ
    between ``fit`` and ``transform``)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        level += 1
        frame = frame.f_back
    return level


_PIXEL_VALUES_ABOVE = 10.0


def _warn_if_pixel_values(low, high):
    """Warn when float images, ranging from ``low`` to ``high``, hold what look
    like 0–255 pixel values: uint8 images are scaled to [0, 1], float ones are
    taken as they are, so mixing the two would shift the data by a factor of
    255. Only above 10: float images built from [0, 1] data (a few objects
    summed where they overlap, brightness jitter) may exceed 1 or 2, while an
    8-bit image whose brightest pixel is 10 of 255 would be nearly black."""
    if low >= 0 and _PIXEL_VALUES_ABOVE < high <= 255.0:
        warnings.warn(
            f"X holds float images with values in [{low:.3g}, {high:.3g}], which "
            "look like 0-255 pixel values. Float images are taken as they are, "
            "while uint8 images are scaled to [0, 1]: pass X.astype(np.uint8) or "
            "X / 255 to treat both alike.",
            UserWarning,
            stacklevel=_user_stacklevel(),
        )


def _user_backbone_width(backbone, input_shape):
    """The output width of a user's encoder module, from one dry forward on two
    zero samples, so that a module that does not fit X fails before training,
    with a clear message."""
    try:
        param = next(backbone.parameters(), None)
        device = param.device if param is not None else "cpu"
        was_training = backbone.training
        backbone.eval()
        with torch.no_grad():
            out = backbone(torch.zeros((2, *input_shape), device=device))
        backbone.train(was_training)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ValueError(
            f"The encoder module {type(backbone).__name__} does not accept samples "
            f"of shape {tuple(input_shape)} (the shape of X without its first "
            f"axis): {exc}"
        ) from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out)
        raise ValueError(
            f"The encoder module {type(backbone).__name__} must map samples of "
            f"shape (n, {', '.join(map(str, input_shape))}) to features (n, "
            f"n_features); it returns {shape}."
        )
    return int(out.shape[1])


class SlotEstimatorBase(TransformerMixin, BaseEstimator):
    """Base class of the slot estimators; not for direct use.

    Subclasses declare their parameters in ``__init__``, and ``fit`` calls the
    template :meth:`_fit`, which runs the same steps for every estimator:
    check the training parameters, validate X, compute its scaling, prepare
    the training data (hook :meth:`_training_data`), and train ``n_init``
    nets, each built by the hook :meth:`_new_net`, keeping the best. This
    class also seeds torch, resolves the device, builds encoders and skorch
    nets, and runs batched encoding, search and decoding; the hooks
    ``_encoder``, ``_decoder`` and ``_has_decoder`` say which fitted modules
    infer.
    """

    # Parameters that only some estimators take; the others behave as if they
    # had these values (their __init__ sets the instance attribute otherwise).
    validation_fraction = None  # no validation split
    search_steps = 0  # the encoder alone, no search
    search_restarts = 1

    _parameter_constraints: dict = {
        "encoder": [StrOptions({"auto", "cnn", "mlp"}), nn.Module],
        "encoder_params": [dict, None],
        "batch_size": _positive_int(),
        "lr": [Interval(Real, 0, _FLOAT32_MAX, closed="neither")],
        "optimizer": [StrOptions(set(OPTIMIZERS)), type],
        "optimizer_params": [dict, None],
        "device": [str, torch.device],
        "callbacks": [list, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }
    # Estimators that train their own slot autoencoder / encoder on X.
    _training_constraints: dict = {
        "n_slots": _positive_int(),
        "slot_dim": _positive_int(),
        "max_epochs": _positive_int(),
        "validation_fraction": [Interval(Real, 0, 1, closed="neither"), None],
    }
    # How every estimator's nets are trained.
    _fit_control_constraints: dict = {
        "n_init": _positive_int(),
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "n_iter_no_change": _positive_int(),
        "n_jobs": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Integral, None, -1, closed="right"),
            None,
        ],
    }
    _search_constraints: dict = {
        "search_steps": _positive_int(0),
        "search_lr": [Interval(Real, 0, None, closed="neither")],
        "search_batch_size": _positive_int(),
        "search_tol": [Interval(Real, 0, None, closed="left")],
        "search_restarts": _positive_int(),
    }

    # ------------------------------------------------------------------ inputs

    def _validate_X(self, X, *, reset):
        """Check X and return it as a float array of shape (n, d) or (n, C, H, W).

        Nothing is copied unless the dtype must change; callers convert batches.
        """
        lazy = is_lazy_array(X)
        if lazy:
            low_high = _check_lazy_array(X)
        else:
            # ensure_2d=False: images are 4-D, and n_features_in_ is set below
            # (for images, the product of the sample shape).
            X = validate_data(
                self,
                X,
                reset=reset,
                allow_nd=True,
                ensure_2d=False,
                dtype=[np.float32, np.float64, np.uint8],
            )
            if X.dtype == np.uint8 and X.ndim != 4:  # uint8: pixels of images only
                X = X.astype(np.float32)
        ndim, dtype = len(X.shape), np.dtype(X.dtype)
        if ndim not in (2, 4):
            hint = (
                " Reshape your data: X.reshape(-1, 1) for a single feature, "
                "X.reshape(1, -1) for a single sample."
                if ndim == 1
                else ""
            )
            raise ValueError(
                f"X must be vectors (n_samples, n_features) or images "
                f"(n_samples, channels, height, width); got shape {X.shape}.{hint}"
            )
        # One pass for the range of floats that the checks below need.
        if dtype != np.uint8 and (dtype == np.float64 or ndim == 4) and len(X):
            low, high = low_high if lazy else (float(X.min()), float(X.max()))
            largest = max(high, -low)
            if dtype == np.float64 and largest > _FLOAT32_MAX:
                raise ValueError(
                    f"X has values up to {largest:.3g}, beyond the float32 range "
                    f"(±{_FLOAT32_MAX:.3g}) that the networks compute in; rescale X."
                )
            if ndim == 4:
                _warn_if_pixel_values(low, high)
        shape = tuple(X.shape[1:])
        if reset and lazy and hasattr(self, "feature_names_in_"):
            del self.feature_names_in_  # from an earlier fit on a DataFrame
        if reset:
            _warn_if_channels_last(shape)
            self.input_shape_ = shape
            self.n_features_in_ = math.prod(shape)
        elif shape != self.input_shape_:
            if ndim == 2 and len(self.input_shape_) == 1:
                raise ValueError(
                    f"X has {shape[0]} features, but {type(self).__name__} is "
                    f"expecting {self.n_features_in_} features as input."
                )
            raise ValueError(
                f"X has samples of shape {shape}, but {type(self).__name__} was "
                f"fitted on samples of shape {self.input_shape_}."
            )
        return X

    def _check_training_params(self):
        """Checks of the training parameters that their declared constraints
        cannot express: optimizer classes and callbacks. Run by ``fit`` before
        any work."""
        optimizer = self.optimizer
        if not isinstance(optimizer, str) and not issubclass(
            optimizer, torch.optim.Optimizer
        ):
            raise ValueError(
                f"optimizer must be one of {sorted(OPTIMIZERS)} or a subclass of "
                f"torch.optim.Optimizer; got {optimizer!r}."
            )
        validated = bool(self.validation_fraction)
        for item in self.callbacks or []:
            callback = item
            if isinstance(item, tuple):
                if len(item) != 2 or not isinstance(item[0], str):
                    raise ValueError(
                        "callbacks must hold skorch callbacks or (name, callback) "
                        f"pairs; got the tuple {item!r}."
                    )
                callback = item[1]
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
            watches_validation = isinstance(monitor, str) and monitor.startswith(
                "valid"
            )
            if watches_validation and not validated:
                advice = (
                    "set validation_fraction (e.g. 0.1) or "
                    if "validation_fraction" in self.get_params(deep=False)
                    else ""
                )
                kind = callback if isinstance(callback, type) else type(callback)
                raise ValueError(
                    f"The callback {kind.__name__} monitors {monitor!r}, "
                    f"but {type(self).__name__} holds out no validation data: "
                    f"{advice}monitor 'train_loss' instead."
                )

    def _check_search_params(self):
        """Validate the search parameters where they act (``transform``), with
        the messages of ``fit``: ``set_params`` on a fitted estimator skips
        ``fit``'s validation."""
        names = [
            n for n in self._search_constraints if n in self._parameter_constraints
        ]
        validate_parameter_constraints(
            {n: self._parameter_constraints[n] for n in names},
            {n: getattr(self, n) for n in names},
            caller_name=type(self).__name__,
        )

    def _validate_slots(self, Z):
        """Check slot arrays (n, K * d) or (n, K, d) against the fitted encoder."""
        encoder = self._encoder()
        return check_slots(Z, encoder.n_slots, encoder.slot_dim, estimator=self)

    # ------------------------------------------------------------ torch set-up

    def _device(self):
        return resolve_device(self.device)

    @contextlib.contextmanager
    def _seeded(self, seed=None):
        """Run the block with torch's generators seeded (from ``random_state``
        unless ``seed`` is given) and restored afterwards, so fitting neither
        depends on nor disturbs them."""
        if seed is None:
            seed = int(
                check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            )
        device = self._device()
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            yield

    def _set_data_scaling(self, X):
        """Per-feature mean and one overall scale of X (``data_mean_``,
        ``data_scale_``), computed in chunks so that X is never copied whole."""
        n = len(X)
        total = np.zeros(X.shape[1:], dtype=np.float64)
        for start in range(0, n, _INFERENCE_BATCH):
            chunk = as_float_array(X[start : start + _INFERENCE_BATCH])
            total += chunk.sum(axis=0, dtype=np.float64)
        mean = total / n
        squares = 0.0
        for start in range(0, n, _INFERENCE_BATCH):
            chunk = as_float_array(X[start : start + _INFERENCE_BATCH]) - mean
            squares += float(np.square(chunk, out=chunk).sum())
        scale = math.sqrt(squares / (n * mean.size))
        self.data_mean_ = mean.astype(np.float32)
        # Constant data: any positive scale gives the same (exact) fit.
        self.data_scale_ = float(scale) if scale > 0 else 1.0

    def _build_encoder(self, input_shape, n_slots, slot_dim, vae=False):
        """The slot encoder named by ``encoder`` (a user module is copied first).

        Its inputs are standardized first, with ``data_mean_`` and
        ``data_scale_``."""
        params = dict(self.encoder_params or {})
        if isinstance(self.encoder, nn.Module):
            backbone = copy.deepcopy(self.encoder)
            n_features = _user_backbone_width(backbone, input_shape)
        else:
            kind = self.encoder
            if kind == "auto":
                kind = "cnn" if len(input_shape) == 3 else "mlp"
            try:
                backbone = make_backbone(kind, input_shape, **params)
            except TypeError as exc:
                raise ValueError(
                    f"encoder_params={params!r} do not fit encoder={kind!r}: {exc}"
                ) from exc
            n_features = infer_out_features(backbone, input_shape)
        backbone = nn.Sequential(
            Standardize(self.data_mean_, self.data_scale_), backbone
        )
        return SlotEncoder(backbone, n_features, n_slots, slot_dim, vae=vae)

    def _build_decoder(self, name, output_shape, **module_params):
        """The decoder ``name`` with ``decoder_params`` (and ``module_params``
        that the estimator sets), rendering standardized values that
        :class:`~compgen_sk.modules.RescaledDecoder` maps back to data units."""
        params = {**(self.decoder_params or {}), **module_params}
        if name in RENDERER_DECODERS and getattr(self, "renderer_", None):
            params["renderer"] = self.renderer_  # "auto" resolved
        try:
            decoder = make_decoder(
                name, self.n_slots, self.slot_dim, output_shape, **params
            )
        except TypeError as exc:
            raise ValueError(
                f"decoder_params={params!r} do not fit decoder={name!r}: {exc}"
            ) from exc
        return RescaledDecoder(decoder, self.data_mean_, self.data_scale_)

    def _make_net(self, module, *, net_class=NeuralNet, criterion=nn.MSELoss, **kwargs):
        """A skorch net around ``module`` with the estimator's training settings."""
        optimizer = self.optimizer
        if isinstance(optimizer, str):
            optimizer = OPTIMIZERS[optimizer]
        fraction = self.validation_fraction
        optimizer_params = {
            f"optimizer__{k}": v for k, v in (self.optimizer_params or {}).items()
        }
        settings = dict(
            module=module,
            criterion=criterion,
            optimizer=optimizer,
            lr=self.lr,
            batch_size=self.batch_size,
            iterator_train=BatchLoader,
            iterator_train__shuffle=True,
            iterator_valid=BatchLoader,
            train_split=self._validation_split(fraction),
            callbacks=self._training_callbacks(),
            device=self._device(),
            verbose=self.verbose,
        )
        settings.update(optimizer_params)
        settings.update(kwargs)
        return net_class(**settings)

    def _validation_split(self, fraction):
        """skorch's ValidSplit holding out ``fraction`` of X, drawn from the
        seeded torch generator, so that it follows ``random_state``."""
        if not fraction:
            return None
        seed = int(torch.randint(np.iinfo(np.int32).max, (1,)))
        return ValidSplit(fraction, random_state=seed)

    def _training_callbacks(self):
        """The user's callbacks, then the default training control, each under
        a name: ``"lr_plateau"`` (halve the learning rate after
        ``_LR_PATIENCE`` epochs without a ``tol`` improvement of the training
        loss), ``"gradient_clipping"`` (clip gradients to norm
        ``_MAX_GRAD_NORM``), ``"divergence"`` (stop at the first epoch whose
        loss is not finite; ``fit`` then raises) and, unless ``tol=None``,
        ``"plateau_stopping"`` (stop after ``n_iter_no_change`` epochs without
        a ``tol`` improvement). A user callback given under one of these names, as a
        ``(name, callback)`` pair, replaces the default."""
        user = copy.deepcopy(self.callbacks) or []
        names = {item[0] for item in user if isinstance(item, tuple)}
        defaults = [
            (
                "lr_plateau",
                LRScheduler(
                    policy="ReduceLROnPlateau",
                    monitor="train_loss",
                    factor=0.5,
                    patience=_LR_PATIENCE,
                    threshold=self.tol or 0.0,
                    threshold_mode="abs",
                ),
            ),
            ("gradient_clipping", GradientNormClipping(_MAX_GRAD_NORM)),
            ("divergence", StopOnNonFiniteLoss()),
        ]
        if self.tol is not None:
            stopping = EarlyStopping(
                monitor="train_loss",
                patience=self.n_iter_no_change,
                threshold=self.tol,
                threshold_mode="abs",
                sink=print if self.verbose else _silent,
            )
            defaults.append(("plateau_stopping", stopping))
        return user + [(name, cb) for name, cb in defaults if name not in names]

    def _fit(self, X, y=None):
        """The fit template that every estimator's ``fit`` runs."""
        self._check_training_params()
        X = self._validate_X(X, reset=True)
        self._set_data_scaling(X)
        inputs, targets = self._training_data(X, y)
        self._fit_restarts(inputs, targets)
        if "search_restarts" in self._parameter_constraints:
            # Slots of training images, evenly spaced: what multi-start search
            # recombines the encoder's guesses with.
            rows = np.unique(np.linspace(0, len(X) - 1, _START_BANK).astype(int))
            self.start_slots_ = self._encode_array(read_rows(X, rows))
        return self

    def _training_data(self, X, y):
        """Hook: the inputs and targets the nets train on (default: X alone,
        for autoencoding)."""
        return X, None

    def _new_net(self):
        """Hook: a fresh, unfitted skorch net, built from the parameters and
        the fitted attributes set so far (``input_shape_``, ``data_scale_``…)."""
        raise NotImplementedError

    def _fit_net(self, net, X, y=None):
        """Initialize and train ``net`` on batches converted from X (copies:
        the caller's arrays never change)."""
        if isinstance(X, np.ndarray) or is_lazy_array(X):
            # Read a batch at a time, never copied whole.
            X, y = ArrayDataset(X, y), None
        try:
            net.initialize()
        except TypeError as exc:
            raise ValueError(
                f"optimizer_params={self.optimizer_params!r} do not fit "
                f"optimizer={self.optimizer!r}: {exc}"
            ) from exc
        net.partial_fit(X, y)
        return net

    def _diverged(self, exc):
        """The ValueError that a fit raises for a :class:`DivergenceError`."""
        return ValueError(
            f"{type(self).__name__} diverged: the training loss or the weights "
            f"became NaN or infinite in epoch {exc.epoch}. Lower the learning rate "
            f"(lr={self.lr!r}) or check the scale of X (its root mean square "
            f"deviation is {self.data_scale_:.3g})."
        )

    def _renderer_choices(self):
        """The renderers a restart tries: the one ``decoder_params`` names; for
        ``"auto"`` (the default), ``("mlp", "broadcast")`` on images without
        renderer options and ``("mlp",)`` otherwise (options such as ``hidden``
        are the MLP renderer's unless another is named); ``(None,)`` where the
        decoder has no renderer."""
        name = self._decoder_name()
        if name not in RENDERER_DECODERS:
            return (None,)
        params = dict(self.decoder_params or {})
        renderer = params.pop("renderer", "auto")
        if renderer not in ("auto", *RENDERERS):
            raise ValueError(
                f"Unknown renderer {renderer!r} in decoder_params; use 'auto' or "
                f"one of {RENDERERS}."
            )
        if renderer != "auto":
            return (renderer,)
        params.pop("shared", None)  # the decoder's option, not the renderer's
        if len(self.input_shape_) == 3 and not params:
            return ("mlp", "broadcast")
        return ("mlp",)

    def _decoder_name(self):
        """Hook: the name of the decoder this estimator trains, or None."""
        return None

    def _fit_candidate(self, seed, renderer, X, y):
        """One candidate fit: a net trained from ``seed`` with ``renderer``, or
        the :class:`DivergenceError` that ended it."""
        self.renderer_ = renderer  # what _new_net builds the decoder with
        with self._seeded(seed):
            try:
                return self._fit_net(self._new_net(), X, y)
            except DivergenceError as exc:
                # Not exc itself: its traceback holds the diverged net.
                return DivergenceError(exc.epoch)

    def _n_parallel(self, n_candidates, X, y):
        """How many candidate fits run at once (1: in this process)."""
        in_turn = (
            n_candidates < 2
            or self._device().type != "cpu"
            or not all(_shareable(a) for a in (X, y))
            or _defined_in_main(self.get_params(deep=False))
            or not _can_start_processes()
        )
        if in_turn:
            return 1
        n_jobs = self.n_jobs
        if n_jobs is None:  # that of a joblib.parallel_config around fit, if any
            n_jobs = joblib.parallel.get_active_backend()[1]
        if n_jobs is None:
            return min(n_candidates, torch.get_num_threads())
        return min(n_candidates, joblib.effective_n_jobs(n_jobs))

    def _candidate_fits(self, candidates, X, y):
        """Fit each (seed, renderer) candidate; yield the nets (or the
        :class:`DivergenceError` of one that diverged) in order.

        Candidates run ``_n_parallel`` at a time in worker processes, each with
        its share of torch's threads: on a few cores small networks gain little
        from a second thread, so two fits side by side take about 0.6 times as
        long as one after the other. A worker's printed log and warnings are
        replayed here, in order.
        """
        choices = tuple(dict.fromkeys(renderer for _, renderer in candidates))

        def announce(renderer):
            if self.verbose and len(choices) > 1:  # which epoch table is which
                print(f"renderer={renderer!r} (renderer='auto' fits {choices})")

        n_parallel = self._n_parallel(len(candidates), X, y)
        if n_parallel == 1:
            for seed, renderer in candidates:
                announce(renderer)
                yield self._fit_candidate(seed, renderer, X, y)
            return
        threads = max(1, torch.get_num_threads() // n_parallel)
        worker = copy.copy(self)  # without a previous fit's modules
        for attr in ("net_", "encoder_", "decoder_", "start_slots_"):
            worker.__dict__.pop(attr, None)
        jobs = (
            joblib.delayed(_fit_in_worker)(worker, seed, renderer, X, y, threads)
            for seed, renderer in candidates
        )
        parallel = joblib.Parallel(
            n_jobs=n_parallel, backend="loky", batch_size=1, return_as="generator"
        )
        # Runs joblib's generator to its end: closed early, it would stop the
        # workers, which are otherwise reused by the next fit.
        for index, (result, log, caught) in enumerate(parallel(jobs)):
            announce(candidates[index][1])
            sys.stdout.write(log)
            for warning in caught:
                _replay_warning(*warning)
            yield result
            del result  # a losing net's memory, before the next one arrives

    def _fit_restarts(self, X, y=None):
        """Fit ``n_init`` nets from different initializations, each with every
        renderer choice; keep the one with the lowest final training loss (as
        KMeans keeps its best restart).

        Every renderer choice (two where ``"auto"`` fits both) trains a whole
        fit from the restart's seed, exactly as the fit that names it; the one
        with the lower final total training loss (the loss that
        ``loss_curve_`` records) is kept, as restarts are. Shorter trials
        cannot decide: a broadcast renderer that has bound two slots to one
        object sits on a plateau for half the epochs before it overtakes the
        MLP renderer (two balls, 80 epochs: 0.17 against 0.08 at epoch 40,
        0.007 against 0.056 at the end).

        Nets are built by the hook ``_new_net`` with torch's generators seeded
        for their restart. Sets ``net_``, ``n_iter_``, ``loss_curve_``,
        ``init_losses_``, ``best_init_``, ``converged_``, ``renderer_`` and
        ``renderer_losses_``, and warns
        (:class:`~sklearn.exceptions.ConvergenceWarning`) when the kept fit has
        not converged or fits its training data poorly.
        """
        seeds = check_random_state(self.random_state).randint(
            np.iinfo(np.int32).max, size=self.n_init
        )
        choices = self._renderer_choices()
        candidates = [(int(seed), renderer) for seed in seeds for renderer in choices]
        fits = self._candidate_fits(candidates, X, y)
        best, losses = None, []
        try:
            for index, result in enumerate(fits):
                renderer = choices[index % len(choices)]
                if renderer == choices[0]:  # a restart's first renderer
                    kept = net = error = None
                    renderer_losses = {}
                # Keep the restart's renderer with the lowest final loss.
                if isinstance(result, DivergenceError):
                    renderer_losses[renderer], error = math.inf, result
                else:
                    renderer_losses[renderer] = _final_loss(result)
                    if net is None or renderer_losses[renderer] < renderer_losses[kept]:
                        kept, net = renderer, result
                del result  # a losing renderer's memory, before the next fit
                if renderer != choices[-1]:
                    continue
                # The restart is complete: keep the restart with the lowest loss.
                if net is None:
                    raise self._diverged(error) from None
                losses.append(renderer_losses[kept])
                if best is None or losses[-1] < losses[best]:
                    best, best_net = len(losses) - 1, net
                    best_renderer, best_losses = kept, renderer_losses
                del net  # a losing restart's memory, before the next one
        finally:  # on an error, stop the candidates still running
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # joblib's note that it did
                fits.close()
        if "decoder_params" in self.get_params(deep=False):
            self.renderer_ = best_renderer
            self.renderer_losses_ = best_losses if len(choices) > 1 else None
        else:  # trains no renderer of its own
            self.__dict__.pop("renderer_", None)
        self.net_ = best_net
        self.init_losses_ = np.asarray(losses)
        self.best_init_ = best
        self.loss_curve_ = [float(v) for v in best_net.history[:, "train_loss"]]
        self.n_iter_ = len(self.loss_curve_)
        self.converged_ = self.n_iter_ < self._max_epochs()
        self._set_public_modules()
        self._warn_if_not_converged()

    def _set_public_modules(self):
        """``encoder_``, ``decoder_``, ``n_slots_`` and ``slot_dim_`` from the
        kept net: what metrics, plots and users read instead of the net."""
        self.encoder_ = self._encoder()
        self.decoder_ = self._decoder() if self._has_decoder() else None
        self.n_slots_ = self.encoder_.n_slots
        self.slot_dim_ = self.encoder_.slot_dim

    # The parameter that caps the epochs of training.
    _max_epochs_param = "max_epochs"

    def _max_epochs(self):
        return getattr(self, self._max_epochs_param)

    def _training_r2(self):
        """R² of the kept fit on its own training data, from its last epoch's
        standardized reconstruction loss; None where the estimator has none."""
        losses = [
            b["train_reconstruction"]
            for b in self.net_.history[-1, "batches"]
            if "train_reconstruction" in b
        ]
        return 1.0 - float(np.mean(losses)) if losses else None

    def _warn_if_not_converged(self):
        name = type(self).__name__
        curve = self.loss_curve_
        if not self.converged_ and len(curve) > _CONVERGENCE_WINDOW:
            before, last = curve[-1 - _CONVERGENCE_WINDOW], curve[-1]
            rate = (before - last) / max(abs(before), 1e-12) / _CONVERGENCE_WINDOW
            if rate > _FAST_DECREASE:
                warnings.warn(
                    f"{name} stopped at {self._max_epochs_param}="
                    f"{self._max_epochs()} while its training loss still fell by "
                    f"{100 * rate:.1f}% per epoch over the last "
                    f"{_CONVERGENCE_WINDOW} epochs; raise {self._max_epochs_param}.",
                    ConvergenceWarning,
                    stacklevel=_user_stacklevel(),
                )
        r2 = self._training_r2()
        if r2 is not None and not r2 >= MIN_TRAINING_R2:
            hint = self._renderer_hint()
            warnings.warn(
                f"{name} fits its own training data poorly: training R² {r2:.3f} < "
                f"{MIN_TRAINING_R2} (1 - the standardized loss of the last epoch). "
                "Train longer (max_epochs), try n_init > 1, or give the model more "
                f"room (slot_dim, decoder_params).{hint}",
                ConvergenceWarning,
                stacklevel=_user_stacklevel(),
            )

    def _renderer_hint(self):
        """For a poor fit of images by a renderer that was named, not chosen, a
        sentence naming the other kind of renderer; else ''."""
        if getattr(self, "renderer_losses_", None) or len(self.input_shape_) != 3:
            return ""
        renderer = getattr(self, "renderer_", None)
        if renderer == "broadcast":
            return (
                " For content drawn at fixed places (such as digits in fixed "
                "cells or a background), try decoder_params={'renderer': 'mlp'}."
            )
        if renderer == "mlp":
            return (
                " For images of objects that move about, try "
                "decoder_params={'renderer': 'broadcast'}."
            )
        return ""

    # -------------------------------------------------------------- inference

    def _encoder(self):
        """The fitted slot encoder."""
        raise NotImplementedError

    def _decoder(self):
        """The fitted decoder that renders slots, on the inference device."""
        raise NotImplementedError

    def _has_decoder(self):
        return True

    def _inference_device(self):
        return torch.device(self.net_.device)

    def _batches(self, array, batch_size):
        device = self._inference_device()
        for start in range(0, len(array), batch_size):
            chunk = as_float_tensor(array[start : start + batch_size])
            yield start, chunk.to(device)

    def _map_array(self, module, array, sample_shape, fn=None):
        """``fn`` (default: ``module``) over ``array`` in batches, without gradient
        and with ``module`` in eval mode; returns (n, *sample_shape) float32."""
        fn = module if fn is None else fn
        out = np.empty((len(array), *sample_shape), dtype=np.float32)
        with eval_mode(module), torch.no_grad():
            for start, batch in self._batches(array, _INFERENCE_BATCH):
                out[start : start + len(batch)] = fn(batch).cpu().numpy()
        return out

    def _encode_array(self, X):
        encoder = self._encoder()
        return self._map_array(encoder, X, (encoder.n_slots, encoder.slot_dim))

    def _decode_array(self, decoder, Z, *, per_slot=False):
        """Decode slots (n, K, d) in batches; ``per_slot`` keeps each slot's
        rendering apart ``(n, K, *input_shape_)`` through ``decoder.render_slots``."""
        if per_slot:
            shape = (Z.shape[1], *self.input_shape_)
            return self._map_array(decoder, Z, shape, decoder.render_slots)
        return self._map_array(decoder, Z, self.input_shape_)

    def _invert_array(self, X, decoder, steps):
        """Encoder guess refined by ``steps`` of batched search, in chunks of
        ``search_batch_size`` so that memory stays bounded whatever ``len(X)``."""
        encoder = self._encoder()
        out = np.empty((len(X), encoder.n_slots, encoder.slot_dim), dtype=np.float32)
        chunks = self._batches(X, self.search_batch_size)
        if self.verbose and steps:
            from tqdm.auto import tqdm

            total = math.ceil(len(X) / self.search_batch_size)
            chunks = tqdm(chunks, total=total, desc="search", unit="batch")
        restarts = self.search_restarts if steps else 1
        bank = torch.as_tensor(self.start_slots_) if restarts > 1 else None
        with eval_mode(encoder, decoder):
            for start, x in chunks:
                with torch.no_grad():
                    z = encoder(x)
                if steps:
                    # Search in standardized units: the same minimizer, and
                    # squared errors that stay finite for data of any size.
                    target = decoder.standardize(x)
                    starts = (
                        z[None] if bank is None else search_starts(z, restarts, bank)
                    )
                    z, loss, _ = search_latents(
                        decoder.decoder,
                        target.repeat(restarts, *([1] * (target.dim() - 1))),
                        starts.flatten(0, 1),
                        steps=steps,
                        lr=self.search_lr,
                        tol=self.search_tol,
                    )
                    if restarts > 1:
                        best = loss.view(restarts, len(x)).argmin(dim=0)
                        z = z.view(restarts, *starts.shape[1:])[
                            best, torch.arange(len(x), device=z.device)
                        ]
                out[start : start + len(x)] = z.cpu().numpy()
        return out

    # ------------------------------------------------------------- sklearn API

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
        encoder = self._encoder()
        return np.asarray(
            [
                f"slot{k}_{j}"
                for k in range(encoder.n_slots)
                for j in range(encoder.slot_dim)
            ],
            dtype=object,
        )

    def _flat(self, slots):
        return slots.reshape(len(slots), -1)

    def transform(self, X):
        """Infer slots: the encoder's guess, refined by ``search_steps`` of
        gradient search on the decoder where the estimator searches (Eq.
        :eq:`eq-search`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Images or vectors, in the layout of the data fitted on.

        Returns
        -------
        slots : ndarray of shape (n_samples, n_slots * slot_dim), float32
        """
        check_is_fitted(self)
        self._check_search_params()
        X = self._validate_X(X, reset=False)
        steps = self.search_steps
        if not steps:
            slots = self._encode_array(X)
        else:
            slots = self._invert_array(X, self._decoder(), steps)
        if not np.isfinite(slots).all():
            raise ValueError(
                f"{type(self).__name__} inferred non-finite slots for "
                f"{int((~np.isfinite(slots)).any(axis=(1, 2)).sum())} of {len(X)} "
                "samples: its networks overflow on this X. Check the scale of X "
                "against the data it was fitted on, and whether training diverged "
                "(a training loss far from 0: lower lr)."
            )
        return self._flat(slots)

    @available_if(lambda self: self._has_decoder())
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
        return self._check_rendering(self._decode_array(self._decoder(), Z), Z)

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
