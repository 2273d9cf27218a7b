"""Search: the encoder's guess refined by gradient descent on the frozen decoder."""

from __future__ import annotations

from numbers import Integral, Real

import torch
from sklearn.base import BaseEstimator

from ._sklearn_compat import Interval, StrOptions, validate_parameter_constraints
from .inversion import search_latents, search_starts

__all__ = ["GradientSearch", "check_search"]


class GradientSearch(BaseEstimator):
    """Batched gradient search ``argmin_z ||x - f(z)||^2`` from the encoder's guess.

    The online inversion of :ref:`background-inversion` (Eq. :eq:`eq-search`):
    Adam on the slots of a batch of images at once, with the decoder frozen;
    each image's trajectory is what it would be alone, and each keeps the best
    slots it met, so search never ends worse than its start. The estimators
    that search (:class:`~compgen_sk.GenerativeInverter`,
    :class:`~compgen_sk.ReplayEncoder`) take it as their ``search`` parameter,
    which may be changed after ``fit`` (``set_params(search=...)``) without
    refitting.

    Parameters
    ----------
    steps : int >= 0, default=100
        Adam steps per image at most; 0 keeps the encoder's guess.
    lr : float > 0, default=0.05
        Step size of the search.
    tol : float >= 0, default=1e-5
        An image stops once its loss changes by less than this fraction in one
        step; 0 always runs ``steps``.
    restarts : int >= 1, default=1
        Starts per image: the encoder's guess, and ``restarts - 1``
        recombinations of it with slots of training images
        (:func:`~compgen_sk.inversion.search_starts`); each image keeps its
        best reconstruction. Costs ``restarts`` searches, and as many times
        the memory of one batch.
    batch_size : int >= 1, default=256
        Images searched together; bounds the memory of ``transform``.

    Examples
    --------
    >>> from compgen_sk import GenerativeInverter, GradientSearch
    >>> from compgen_sk.datasets import make_additive
    >>> X, _ = make_additive(200, n_slots=2, return_X_y=True, random_state=0)
    >>> model = GenerativeInverter(n_slots=2, slot_dim=2, max_epochs=3,
    ...                            search=GradientSearch(steps=20),
    ...                            random_state=0).fit(X)
    >>> longer = model.set_params(search=GradientSearch(steps=50)).transform(X)
    >>> longer.shape
    (200, 4)
    """

    _parameter_constraints: dict = {
        "steps": [Interval(Integral, 0, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "restarts": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, *, steps=100, lr=0.05, tol=1e-5, restarts=1, batch_size=256):
        self.steps = steps
        self.lr = lr
        self.tol = tol
        self.restarts = restarts
        self.batch_size = batch_size

    def refine(self, decoder, target, z, bank=None):
        """Search from the guesses ``z`` for the slots that render ``target``.

        Parameters
        ----------
        decoder : callable
            Maps slots (n, K, d) to outputs shaped like ``target``; frozen.
        target : Tensor of shape (n, ...)
            The images (in the decoder's units).
        z : Tensor of shape (n, K, d)
            The encoder's guesses.
        bank : Tensor of shape (B, K, d) or None, default=None
            Slots of training images that restarts recombine the guesses
            with; needed when ``restarts > 1``.

        Returns
        -------
        z : Tensor of shape (n, K, d)
            The best slots found per image.
        """
        if self.steps == 0:
            return z
        starts = (
            z[None] if self.restarts == 1 else search_starts(z, self.restarts, bank)
        )
        repeated = target.repeat(self.restarts, *([1] * (target.dim() - 1)))
        found, loss, _ = search_latents(
            decoder,
            repeated,
            starts.flatten(0, 1),
            steps=self.steps,
            lr=self.lr,
            tol=self.tol,
        )
        if self.restarts == 1:
            return found
        best = loss.view(self.restarts, len(z)).argmin(dim=0)
        found = found.view(self.restarts, *z.shape)
        return found[best, torch.arange(len(z), device=z.device)]


def check_search(search, caller_name="the estimator"):
    """The validated search that ``search`` stands for.

    Parameters
    ----------
    search : "gradient", GradientSearch or None
        None (the encoder alone), ``"gradient"`` (:class:`GradientSearch` at
        its defaults) or a :class:`GradientSearch`.
    caller_name : str, default="the estimator"
        Whose ``search`` parameter an error names.

    Returns
    -------
    search : GradientSearch or None
    """
    validate_parameter_constraints(
        {"search": [StrOptions({"gradient"}), GradientSearch, None]},
        {"search": search},
        caller_name=caller_name,
    )
    if search is None:
        return None
    if isinstance(search, str):
        search = GradientSearch()
    search._validate_params()
    return search
