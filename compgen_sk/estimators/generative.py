"""GenerativeInverter: perceive by inverting a decoder with the right inductive bias."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

from sklearn.utils.validation import check_is_fitted

from .._sklearn_compat import Interval, StrOptions, _fit_context
from ..modules import DECODERS, SlotAutoencoder
from ._base import SlotEstimatorBase, _positive_int
from ._nets import SlotAutoencoderNet

# interaction_weight="auto" (opt-in): the overlap penalty on the broadcast renderer,
# weighed in the first epochs only (measured on two and three balls: user guide,
# "Two slots on one object").
_AUTO_OVERLAP_WEIGHT = 0.1
_AUTO_OVERLAP_EPOCHS = 15


def recombination_for(decoder):
    """How to recombine a decoder's slots into new scenes (consistency, replay).

    ``"pool"`` draws every slot from all slots when one renderer draws every
    slot (``shared``: objects of one kind, whose slot order means nothing),
    else ``"shuffle"`` keeps each slot at its position.
    """
    inner = getattr(decoder, "decoder", decoder)  # inside a RescaledDecoder
    shared = getattr(getattr(inner, "slots", None), "shared", False)
    return "pool" if shared else "shuffle"


class GenerativeInverter(SlotEstimatorBase):
    """Slot autoencoder whose representation inverts the decoder by search.

    ``fit`` trains a slot encoder and a decoder by autoencoding (Eq.
    :eq:`eq-autoencoding`); the decoder carries the inductive bias (slots that interact
    in a limited way) that lets it render combinations never seen in training.
    ``transform`` takes the encoder's guess and refines it by batched gradient search on
    the frozen decoder, ``argmin_z ||x - f(z)||^2`` (Eq. :eq:`eq-search`): the encoder
    may fail on out-of-domain combinations, the decoder need not.

    Parameters
    ----------
    n_slots : int, default=2
        Number of slots K.
    slot_dim : int, default=4
        Dimension of each slot.
    decoder : {"additive", "masked", "transformer", "mlp"}, default="additive"
        Decoder class (:ref:`background-decoder-classes`): slots summed, composited by
        softmax masks, mixed by cross-attention with an interaction penalty, or an
        unconstrained MLP on the concatenated slots (no inductive bias).
    decoder_params : dict or None, default=None
        Decoder options, e.g. ``{"renderer": "conv", "channels": 32}`` or
        ``{"shared": True}`` for additive/masked decoders, ``{"embed_dim": 64,
        "n_layers": 2}`` for the transformer, ``{"hidden": (256, 256)}``. The
        additive, masked and mlp decoders draw with a ``renderer``: by default
        (``"auto"``) vectors with ``"mlp"``, and images with the one of
        ``"mlp"`` and ``"broadcast"`` whose fit ends with the lower training
        loss (both are fitted, at the cost of both; :ref:`decoder-renderers`);
        renderer options such as ``hidden`` without a ``renderer`` are the MLP
        renderer's.
    encoder : {"auto", "cnn", "mlp"} or torch.nn.Module, default="auto"
        Encoder backbone: "auto" picks a CNN for images (n, C, H, W) and an MLP
        for vectors; a module maps inputs to features (n, F) and gets a linear
        slot head (it is copied, never trained in place).
    encoder_params : dict or None, default=None
        Options of the named backbone (``channels``, ``n_layers``, ``hidden``).
    vae : bool, default=False
        Give the encoder a Gaussian posterior and add ``beta`` times its KL
        divergence to N(0, I) (per feature) to the loss.
    beta : float >= 0, default=1.0
        Weight of the KL term when ``vae=True``.
    interaction_weight : float >= 0 or "auto", default=0.0
        Weight of the decoder's penalty on output elements that depend on
        several slots: the transformer decoder's interaction penalty
        (:ref:`background-decoder-classes`), or the additive decoder's overlap
        of the slots' renderings (:func:`~compgen_sk.modules.overlap_penalty`;
        :ref:`decoder-overlap`), recorded in ``net_.history``
        (``train_interaction``); the masked and mlp decoders have none (a
        weight above 0 warns). ``"auto"``: 0.1 in the first 15 epochs where the
        additive decoder draws with the broadcast renderer, which it keeps from
        binding two slots to one object, and 0 otherwise: for objects of
        different kinds that move about (it hurts objects of one kind and content
        at fixed places). It is part of the training loss that
        ``renderer="auto"``, ``n_init`` and the stopping rule compare.
    interaction_epochs : int >= 1 or None, default=None
        Epochs that weigh the interaction penalty, counted from the first;
        after them its weight is 0 and the training loss is the reconstruction
        error alone. None weighs it in every epoch, except for
        ``interaction_weight="auto"``, whose penalty weighs the first 15. An
        early penalty can break a bad start (two slots on one object) and then
        leave the fit free: :ref:`decoder-overlap`.
    consistency_weight : float >= 0, default=0.0
        Weight of the compositional-consistency loss (Wiedemer et al. 2024):
        recombined slots are decoded, re-encoded and matched; only the encoder
        gets its gradient. Slots keep their positions, or are drawn from all
        slots when one renderer draws every slot (``shared``, the masked
        decoder's default).
    consistency_warmup : int >= 0, default=10
        Epochs of plain autoencoding before the consistency loss starts.
    search_steps : int >= 0, default=100
        Adam steps of the search in ``transform``; 0 uses the encoder alone.
    search_lr : float > 0, default=0.05
        Step size of the search.
    search_batch_size : int, default=256
        Images searched together; bounds the memory of ``transform``.
    search_tol : float >= 0, default=1e-5
        An image stops searching once its loss changes by less than this
        fraction in one step; 0 always runs ``search_steps``.
    search_restarts : int >= 1, default=1
        Starts of the search per image: the encoder's guess, and
        ``search_restarts - 1`` recombinations of it with slots of training
        images (``start_slots_``, :func:`~compgen_sk.inversion.search_starts`);
        each image keeps its best reconstruction. Costs ``search_restarts``
        searches, and as many times the memory of one batch.
    max_epochs : int, default=80
        Training epochs.
    n_init : int, default=1
        Trainings from different initializations; the one with the lowest
        final training loss is kept (``best_init_``), as in
        :class:`~sklearn.cluster.KMeans`. Costs ``n_init`` fits (each of both
        renderers where ``"auto"`` fits both).
    tol : float >= 0 or None, default=1e-4
        Training stops once the training loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs (``max_epochs`` is a cap); the learning rate
        halves after 4 such epochs. The training loss is the fraction of the
        data's variance left unexplained, 1 - R². None trains all ``max_epochs``
        epochs.
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
        E.g. ``[ProgressBar()]`` or ``[EarlyStopping(patience=5)]``; copied
        before use.
    random_state : int, RandomState instance or None, default=None
        Seeds initialization, shuffling, VAE sampling and recombination; the same
        int on CPU gives the same result. Torch's global generators are never
        touched; None draws a seed from NumPy's global generator, as
        scikit-learn does.
    verbose : int, default=0
        Print skorch's epoch log and a search progress bar when > 0.

    Attributes
    ----------
    net_ : SlotAutoencoderNet
        The fitted skorch net; ``net_.module_.encoder`` and ``net_.module_.decoder``
        are the torch modules, ``net_.history`` records every loss term.
    encoder_ : torch.nn.Module
        The fitted slot encoder: inputs (n, ...) to slots (n, n_slots, slot_dim).
    decoder_ : torch.nn.Module or None
        The fitted decoder (a :class:`~compgen_sk.modules.RescaledDecoder`
        in data units) that ``inverse_transform`` and search use.
    n_slots_ : int
        Number of inferred slots.
    slot_dim_ : int
        Dimension of each inferred slot.
    start_slots_ : ndarray of shape (n_bank, n_slots, slot_dim)
        The encoder's slots of up to 64 training images, evenly spaced: what
        multi-start search (``search_restarts``) recombines guesses with.
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
        trained (the transformer decoder).
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
        Shape of one sample of X.
    n_features_in_ : int
        Number of input features (pixels times channels for images).
    feature_names_in_ : ndarray of str
        Column names of X, when X was a DataFrame.

    See Also
    --------
    EncoderBaseline : The non-generative reference (an encoder only).
    ReplayEncoder : An encoder trained on the decoder's recombined renderings.

    Examples
    --------
    >>> from compgen_sk import GenerativeInverter
    >>> from compgen_sk.datasets import make_additive
    >>> X, _ = make_additive(200, n_slots=2, return_X_y=True, random_state=0)
    >>> inverter = GenerativeInverter(n_slots=2, slot_dim=2, max_epochs=5,
    ...                               search_steps=20, random_state=0)
    >>> inverter.fit_transform(X).shape
    (200, 4)
    >>> inverter.get_feature_names_out()[:3].tolist()
    ['slot0_0', 'slot0_1', 'slot1_0']
    """

    _parameter_constraints: dict = {
        **SlotEstimatorBase._parameter_constraints,
        **SlotEstimatorBase._search_constraints,
        **SlotEstimatorBase._training_constraints,
        **SlotEstimatorBase._fit_control_constraints,
        "decoder": [StrOptions(set(DECODERS))],
        "decoder_params": [dict, None],
        "vae": ["boolean"],
        "beta": [Interval(Real, 0, None, closed="left")],
        "interaction_weight": [
            Interval(Real, 0, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "interaction_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "consistency_weight": [Interval(Real, 0, None, closed="left")],
        "consistency_warmup": _positive_int(0),
    }

    def __init__(
        self,
        *,
        n_slots=2,
        slot_dim=4,
        decoder="additive",
        decoder_params=None,
        encoder="auto",
        encoder_params=None,
        vae=False,
        beta=1.0,
        interaction_weight=0.0,
        interaction_epochs=None,
        consistency_weight=0.0,
        consistency_warmup=10,
        search_steps=100,
        search_lr=0.05,
        search_batch_size=256,
        search_tol=1e-5,
        search_restarts=1,
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
        self.decoder = decoder
        self.decoder_params = decoder_params
        self.encoder = encoder
        self.encoder_params = encoder_params
        self.vae = vae
        self.beta = beta
        self.interaction_weight = interaction_weight
        self.interaction_epochs = interaction_epochs
        self.consistency_weight = consistency_weight
        self.consistency_warmup = consistency_warmup
        self.search_steps = search_steps
        self.search_lr = search_lr
        self.search_batch_size = search_batch_size
        self.search_tol = search_tol
        self.search_restarts = search_restarts
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
        """Train encoder and decoder by autoencoding X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            In-domain training data.
            May be uint8 images (0-255 pixels, scaled to [0, 1]) or a disk-backed
            :class:`numpy.memmap`: X is read a batch at a time, never copied whole.
        y : None
            Ignored.

        Returns
        -------
        self : GenerativeInverter
        """
        has_penalty = self.decoder in ("additive", "transformer")
        if not has_penalty and self.interaction_weight not in (0, "auto"):
            warnings.warn(
                f"interaction_weight={self.interaction_weight!r} has no effect "
                f"with decoder={self.decoder!r}: only the additive and "
                "transformer decoders define a penalty.",
                UserWarning,
                stacklevel=2,
            )
        return self._fit(X)

    def _new_net(self):
        """A fresh, unfitted net for the fitted input shape and data scale."""
        shape = self.input_shape_
        encoder = self._build_encoder(shape, self.n_slots, self.slot_dim, vae=self.vae)
        weight, epochs = self._interaction()
        # The additive decoder's overlap penalty is computed only when weighed.
        overlap = self.decoder == "additive" and weight > 0
        decoder = self._build_decoder(
            self.decoder, shape, **({"overlap": True} if overlap else {})
        )
        return self._make_net(
            SlotAutoencoder(encoder, decoder),
            net_class=SlotAutoencoderNet,
            max_epochs=self.max_epochs,
            reconstruction_scale=self.data_scale_,
            beta=self.beta,
            interaction_weight=weight,
            interaction_epochs=epochs,
            consistency_weight=self.consistency_weight,
            consistency_warmup=self.consistency_warmup,
            recombination=recombination_for(decoder),
        )

    def _interaction(self):
        """The interaction penalty's weight and epochs for the renderer that
        ``_new_net`` builds (``renderer_``), ``"auto"`` resolved."""
        weight, epochs = self.interaction_weight, self.interaction_epochs
        if weight != "auto":
            return float(weight), epochs
        if self.decoder == "additive" and self.renderer_ == "broadcast":
            return (
                _AUTO_OVERLAP_WEIGHT,
                _AUTO_OVERLAP_EPOCHS if epochs is None else epochs,
            )
        return 0.0, None

    def _decoder_name(self):
        return self.decoder

    def _encoder(self):
        return self.net_.module_.encoder

    def _decoder(self):
        return self.net_.module_.decoder

    def encode(self, X):
        """The encoder's guess alone (no search).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Images or vectors, in the layout of the data fitted on.

        Returns
        -------
        slots : ndarray of shape (n_samples, n_slots * slot_dim), float32
        """
        check_is_fitted(self)
        return self._flat(self._encode_array(self._validate_X(X, reset=False)))

    def render_slots(self, Z):
        """Each slot's contribution to the rendering, where the decoder defines it.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_slots * slot_dim) or \
(n_samples, n_slots, slot_dim)
            Slots, flat or one row per slot.

        Returns
        -------
        renderings : ndarray of shape ``(n_samples, n_slots, *input_shape_)``
            For the additive and masked decoders these sum to
            ``inverse_transform(Z)``.
        """
        check_is_fitted(self)
        decoder = self._decoder()
        if not decoder.has_slot_renderings:
            raise ValueError(
                f"decoder={self.decoder!r} mixes slots and has no per-slot renderings; "
                "use 'additive' or 'masked'."
            )
        Z = self._validate_slots(Z)
        return self._check_rendering(self._decode_array(decoder, Z, per_slot=True), Z)
