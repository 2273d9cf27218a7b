"""Torch modules: slot encoders, decoders and their pairings.

Plain :class:`torch.nn.Module` classes that know nothing of scikit-learn; the
estimators in :mod:`compgen_sk.estimators` build and train them through skorch.
"""

from .autoencoder import SlotAutoencoder, SlotRegressor
from .decoders import (
    DECODERS,
    RENDERER_DECODERS,
    RENDERERS,
    AdditiveDecoder,
    BroadcastRenderer,
    ConvRenderer,
    MaskedDecoder,
    MLPDecoder,
    MLPRenderer,
    TransformerDecoder,
    interaction_penalty,
    make_decoder,
    overlap_penalty,
)
from .encoders import (
    ConvBackbone,
    MLPBackbone,
    SlotEncoder,
    gaussian_kl,
    infer_out_features,
    make_backbone,
)
from .scaling import RescaledDecoder, Standardize

__all__ = [
    "DECODERS",
    "RENDERERS",
    "RENDERER_DECODERS",
    "AdditiveDecoder",
    "BroadcastRenderer",
    "ConvBackbone",
    "ConvRenderer",
    "MLPBackbone",
    "MLPDecoder",
    "MLPRenderer",
    "MaskedDecoder",
    "RescaledDecoder",
    "SlotAutoencoder",
    "SlotEncoder",
    "SlotRegressor",
    "Standardize",
    "TransformerDecoder",
    "gaussian_kl",
    "infer_out_features",
    "interaction_penalty",
    "make_backbone",
    "make_decoder",
    "overlap_penalty",
]
