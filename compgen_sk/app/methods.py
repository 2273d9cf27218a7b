"""The methods a comparison trains, as a registry: each is a description and a
function that fits it for a :class:`~compgen_sk.app.compare.Comparison`.

The generative methods share one fitted :class:`~compgen_sk.GenerativeInverter`
(``generative-encoder`` and ``generative-search`` are it without and with search;
``replay`` and ``replay-search`` replay it).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from ..decoders import AdditiveDecoder, MaskedDecoder, MLPDecoder
from ..estimators import EncoderBaseline, GenerativeInverter, ReplayEncoder
from ..search import GradientSearch

#: The renderer of every decoder a comparison trains: the one its published
#: tables were measured with (on content at fixed places, such as digits in
#: cells, it is the one that the candidates ``"auto"`` fits would keep).
RENDERER = "mlp"
#: The generator for objects in front of a background (data whose Bunch says
#: ``background_slot``): slot 0 draws the background over the whole frame,
#: slot 1 the object with a mask over it, in a VAE (the decoder guide's
#: occlusion recipe). Without it every slot holds the background. The KL
#: weight keeps the object's slot and mask small enough to leave the
#: background out of them. Whether a fit separates the two depends on its
#: initialization, and the fits that separate them reach the lower loss, so
#: three initializations are fitted and the lowest loss kept.
OCCLUSION = {
    "decoder": MaskedDecoder("conv", background="mlp"),
    "kl_weight": 0.5,
    "n_init": 3,
}


@dataclass(frozen=True)
class Method:
    """A method of the comparison: what it is, and how it is fitted.

    ``fit(comparison)`` returns the fitted estimator and the seconds its fit
    took (with the fits it builds on).
    """

    description: str
    fit: Callable


def with_search(estimator, search):
    """A shallow copy of a fitted estimator with another ``search``.

    The copy shares the fitted networks; ``estimator`` is left as it is.

    Parameters
    ----------
    estimator : GenerativeInverter or ReplayEncoder
        A fitted estimator that searches.
    search : GradientSearch or None
        The copy's search (None: the encoder alone).

    Returns
    -------
    copy : GenerativeInverter or ReplayEncoder
    """
    return copy.copy(estimator).set_params(search=search)


def _search(comparison):
    return GradientSearch(steps=comparison.settings.search_steps)


def _autoencoder(c):
    return c.fit("encoder-autoencoder", EncoderBaseline(decoder=MLPDecoder(RENDERER)))


def _supervised(c):
    estimator = EncoderBaseline(objective="supervised")
    return c.fit("encoder-supervised", estimator, c.split.y_train)


def _mlp_decoder(c):
    estimator = GenerativeInverter(decoder=MLPDecoder(RENDERER), search=_search(c))
    return c.fit("generative-mlp", estimator)


def generator(c):
    """The GenerativeInverter that the generative and replay methods share:
    an additive decoder; for objects of one kind (exchangeable slots) one
    renderer shared by the slots and compositional consistency after a third
    of the epochs, as Wiedemer et al. train theirs; for an object in front of
    a background (a background slot), :data:`OCCLUSION`."""
    s = c.settings
    if c.split.background:
        params = copy.deepcopy(OCCLUSION)
    else:
        params = {"decoder": AdditiveDecoder(RENDERER, shared=c.split.exchangeable)}
        if c.split.exchangeable:
            params.update(consistency_weight=1.0, consistency_warmup=s.epochs // 3)
    estimator = GenerativeInverter(**{**params, **s.generator_params})
    return c.fit("generator", estimator)


def _generative(search):
    def fit(c):
        estimator, seconds = generator(c)
        return with_search(estimator, _search(c) if search else None), seconds

    return fit


def _replay(search):
    def fit(c):
        fitted, generator_seconds = generator(c)
        estimator, seconds = c.fit("replay", ReplayEncoder(fitted))
        seconds += generator_seconds
        return with_search(estimator, _search(c) if search else None), seconds

    return fit


#: The methods a comparison can train, by key: their description and fit.
METHODS = {
    "encoder-autoencoder": Method("EncoderBaseline (autoencoder)", _autoencoder),
    "encoder-supervised": Method("EncoderBaseline (supervised)", _supervised),
    "generative-mlp": Method("GenerativeInverter, MLP decoder + search", _mlp_decoder),
    "generative-encoder": Method(
        "GenerativeInverter, encoder only", _generative(search=False)
    ),
    "generative-search": Method("GenerativeInverter + search", _generative(True)),
    "replay": Method("ReplayEncoder", _replay(search=False)),
    "replay-search": Method("ReplayEncoder + search", _replay(search=True)),
}
