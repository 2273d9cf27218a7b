"""Encoder-decoder pairs trained by the estimators."""

from __future__ import annotations

import torch
from torch import nn

from .encoders import gaussian_kl


class SlotAutoencoder(nn.Module):
    """A slot encoder and a decoder, trained by autoencoding.

    The objective is Eq. :eq:`eq-autoencoding`.

    ``forward`` returns a dict of the terms a loss may need: ``reconstruction``,
    ``slots`` (the posterior means), ``kl`` per sample when the encoder has a VAE
    head (the decoder then sees a reparameterized sample while training), and
    ``interaction`` per sample when the decoder defines an interaction penalty.

    Parameters
    ----------
    encoder : SlotEncoder
        Maps inputs to slots; its ``distribution`` gives the posterior means and
        log-variances (None without a VAE head).
    decoder : nn.Module
        Maps slots (n, K, d) to reconstructions of the inputs. A
        ``forward_with_penalty`` method, if it has one, also gives the
        interaction penalty.
    """

    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def decode(self, z):
        """Decoder output, and its interaction penalty (None if undefined)."""
        if hasattr(self.decoder, "forward_with_penalty"):
            return self.decoder.forward_with_penalty(z)
        return self.decoder(z), None

    def forward(self, x):
        mean, log_var = self.encoder.distribution(x)
        terms = {"slots": mean}
        z = mean
        if log_var is not None:
            terms["kl"] = gaussian_kl(mean, log_var)
            if self.training:
                z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        terms["reconstruction"], penalty = self.decode(z)
        if penalty is not None:
            terms["interaction"] = penalty
        return terms


class SlotRegressor(nn.Module):
    """A slot encoder with a per-slot linear readout of ground-truth latents.

    Slot ``k`` of the encoder predicts the latents of true slot ``k``: the readout
    is a linear map per slot from ``slot_dim`` to ``n_targets``.

    Parameters
    ----------
    encoder : SlotEncoder
        Maps inputs to slots (n, K, d); its ``n_slots`` and ``slot_dim`` size the
        readout.
    n_targets : int
        Latents per true slot.
    """

    def __init__(self, encoder, n_targets):
        super().__init__()
        self.encoder = encoder
        self.readout = nn.ModuleList(
            nn.Linear(encoder.slot_dim, n_targets) for _ in range(encoder.n_slots)
        )

    def forward(self, x):
        slots = self.encoder(x)
        return torch.stack([r(slots[:, k]) for k, r in enumerate(self.readout)], dim=1)
