"""compgen-sk: compositional generalization through generative inversion.

scikit-learn estimators that perceive images (or vectors) as slots by inverting a
decoder with the right inductive bias — online by gradient search, offline by
generative replay — next to the non-generative encoder baseline, with datasets that
know their in-domain / out-of-domain split and tools to score generalization to
held-out slot combinations.
"""

from ._version import __version__
from .decoders import AdditiveDecoder, MaskedDecoder, MLPDecoder, TransformerDecoder
from .encoders import ConvEncoder, MLPEncoder
from .estimators import (
    EncoderBaseline,
    GenerativeInverter,
    ReplayEncoder,
    load,
    save,
)
from .model_selection import (
    HeldOutCombinations,
    train_test_split_combinations,
)
from .probe import SlotProbe
from .search import GradientSearch

__all__ = [
    "AdditiveDecoder",
    "ConvEncoder",
    "EncoderBaseline",
    "GenerativeInverter",
    "GradientSearch",
    "HeldOutCombinations",
    "MLPDecoder",
    "MLPEncoder",
    "MaskedDecoder",
    "ReplayEncoder",
    "SlotProbe",
    "TransformerDecoder",
    "__version__",
    "load",
    "save",
    "train_test_split_combinations",
]
