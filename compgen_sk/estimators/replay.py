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

from .._sklearn_compat import Interval, _fit_context
from .._torch import resolve_device
from ..inversion import ReplayStream
from ._base import SlotEstimatorBase, share_docs
from ._inference import on_device
from ._loaders import StreamLoader
from ._nets import MatchedSlotLoss
from ._training import make_net
from .generative import GenerativeInverter


def _is_fitted(estimator):
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


@share_docs
class ReplayEncoder(SlotEstimatorBase):
    """Generative replay: train an encoder on recombined slots the decoder renders.

    ``fit`` takes a generator (a :class:`GenerativeInverter`, fitted or not),
    infers the in-domain slots of X with its encoder, and trains a new encoder
    on pairs ``(f(z~), z~)`` where the slots of ``z~`` are drawn independently
    from the per-slot marginals of the inferred slots (or from all inferred
    slots where the generator's slots are exchangeable, its
    ``recombination_``) — mostly combinations never seen in X — and ``f`` is
    the frozen decoder (Eq. :eq:`eq-replay`).
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
        of X has then seen every test fold. To tune the generator, pass an
        unfitted :class:`GenerativeInverter`: its parameters are then nested
        ones (``generator__max_epochs`` and the like).
    n_replay : int or None, default=None
        Replayed pairs per epoch; None uses the number of samples in X.
    warm_start_encoder : bool, default=False
        Start from a copy of the generator's encoder instead of a fresh one.
    encoder : {"auto", "cnn", "mlp"}, encoder or torch.nn.Module, default="auto"
        Backbone of a fresh encoder, as in :class:`GenerativeInverter`.
    search : "gradient", GradientSearch or None, default=None
        Refine the encoder's guess by search on the generator's decoder
        (:class:`~compgen_sk.GradientSearch`; ``"gradient"``: at its
        defaults); None uses the encoder alone. It may be changed after
        ``fit`` without refitting.
    max_epochs : int, default=30
        Cap on the training epochs (training stops earlier on a plateau, see
        ``tol``).
    {{training}}
    {{runtime}}

    Attributes
    ----------
    generator_ : GenerativeInverter
        The fitted generator.
    {{fitted}}
    decoder_ : torch.nn.Module
        The generator's decoder, which search and ``inverse_transform`` use.
    recombination_ : {"shuffle", "pool"}
        How the replayed slots were recombined (the generator's
        ``recombination_``); with ``"pool"`` the loss matches predicted to
        replayed slots before comparing them.
    start_slots_ : ndarray of shape (n_bank, n_slots, slot_dim)
        The encoder's slots of up to 64 training images, evenly spaced: what
        search restarts recombine guesses with.

    See Also
    --------
    GenerativeInverter : Inverts the decoder online by search instead.

    Notes
    -----
    The slots' number and size are the generator's. Every epoch renders
    fresh pairs, so the replay encoder's own fits run in this process, one
    after another.

    {{convergence}}

    Examples
    --------
    >>> from compgen_sk import GenerativeInverter, ReplayEncoder
    >>> from compgen_sk.datasets import make_additive
    >>> X, _ = make_additive(200, n_slots=2, return_X_y=True, random_state=0)
    >>> generator = GenerativeInverter(n_slots=2, slot_dim=2, max_epochs=5,
    ...                                random_state=0).fit(X)
    >>> replay = ReplayEncoder(generator, max_epochs=3, random_state=0).fit(X)
    >>> replay.transform(X).shape
    (200, 4)
    """

    _searches = True

    _parameter_constraints: dict = {
        **SlotEstimatorBase._parameter_constraints,
        **SlotEstimatorBase._search_constraints,
        "generator": [GenerativeInverter, FrozenEstimator, None],
        "n_replay": [Interval(Integral, 1, None, closed="left"), None],
        "warm_start_encoder": ["boolean"],
    }

    def __init__(
        self,
        generator=None,
        *,
        n_replay=None,
        warm_start_encoder=False,
        encoder="auto",
        search=None,
        max_epochs=30,
        n_init=1,
        tol=1e-4,
        n_iter_no_change=10,
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
        self.warm_start_encoder = warm_start_encoder
        self.encoder = encoder
        self.search = search
        self.max_epochs = max_epochs
        self.n_init = n_init
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
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
            Ignored (a y of another length than X raises).

        Returns
        -------
        self : ReplayEncoder
        """
        return self._fit(X, y)

    def _training_data(self, X, y):
        """Fit or take the generator; the training data is a stream of its
        renderings of recombined inferred slots (fresh in every epoch)."""
        generator = self.generator_ = self._fitted_generator(X)
        self.recombination_ = generator.recombination_
        shape = (len(X), generator.n_slots_, generator.slot_dim_)
        bank = generator.encode(X).reshape(shape)
        device = resolve_device(self.device)
        decoder = copy.deepcopy(generator.decoder_).to(device)
        # The stream renders fresh pairs from torch's generators, which every
        # restart seeds anew.
        stream = ReplayStream(
            decoder.eval().requires_grad_(False),
            torch.as_tensor(bank, device=device),
            self.n_replay or len(X),
            self.recombination_,
        )
        return stream, None

    def _new_net(self, candidate):
        """A fresh, unfitted net: an encoder with the generator's slot shape
        (or a copy of the generator's encoder)."""
        generator = self.generator_
        if self.warm_start_encoder:
            encoder = copy.deepcopy(generator.encoder_)
        else:
            encoder = self._build_encoder(generator.n_slots_, generator.slot_dim_)
        pool = self.recombination_ == "pool"
        return make_net(
            self,
            encoder,
            criterion=MatchedSlotLoss if pool else nn.MSELoss,
            iterator_train=StreamLoader,
            train_split=None,
        )

    def _set_fitted_modules(self):
        self.encoder_ = self.net_.module_
        self.decoder_ = on_device(self.generator_.decoder_, self._inference_device())
        self._set_slot_shape()
