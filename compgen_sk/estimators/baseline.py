"""EncoderBaseline: the non-generative reference, an encoder and nothing else."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted

from .._concepts import slot_targets
from .._sklearn_compat import StrOptions, _fit_context
from ..decoders import MLPDecoder, check_decoder
from ..modules import SlotAutoencoder, SlotRegressor
from ._base import SlotEstimatorBase, _with_threads, share_docs
from ._data import check_X
from ._inference import map_array
from ._nets import SlotAutoencoderNet
from ._training import make_net


@share_docs
class EncoderBaseline(SlotEstimatorBase):
    """An encoder trained on in-domain data; ``transform`` is one forward pass.

    The non-generative approach of :ref:`background-setting`,
    :ref:`background-decoders`: ``phi = g(x)``. With ``objective="autoencoder"`` the
    encoder is trained jointly with an unconstrained MLP decoder (no inductive bias) by
    autoencoding; with ``objective="supervised"`` it regresses the ground-truth latents,
    slot ``k`` predicting true slot ``k`` through a linear readout. Nothing in either
    objective guarantees that the encoder handles unseen slot combinations.

    Parameters
    ----------
    n_slots : int, default=2
        Number of slots K.
    slot_dim : int, default=4
        Dimension of each slot.
    objective : {"autoencoder", "supervised"}, default="autoencoder"
        ``"supervised"`` requires ``y``: latents (n, K, m) or (n, K * m), or a
        concept table whose columns ``"<slot>_<concept>"`` group by true slot
        (categorical concepts one-hot). Targets are standardized per column.
    decoder : "mlp" or MLPDecoder, default="mlp"
        The unconstrained decoder of ``"autoencoder"``
        (:class:`~compgen_sk.MLPDecoder`: its renderer and widths).
    encoder : {"auto", "cnn", "mlp"}, encoder or torch.nn.Module, default="auto"
        The encoder's backbone, as in :class:`GenerativeInverter`.
    max_epochs : int, default=80
        Cap on the training epochs (training stops earlier on a plateau, see
        ``tol``).
    {{training}}
    validation_fraction : float in (0, 1) or None, default=None
        Hold out this fraction of X to record ``valid_loss`` (for
        :class:`skorch.callbacks.EarlyStopping`); None trains on all of X.
    {{runtime}}

    Attributes
    ----------
    {{fitted}}
    decoder_ : torch.nn.Module or None
        The fitted unconstrained decoder (``"autoencoder"``); None for
        ``"supervised"``, which trains no decoder.
    {{renderer}}
    target_mean_, target_scale_ : ndarray of shape (K, m)
        Standardization of the supervised targets (``"supervised"`` only).
    concept_categories_ : dict or None
        The encoding of a concept table ``y`` fixed at fit (``"supervised"``
        only): column -> its categories (one-hot encoded), or None for a
        continuous column; None when ``y`` was an array. ``score`` encodes
        its ``y`` the same way and raises on a category not seen at fit.

    See Also
    --------
    GenerativeInverter : Inverts a decoder instead.

    Notes
    -----
    {{convergence}}

    Examples
    --------
    >>> from compgen_sk import EncoderBaseline
    >>> from compgen_sk.datasets import make_additive
    >>> X, z = make_additive(200, n_slots=2, return_X_y=True, random_state=0)
    >>> supervised = EncoderBaseline(n_slots=2, slot_dim=2, objective="supervised",
    ...                              max_epochs=5, random_state=0).fit(X, z)
    >>> supervised.transform(X).shape
    (200, 4)
    """

    _trains_decoder = True

    _parameter_constraints: dict = {
        **SlotEstimatorBase._parameter_constraints,
        **SlotEstimatorBase._slot_constraints,
        "objective": [StrOptions({"autoencoder", "supervised"})],
        "decoder": [StrOptions({"mlp"}), MLPDecoder],
    }

    def __init__(
        self,
        *,
        n_slots=2,
        slot_dim=4,
        objective="autoencoder",
        decoder="mlp",
        encoder="auto",
        max_epochs=80,
        n_init=1,
        tol=1e-4,
        n_iter_no_change=10,
        batch_size=64,
        lr=1e-3,
        optimizer="adamw",
        optimizer_params=None,
        validation_fraction=None,
        n_jobs=None,
        device="cpu",
        callbacks=None,
        random_state=None,
        verbose=0,
    ):
        self.n_slots = n_slots
        self.slot_dim = slot_dim
        self.objective = objective
        self.decoder = decoder
        self.encoder = encoder
        self.max_epochs = max_epochs
        self.n_init = n_init
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.optimizer_params = optimizer_params
        self.validation_fraction = validation_fraction
        self.n_jobs = n_jobs
        self.device = device
        self.callbacks = callbacks
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the encoder.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            In-domain training data.
            May be uint8 images (0-255 pixels, scaled to [0, 1]) or a disk-backed
            :class:`numpy.memmap`: X is read a batch at a time, never copied whole.
        y : array-like or DataFrame, default=None
            Ground-truth latents or concepts; required for
            ``objective="supervised"``, else ignored (a y of another length
            than X raises).

        Returns
        -------
        self : EncoderBaseline
        """
        return self._fit(X, y)

    def _training_data(self, X, y):
        """X, and for ``"supervised"`` the standardized per-slot targets."""
        if self.objective == "autoencoder":
            return X, None
        return X, self._standardize_targets(X, y, reset=True)

    def _candidates(self):
        if self.objective == "supervised":
            return [None]
        return check_decoder(self.decoder).candidates(self.input_shape_)

    def _new_net(self, candidate):
        """A fresh, unfitted net: the encoder with a readout of the targets
        (``"supervised"``) or with the decoder ``candidate``."""
        encoder = self._build_encoder(self.n_slots, self.slot_dim)
        if candidate is None:
            return make_net(self, SlotRegressor(encoder, self.target_mean_.shape[1]))
        return make_net(
            self,
            SlotAutoencoder(encoder, self._build_decoder(candidate)),
            net_class=SlotAutoencoderNet,
            reconstruction_scale=self.data_scale_,
        )

    def _set_fitted_modules(self):
        self.encoder_ = self.net_.module_.encoder
        self.decoder_ = self.net_.module_.decoder if self._has_decoder() else None
        self._set_slot_shape()

    def _has_decoder(self):
        return self.objective == "autoencoder"

    def _training_r2(self):
        if self.objective == "supervised":  # targets are standardized per column
            return 1.0 - self.loss_curve_[-1]
        return super()._training_r2()

    def _standardize_targets(self, X, y, *, reset):
        if y is None:
            raise ValueError(
                "objective='supervised' requires y: ground-truth latents (n, K, m) or "
                "a concept table."
            )
        if reset:
            targets, self.concept_categories_ = slot_targets(y, self.n_slots)
        else:
            if self.concept_categories_ is None and isinstance(y, pd.DataFrame):
                raise ValueError(
                    "The estimator was fitted on latents (an array); y must be an "
                    "array of the same layout, not a concept table."
                )
            targets, _ = slot_targets(y, self.n_slots, self.concept_categories_)
        if len(targets) != len(X):
            raise ValueError(f"y has {len(targets)} samples but X has {len(X)}.")
        if reset:
            # In float64: squares of float32 targets can overflow.
            wide = targets.astype(np.float64)
            self.target_mean_ = wide.mean(axis=0).astype(np.float32)
            scale = wide.std(axis=0)
            self.target_scale_ = np.where(scale > 0, scale, 1.0).astype(np.float32)
        elif targets.shape[1:] != self.target_mean_.shape:
            raise ValueError(
                f"y has per-slot targets of shape {targets.shape[1:]}, but the "
                f"estimator was fitted on {self.target_mean_.shape}."
            )
        wide = targets.astype(np.float64)
        return ((wide - self.target_mean_) / self.target_scale_).astype(np.float32)

    @_with_threads
    def score(self, X, y=None, sample_weight=None):
        """Reconstruction R² (autoencoder) or R² of the supervised readout.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Data to score.
        y : array-like or DataFrame, default=None
            Required for ``objective="supervised"``: targets in the layout given
            to ``fit``, encoded as at fit (a category not seen at fit raises).
        sample_weight : array-like of shape (n_samples,) or None, default=None
            Weights of the samples.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        if self.objective == "autoencoder":
            return super().score(X, sample_weight=sample_weight)
        X = check_X(self, X, reset=False)
        targets = self._standardize_targets(X, y, reset=False)
        module = self.net_.module_
        device = self._inference_device()
        predictions = map_array(module, X, targets.shape[1:], device, module)
        n = len(targets)
        # In float64: float32 sums would give constant columns a spurious variance.
        return r2_score(
            targets.reshape(n, -1).astype(np.float64),
            predictions.reshape(n, -1).astype(np.float64),
            sample_weight=sample_weight,
            multioutput="variance_weighted",
        )
