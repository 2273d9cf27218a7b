"""Data scaling inside the modules, so that networks see standardized values.

Images of objects on a white or black background are far from zero mean and have
a small spread; a network fed them raw starts far from anything useful, and an
autoencoder first spends many epochs learning the mean image. The estimators
therefore wrap every encoder in :class:`Standardize` and every decoder in
:class:`RescaledDecoder`, with the training data's per-feature mean and one
overall scale: the networks work on standardized values, the modules take and
return data in its own units.
"""

from __future__ import annotations

import torch
from torch import nn


def _buffer(value):
    return torch.as_tensor(value, dtype=torch.float32).clone()


class Standardize(nn.Module):
    """``(x - mean) / scale``, the first layer of an encoder.

    Parameters
    ----------
    mean : array-like of the shape of one sample
        Per-feature mean subtracted from the inputs.
    scale : float > 0
        Divides the centered inputs (one overall scale for all features).
    """

    def __init__(self, mean, scale):
        super().__init__()
        self.register_buffer("mean", _buffer(mean))
        self.register_buffer("scale", _buffer(scale))

    def forward(self, x):
        return (x - self.mean) / self.scale


class RescaledDecoder(nn.Module):
    """A decoder of standardized values that returns data units.

    Its output is ``mean + scale * decoder(z)``.
    Per-slot renderings (where ``decoder`` has them) are
    ``mean / K + scale * decoder.render_slots(z)``, so that they still sum to
    the output for additive decoders.

    Parameters
    ----------
    decoder : nn.Module
        Maps slots (n, K, d) to standardized outputs.
    mean : array-like of the shape of one output
        Per-feature mean added to the scaled decoder output.
    scale : float > 0
        Multiplies the decoder output (one overall scale for all features).
    """

    def __init__(self, decoder, mean, scale):
        super().__init__()
        self.decoder = decoder
        self.register_buffer("mean", _buffer(mean))
        self.register_buffer("scale", _buffer(scale))

    @property
    def has_slot_renderings(self):
        """Whether the wrapped decoder renders each slot apart."""
        return hasattr(self.decoder, "render_slots")

    def forward(self, z):
        return self.mean + self.scale * self.decoder(z)

    def standardize(self, x):
        """Data in the wrapped decoder's units, ``(x - mean) / scale``."""
        return (x - self.mean) / self.scale

    def forward_with_penalty(self, z):
        """Output and the wrapped decoder's interaction penalty (or None)."""
        if hasattr(self.decoder, "forward_with_penalty"):
            out, penalty = self.decoder.forward_with_penalty(z)
        else:
            out, penalty = self.decoder(z), None
        return self.mean + self.scale * out, penalty

    def render_slots(self, z):
        """Each slot's share of the output, ``(n, K, *output_shape)``."""
        if not self.has_slot_renderings:
            raise AttributeError(
                f"{type(self.decoder).__name__} mixes slots and has no per-slot "
                "renderings."
            )
        return self.mean / z.shape[1] + self.scale * self.decoder.render_slots(z)
