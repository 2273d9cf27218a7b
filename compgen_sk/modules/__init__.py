"""Torch modules: slot encoders, decoders and their pairings.

Plain :class:`torch.nn.Module` classes that know nothing of scikit-learn; the
estimators in :mod:`compgen_sk.estimators` build them from the specifications
in :mod:`compgen_sk.decoders` and :mod:`compgen_sk.encoders` and train them
through skorch.
"""

from .autoencoder import SlotAutoencoder, SlotRegressor
from .decoders import (
    RENDERERS,
    AdditiveDecoderModule,
    BroadcastRenderer,
    ConvRenderer,
    MaskedDecoderModule,
    MLPDecoderModule,
    MLPRenderer,
    TransformerDecoderModule,
    interaction_penalty,
    make_renderer,
    overlap_penalty,
)
from .encoders import (
    ConvBackbone,
    MLPBackbone,
    SlotEncoder,
    gaussian_kl,
)
from .scaling import RescaledDecoder, Standardize

__all__ = [
    "RENDERERS",
    "AdditiveDecoderModule",
    "BroadcastRenderer",
    "ConvBackbone",
    "ConvRenderer",
    "MLPBackbone",
    "MLPDecoderModule",
    "MLPRenderer",
    "MaskedDecoderModule",
    "RescaledDecoder",
    "SlotAutoencoder",
    "SlotEncoder",
    "SlotRegressor",
    "Standardize",
    "TransformerDecoderModule",
    "gaussian_kl",
    "interaction_penalty",
    "make_renderer",
    "overlap_penalty",
]
