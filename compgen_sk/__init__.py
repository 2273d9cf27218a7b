"""compgen-sk: compositional generalization through generative inversion.

scikit-learn estimators that perceive images (or vectors) as slots by inverting a
decoder with the right inductive bias — online by gradient search, offline by
generative replay — next to the non-generative encoder baseline, with datasets that
know their in-domain / out-of-domain split and tools to score generalization to
held-out slot combinations.
"""

__version__ = "0.1.0"

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

__all__ = [
    "EncoderBaseline",
    "GenerativeInverter",
    "HeldOutCombinations",
    "ReplayEncoder",
    "SlotProbe",
    "__version__",
    "load",
    "save",
    "train_test_split_combinations",
]
