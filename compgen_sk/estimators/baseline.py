"""EncoderBaseline: the non-generative reference, an encoder and nothing else."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted

from .._concepts import slot_targets
from .._sklearn_compat import StrOptions, _fit_context
from ..modules import SlotAutoencoder, SlotRegressor
from ._base import SlotEstimatorBase
from ._nets import SlotAutoencoderNet


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
    decoder_params : dict or None, default=None
        Options of the unconstrained decoder (``"autoencoder"`` only), e.g.
        ``{"renderer": "mlp", "hidden": (256, 256)}``; its renderer is chosen
        as in :class:`GenerativeInverter`.
    encoder : {"auto", "cnn", "mlp"} or torch.nn.Module, default="auto"
        Encoder backbone; a user-supplied module maps inputs to features (n, F)
        and is copied before training.
    encoder_params : dict or None, default=None
        Options of the named backbone (``channels``, ``n_layers``, ``hidden``).
    max_epochs : int, default=80
        Cap on the training epochs (training stops earlier on a plateau, see
        ``tol``).
    n_init : int, default=1
        Trainings from different initializations; the one with the lowest
        final training loss is kept (``best_init_``), as in
        :class:`~sklearn.cluster.KMeans`. Costs ``n_init`` fits (each of both
        renderers where ``"auto"`` fits both).
    tol : float >= 0 or None, default=1e-4
        Training stops once the training loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs (``max_epochs`` is a cap); the learning rate
        halves after 4 such epochs. The training loss is standardized: 1 - R² of
        the reconstruction or of the supervised targets. None trains all
        ``max_epochs`` epochs.
    n_iter_no_change : int, default=10
        Epochs without a ``tol`` improvement that stop training.
    batch_size : int, default=64
        Samples per training step.
    lr : float, default=1e-3
        Learning rate of training.
    optimizer : {"adamw", "adam", "sgd", "rmsprop"} or torch optimizer class, \
default="adamw"
    optimizer_params : dict or None, default=None
        Extra optimizer arguments, e.g. ``{"weight_decay": 1e-4}``.
    validation_fraction : float in (0, 1) or None, default=None
        Hold out this fraction of X to record ``valid_loss`` (for
        :class:`skorch.callbacks.EarlyStopping`); None trains on all of X.
    n_jobs : int or None, default=None
        Candidate fits (the ``n_init`` restarts, times both renderers where
        ``"auto"`` fits both) trained at once, in worker processes that share
        torch's threads out among them; 1 fits them one after another in this
        process, -1 uses every CPU. None: the ``n_jobs`` of a
        :func:`joblib.parallel_config` around ``fit``, else as many as torch
        has threads (``torch.get_num_threads()``), so the fit keeps to the
        cores that one torch fit would use. Candidates run in turn on a GPU,
        and for data read on demand or in-memory arrays over 1 GiB. The
        thread count changes floating-point rounding, so results are
        reproducible for one ``n_jobs`` and machine.
    device : str or torch.device, default="cpu"
        Where to train and infer ("cpu", "cuda", "cuda:1", …).
    callbacks : list of skorch callbacks or None, default=None
        E.g. ``[ProgressBar()]``; copied before use. A ``(name, callback)``
        pair under a default's name (``"lr_plateau"``, ``"gradient_clipping"``,
        ``"divergence"``, ``"plateau_stopping"``) replaces that default.
    random_state : int, RandomState instance or None, default=None
        Seeds initialization, shuffling and every random draw of ``fit``; the
        same int on CPU gives the same result. None draws a seed from NumPy's
        global generator, as scikit-learn does.
    verbose : int, default=0
        Print skorch's epoch log and a search progress bar when > 0.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted net; ``net_.module_.encoder`` is the encoder.
    target_mean_, target_scale_ : ndarray of shape (K, m)
        Standardization of the supervised targets (``"supervised"`` only).
    concept_categories_ : dict or None
        The encoding of a concept table ``y`` fixed at fit (``"supervised"``
        only): column -> its categories (one-hot encoded), or None for a
        continuous column; None when ``y`` was an array. ``score`` encodes
        its ``y`` the same way and raises on a category not seen at fit.
    encoder_ : torch.nn.Module
        The fitted slot encoder: inputs (n, ...) to slots (n, n_slots, slot_dim).
    decoder_ : torch.nn.Module or None
        The fitted unconstrained decoder (``"autoencoder"``); None for
        ``"supervised"``, which trains no decoder.
    n_slots_ : int
        Number of inferred slots.
    slot_dim_ : int
        Dimension of each inferred slot.
    n_iter_ : int
        Epochs run by the kept fit.
    loss_curve_ : list of float
        Its training loss per epoch.
    converged_ : bool
        Whether it stopped on a loss plateau before the epoch cap.
    init_losses_ : ndarray of shape (n_init,)
        Final training loss of every initialization.
    best_init_ : int
        Index of the kept initialization.
    renderer_ : str or None
        The renderer that draws the slots (``"mlp"``, ``"conv"`` or
        ``"broadcast"``): the one ``decoder_params`` names, or the one that
        ``"auto"`` kept (:ref:`decoder-renderers`); None where no renderer is
        trained (``objective="supervised"``).
    renderer_losses_ : dict or None
        Where ``"auto"`` fitted both renderers (images, no renderer options),
        each one's final training loss in the kept initialization (``inf``
        for a renderer whose fit diverged); None otherwise.
    data_mean_ : ndarray of the shape of one sample
        Mean of X; with ``data_scale_``, the standardization that the
        networks work in.
    data_scale_ : float
        Root mean squared deviation of X from ``data_mean_``.
    input_shape_ : tuple
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    GenerativeInverter : Inverts a decoder instead.

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

    _parameter_constraints: dict = {
        **SlotEstimatorBase._parameter_constraints,
        **SlotEstimatorBase._training_constraints,
        **SlotEstimatorBase._fit_control_constraints,
        "objective": [StrOptions({"autoencoder", "supervised"})],
        "decoder_params": [dict, None],
    }

    def __init__(
        self,
        *,
        n_slots=2,
        slot_dim=4,
        objective="autoencoder",
        decoder_params=None,
        encoder="auto",
        encoder_params=None,
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
        self.decoder_params = decoder_params
        self.encoder = encoder
        self.encoder_params = encoder_params
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
            ``objective="supervised"``, ignored otherwise.

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

    def _new_net(self):
        """A fresh, unfitted net for the fitted input shape (and targets)."""
        shape = self.input_shape_
        encoder = self._build_encoder(shape, self.n_slots, self.slot_dim)
        if self.objective == "supervised":
            module = SlotRegressor(encoder, self.target_mean_.shape[1])
            return self._make_net(module, max_epochs=self.max_epochs)
        decoder = self._build_decoder("mlp", shape)
        return self._make_net(
            SlotAutoencoder(encoder, decoder),
            net_class=SlotAutoencoderNet,
            max_epochs=self.max_epochs,
            reconstruction_scale=self.data_scale_,
        )

    def _decoder_name(self):
        return "mlp" if self.objective == "autoencoder" else None

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

    def _encoder(self):
        return self.net_.module_.encoder

    def _decoder(self):
        if not self._has_decoder():
            raise ValueError("objective='supervised' trains no decoder.")
        return self.net_.module_.decoder

    def _has_decoder(self):
        return self.objective == "autoencoder"

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
        X = self._validate_X(X, reset=False)
        targets = self._standardize_targets(X, y, reset=False)
        predictions = self._map_array(self.net_.module_, X, targets.shape[1:])
        n = len(targets)
        # In float64: float32 sums would give constant columns a spurious variance.
        return r2_score(
            targets.reshape(n, -1).astype(np.float64),
            predictions.reshape(n, -1).astype(np.float64),
            sample_weight=sample_weight,
            multioutput="variance_weighted",
        )
