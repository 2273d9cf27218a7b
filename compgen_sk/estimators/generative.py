"""GenerativeInverter: perceive by inverting a decoder with the right inductive bias."""

from __future__ import annotations

from numbers import Integral, Real

from sklearn.utils.validation import check_is_fitted

from .._sklearn_compat import Interval, StrOptions, _fit_context
from ..decoders import BaseDecoder, check_decoder
from ..modules import SlotAutoencoder
from ._base import SlotEstimatorBase, _with_threads, share_docs
from ._data import check_X
from ._inference import decode, encode_slots
from ._nets import LossWeight, SlotAutoencoderNet
from ._training import make_net


@share_docs
class GenerativeInverter(SlotEstimatorBase):
    """Slot autoencoder whose representation inverts the decoder by search.

    ``fit`` trains a slot encoder and a decoder by autoencoding (Eq.
    :eq:`eq-autoencoding`); the decoder carries the inductive bias (slots that
    interact in a limited way) that lets it render combinations never seen in
    training. ``transform`` takes the encoder's guess and refines it by
    batched gradient search on the frozen decoder, ``argmin_z ||x - f(z)||^2``
    (Eq. :eq:`eq-search`): the encoder may fail on out-of-domain combinations,
    the decoder need not.

    Parameters
    ----------
    n_slots : int, default=2
        Number of slots K.
    slot_dim : int, default=4
        Dimension of each slot.
    decoder : {"additive", "masked", "transformer", "mlp"} or decoder, \
default="additive"
        The decoder (:mod:`compgen_sk.decoders`; :ref:`background-decoder-classes`):
        slots summed (:class:`~compgen_sk.AdditiveDecoder`), composited by
        softmax masks (:class:`~compgen_sk.MaskedDecoder`), mixed by
        cross-attention (:class:`~compgen_sk.TransformerDecoder`), or an
        unconstrained MLP on the concatenated slots
        (:class:`~compgen_sk.MLPDecoder`, no inductive bias). A string stands
        for that decoder at its defaults; an object carries its options
        (renderer, shared renderer, penalty), which are then nested
        parameters (``decoder__renderer``).
    encoder : {"auto", "cnn", "mlp"}, encoder or torch.nn.Module, default="auto"
        The encoder's backbone (:mod:`compgen_sk.encoders`): ``"auto"`` is a
        :class:`~compgen_sk.ConvEncoder` for images (n, C, H, W) and an
        :class:`~compgen_sk.MLPEncoder` for vectors; a torch module maps
        inputs to features (n, F) and gets a linear slot head (it is copied,
        never trained in place).
    kl_weight : float >= 0 or None, default=None
        None: a deterministic encoder. A number: the encoder gives a Gaussian
        posterior (a VAE) and the loss adds ``kl_weight`` times its KL
        divergence from N(0, I), per input feature.
    consistency_weight : float >= 0, default=0.0
        Weight of the compositional-consistency loss (Wiedemer et al. 2024):
        recombined slots are decoded, re-encoded and matched; only the
        encoder gets its gradient. Recombined slots keep their positions, or
        are drawn from all slots where the decoder's slots are exchangeable
        (a shared renderer).
    consistency_warmup : int >= 0, default=10
        Epochs of plain autoencoding before the consistency loss starts.
    search : "gradient", GradientSearch or None, default="gradient"
        How ``transform`` refines the encoder's guess:
        :class:`~compgen_sk.GradientSearch` (``"gradient"``: at its
        defaults, 100 Adam steps); None uses the encoder alone. It may be
        changed after ``fit`` without refitting.
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
    decoder_ : torch.nn.Module
        The fitted decoder (a :class:`~compgen_sk.modules.RescaledDecoder`
        in data units) that ``inverse_transform`` and search use.
    {{renderer}}
    recombination_ : {"shuffle", "pool"}
        How consistency (and a :class:`ReplayEncoder` of this generator)
        recombine slots: slot k from the k-th slots, or every slot from all
        slots where the decoder's slots are exchangeable.
    start_slots_ : ndarray of shape (n_bank, n_slots, slot_dim)
        The encoder's slots of up to 64 training images, evenly spaced: what
        search restarts recombine guesses with.

    See Also
    --------
    EncoderBaseline : The non-generative reference (an encoder only).
    ReplayEncoder : An encoder trained on the decoder's recombined renderings.

    Notes
    -----
    {{convergence}}

    Examples
    --------
    >>> from compgen_sk import GenerativeInverter
    >>> from compgen_sk.datasets import make_additive
    >>> X, _ = make_additive(200, n_slots=2, return_X_y=True, random_state=0)
    >>> inverter = GenerativeInverter(n_slots=2, slot_dim=2, max_epochs=5,
    ...                               random_state=0)
    >>> inverter.fit_transform(X).shape
    (200, 4)
    >>> inverter.get_feature_names_out()[:3].tolist()
    ['slot0_0', 'slot0_1', 'slot1_0']
    """

    _searches = True
    _trains_decoder = True

    _parameter_constraints: dict = {
        **SlotEstimatorBase._parameter_constraints,
        **SlotEstimatorBase._slot_constraints,
        **SlotEstimatorBase._search_constraints,
        "decoder": [
            StrOptions({"additive", "masked", "transformer", "mlp"}),
            BaseDecoder,
        ],
        "kl_weight": [Interval(Real, 0, None, closed="left"), None],
        "consistency_weight": [Interval(Real, 0, None, closed="left")],
        "consistency_warmup": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        n_slots=2,
        slot_dim=4,
        decoder="additive",
        encoder="auto",
        kl_weight=None,
        consistency_weight=0.0,
        consistency_warmup=10,
        search="gradient",
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
        self.encoder = encoder
        self.kl_weight = kl_weight
        self.consistency_weight = consistency_weight
        self.consistency_warmup = consistency_warmup
        self.search = search
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
            Ignored (a y of another length than X raises).

        Returns
        -------
        self : GenerativeInverter
        """
        self._fit(X, y)
        exchangeable = self._fitted_candidate().exchangeable_slots
        self.recombination_ = "pool" if exchangeable else "shuffle"
        return self

    def _candidates(self):
        return check_decoder(self.decoder).candidates(self.input_shape_)

    def _new_net(self, candidate):
        """A fresh, unfitted net for the decoder ``candidate``."""
        encoder = self._build_encoder(
            self.n_slots, self.slot_dim, vae=self.kl_weight is not None
        )
        decoder = self._build_decoder(candidate)
        schedules = []
        weight, epochs = candidate.penalty()
        if weight:
            schedules.append(
                ("interaction_weight", LossWeight("interaction", weight, last=epochs))
            )
        if self.consistency_weight:
            consistency = LossWeight(
                "consistency",
                self.consistency_weight,
                first=self.consistency_warmup + 1,
            )
            schedules.append(("consistency_weight", consistency))
        return make_net(
            self,
            SlotAutoencoder(encoder, decoder),
            net_class=SlotAutoencoderNet,
            schedules=schedules,
            reconstruction_scale=self.data_scale_,
            kl_weight=self.kl_weight or 0.0,
            recombination="pool" if candidate.exchangeable_slots else "shuffle",
        )

    def _set_fitted_modules(self):
        self.encoder_ = self.net_.module_.encoder
        self.decoder_ = self.net_.module_.decoder
        self._set_slot_shape()

    @_with_threads
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
        X = check_X(self, X, reset=False)
        slots = encode_slots(self.encoder_, X, self._inference_device())
        return slots.reshape(len(slots), -1)

    @_with_threads
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
        if not self.decoder_.has_slot_renderings:
            raise ValueError(
                f"{type(self.decoder_.decoder).__name__} mixes slots and has no "
                "per-slot renderings; use an additive or masked decoder."
            )
        Z = self._validate_slots(Z)
        X = decode(
            self.decoder_, Z, self.input_shape_, self._inference_device(), per_slot=True
        )
        return self._check_rendering(X, Z)
