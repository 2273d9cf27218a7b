"""ReplayEncoder: an encoder trained on a decoder's renderings of recombined slots."""

from __future__ import annotations

import copy
from numbers import Integral

import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .._sklearn_compat import Interval, StrOptions, _fit_context
from ..inversion import ReplayStream
from ._base import SlotEstimatorBase, _positive_int
from ._loaders import StreamLoader
from ._nets import MatchedSlotLoss
from .generative import GenerativeInverter, recombination_for


def _is_fitted(estimator):
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


class ReplayEncoder(SlotEstimatorBase):
    """Generative replay: train an encoder on recombined slots the decoder renders.

    ``fit`` takes a generator (a :class:`GenerativeInverter`, fitted or not),
    infers the in-domain slots of X with its encoder, and trains a new encoder
    on pairs ``(f(z~), z~)`` where the slots of ``z~`` are drawn independently
    from the per-slot marginals of the inferred slots (or from all inferred
    slots, for a generator whose slots share one renderer: ``sampler``) —
    mostly combinations never seen in X — and ``f`` is the frozen decoder
    (Eq. :eq:`eq-replay`).
    Every epoch renders fresh pairs. Inference is one forward pass, optionally
    refined by search on the generator's decoder.

    The slots' number and size are the generator's.

    Parameters
    ----------
    generator : GenerativeInverter, FrozenEstimator or None, default=None
        A fitted generator is used as is (never refitted); an unfitted one is
        cloned and fitted on X; None fits ``GenerativeInverter(n_jobs=n_jobs,
        device=device, random_state=random_state)`` at its defaults.
        :func:`~sklearn.base.clone`, and so cross-validation, unfits a fitted
        generator, which every clone then fits again; to keep one fitted
        generator through them, wrap it:
        ``ReplayEncoder(FrozenEstimator(generator))``
        (:class:`~sklearn.frozen.FrozenEstimator`); a generator fitted on all
        of X has then seen every test fold. To tune
        the generator, pass an unfitted :class:`GenerativeInverter`: its
        parameters are then nested ones (``generator__max_epochs`` and the
        like) for ``set_params`` and
        :class:`~sklearn.model_selection.GridSearchCV`.
    n_replay : int or None, default=None
        Replayed pairs per epoch; None uses the number of samples in X.
    replay_epochs : int, default=30
        Epochs of replay training.
    n_init : int, default=1
        Trainings from different initializations; the one with the lowest
        final training loss is kept (``best_init_``), as in
        :class:`~sklearn.cluster.KMeans`. Costs ``n_init`` fits.
    tol : float >= 0 or None, default=1e-4
        Training stops once the training loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs (``replay_epochs`` is a cap); the learning
        rate halves after 4 such epochs. The training loss is the mean squared
        error of the predicted slots. None trains all ``replay_epochs`` epochs.
    n_iter_no_change : int, default=10
        Epochs without a ``tol`` improvement that stop training.
    sampler : {"auto", "shuffle", "pool"}, default="auto"
        ``"shuffle"`` draws slot k from the k-th inferred slots; ``"pool"`` from
        all inferred slots, for a decoder shared across slots (the loss then
        matches slots before comparing). ``"auto"`` pools when the generator
        draws every slot with one shared renderer (``decoder_params={"shared":
        True}``, the masked decoder's default: objects of one kind, whose slot
        order means nothing), else shuffles.
    warm_start_encoder : bool, default=False
        Start from a copy of the generator's encoder instead of a fresh one.
    encoder : {"auto", "cnn", "mlp"} or torch.nn.Module, default="auto"
        Backbone of a fresh encoder.
    encoder_params : dict or None, default=None
        Options of the named backbone (``channels``, ``n_layers``, ``hidden``).
    search_steps : int >= 0, default=0
        Search steps on the generator's decoder after the encoder pass.
    search_lr : float, default=0.05
        Step size of the search.
    search_batch_size : int, default=256
        Images searched together; bounds the memory of ``transform``.
    search_tol : float, default=1e-5
        An image stops searching once its loss changes by less than this
        fraction in one step; 0 always runs ``search_steps``.
    search_restarts : int >= 1, default=1
        Starts of the search per image: the encoder's guess, and
        ``search_restarts - 1`` recombinations of it with slots of training
        images (``start_slots_``, :func:`~compgen_sk.inversion.search_starts`);
        each image keeps its best reconstruction. Costs ``search_restarts``
        searches, and as many times the memory of one batch.
    batch_size : int, default=64
        Samples per training step.
    lr : float, default=1e-3
        Learning rate of training.
    optimizer : {"adamw", "adam", "sgd", "rmsprop"} or torch optimizer class, \
default="adamw"
    optimizer_params : dict or None, default=None
        Extra optimizer arguments, e.g. ``{"weight_decay": 1e-4}``.
    n_jobs : int or None, default=None
        Candidate fits of the default generator (``generator=None``) trained
        at once, as :class:`GenerativeInverter`'s ``n_jobs``. The replay
        encoder's own restarts run one after another: the images they train
        on are rendered in this process.
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
    generator_ : GenerativeInverter
        The fitted generator.
    net_ : skorch.NeuralNet
        The replay-trained encoder's net; ``net_.module_`` is the encoder.
    encoder_ : torch.nn.Module
        The fitted slot encoder: inputs (n, ...) to slots (n, n_slots, slot_dim).
    decoder_ : torch.nn.Module or None
        The generator's decoder, which search and ``inverse_transform`` use.
    n_slots_ : int
        Number of inferred slots.
    slot_dim_ : int
        Dimension of each inferred slot.
    sampler_ : {"shuffle", "pool"}
        The recombination that the replayed images were rendered from.
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
    GenerativeInverter : Inverts the decoder online by search instead.

    Examples
    --------
    >>> from compgen_sk import GenerativeInverter, ReplayEncoder
    >>> from compgen_sk.datasets import make_additive
    >>> X, _ = make_additive(200, n_slots=2, return_X_y=True, random_state=0)
    >>> generator = GenerativeInverter(n_slots=2, slot_dim=2, max_epochs=5,
    ...                                random_state=0).fit(X)
    >>> replay = ReplayEncoder(generator, replay_epochs=3, random_state=0).fit(X)
    >>> replay.transform(X).shape
    (200, 4)
    """

    _max_epochs_param = "replay_epochs"

    _parameter_constraints: dict = {
        **SlotEstimatorBase._parameter_constraints,
        **SlotEstimatorBase._search_constraints,
        **SlotEstimatorBase._fit_control_constraints,
        "generator": [GenerativeInverter, FrozenEstimator, None],
        "n_replay": [Interval(Integral, 1, None, closed="left"), None],
        "replay_epochs": _positive_int(),
        "sampler": [StrOptions({"auto", "shuffle", "pool"})],
        "warm_start_encoder": ["boolean"],
    }

    def __init__(
        self,
        generator=None,
        *,
        n_replay=None,
        replay_epochs=30,
        n_init=1,
        tol=1e-4,
        n_iter_no_change=10,
        sampler="auto",
        warm_start_encoder=False,
        encoder="auto",
        encoder_params=None,
        search_steps=0,
        search_lr=0.05,
        search_batch_size=256,
        search_tol=1e-5,
        search_restarts=1,
        batch_size=64,
        lr=1e-3,
        optimizer="adamw",
        optimizer_params=None,
        n_jobs=None,
        device="cpu",
        callbacks=None,
        random_state=None,
        verbose=0,
    ):
        self.generator = generator
        self.n_replay = n_replay
        self.replay_epochs = replay_epochs
        self.n_init = n_init
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.sampler = sampler
        self.warm_start_encoder = warm_start_encoder
        self.encoder = encoder
        self.encoder_params = encoder_params
        self.search_steps = search_steps
        self.search_lr = search_lr
        self.search_batch_size = search_batch_size
        self.search_tol = search_tol
        self.search_restarts = search_restarts
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.optimizer_params = optimizer_params
        self.n_jobs = n_jobs
        self.device = device
        self.callbacks = callbacks
        self.random_state = random_state
        self.verbose = verbose

    def _fitted_generator(self, X):
        if isinstance(self.generator, FrozenEstimator):
            generator = self.generator.estimator
            if not isinstance(generator, GenerativeInverter):
                raise ValueError(
                    "A FrozenEstimator generator must wrap a GenerativeInverter; "
                    f"got {type(generator).__name__}."
                )
            if not _is_fitted(generator):
                raise NotFittedError(
                    "The GenerativeInverter inside the FrozenEstimator generator "
                    "is not fitted; fit it first, or pass it unwrapped to have "
                    "it fitted on X."
                )
        else:
            generator = self.generator
        if generator is not None and _is_fitted(generator):
            if generator.input_shape_ != X.shape[1:]:
                raise ValueError(
                    f"The fitted generator expects samples of shape "
                    f"{generator.input_shape_}, but X has samples of shape "
                    f"{X.shape[1:]}."
                )
            return generator
        if self.generator is None:
            generator = GenerativeInverter(
                n_jobs=self.n_jobs, device=self.device, random_state=self.random_state
            )
        else:
            generator = clone(self.generator)
        return generator.fit(X)

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit (or take) the generator, then train the encoder on replayed pairs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            In-domain data.
            May be uint8 images (0-255 pixels, scaled to [0, 1]) or a disk-backed
            :class:`numpy.memmap`: X is read a batch at a time, never copied whole.
        y : None
            Ignored.

        Returns
        -------
        self : ReplayEncoder
        """
        return self._fit(X)

    def _training_data(self, X, y):
        """Fit or take the generator; the training data is a stream of its
        renderings of recombined inferred slots (fresh in every epoch)."""
        self.generator_ = self._fitted_generator(X)
        source = self.generator_._decoder()
        self.sampler_ = (
            recombination_for(source) if self.sampler == "auto" else self.sampler
        )
        bank = self.generator_._encode_array(X)
        device = self._device()
        decoder = copy.deepcopy(source).to(device).eval().requires_grad_(False)
        # The stream renders fresh pairs from torch's generators, which every
        # restart seeds anew.
        stream = ReplayStream(
            decoder,
            torch.as_tensor(bank, device=device),
            self.n_replay or len(X),
            self.sampler_,
        )
        return stream, None

    def _new_net(self):
        """A fresh, unfitted net: an encoder with the generator's slot shape
        (or a copy of the generator's encoder)."""
        source = self.generator_._encoder()
        if self.warm_start_encoder:
            encoder = copy.deepcopy(source)
        else:
            encoder = self._build_encoder(
                self.input_shape_, source.n_slots, source.slot_dim
            )
        # Files saved before "auto" existed hold only ``sampler``.
        sampler = getattr(self, "sampler_", self.sampler)
        return self._make_net(
            encoder,
            criterion=MatchedSlotLoss if sampler == "pool" else nn.MSELoss,
            max_epochs=self.replay_epochs,
            iterator_train=StreamLoader,
            train_split=None,
        )

    def _encoder(self):
        return self.net_.module_

    def _decoder(self):
        """The generator's decoder, on the device this estimator infers on."""
        decoder = self.generator_._decoder()
        device = self._inference_device()
        if next(decoder.parameters()).device != device:
            decoder = copy.deepcopy(decoder).to(device)
        return decoder
