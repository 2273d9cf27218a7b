"""The slot estimators: scikit-learn transformers that own skorch nets."""

from ._persistence import load, save
from .baseline import EncoderBaseline
from .generative import GenerativeInverter
from .replay import ReplayEncoder

__all__ = ["EncoderBaseline", "GenerativeInverter", "ReplayEncoder", "load", "save"]
