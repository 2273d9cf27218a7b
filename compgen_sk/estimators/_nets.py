"""skorch nets whose loss composes the terms of :ref:`background-inversion`."""

from __future__ import annotations

import math

import torch
from skorch import NeuralNet
from skorch.callbacks import Callback
from skorch.utils import to_tensor
from torch import nn

from ..inversion import consistency_loss, matched_slot_mse


class SlotAutoencoderNet(NeuralNet):
    """Trains a :class:`~compgen_sk.modules.SlotAutoencoder`; only ``get_loss``
    differs from skorch's :class:`~skorch.NeuralNet`.

    The loss is the reconstruction error (per-element mean squared error,
    Eq. :eq:`eq-autoencoding`, of errors divided by ``reconstruction_scale``: with the
    data's root mean square deviation there, it is the fraction of variance left
    unexplained, 1 - R², and stays finite for data of any magnitude), plus ``beta``
    times the KL term per feature when the encoder has a VAE head, plus
    ``interaction_weight`` times the decoder's interaction penalty where it
    defines one (in the first ``interaction_epochs`` epochs, or all), plus —
    during training, after ``consistency_warmup`` epochs — ``consistency_weight``
    times the compositional-consistency loss.
    Each term is recorded per batch in the history (``train_reconstruction`` …).

    Parameters
    ----------
    reconstruction_scale : float, default=1.0
        Divides the reconstruction errors before they are squared.
    beta, interaction_weight, consistency_weight : float
    interaction_epochs : int or None
        Epochs that weigh the interaction penalty; None: all.
    consistency_warmup : int
        Epochs before the consistency loss starts.
    recombination : {"shuffle", "pool"}
        How the consistency loss recombines slots.
    """

    def __init__(
        self,
        *args,
        reconstruction_scale=1.0,
        beta=1.0,
        interaction_weight=0.0,
        interaction_epochs=None,
        consistency_weight=0.0,
        consistency_warmup=0,
        recombination="shuffle",
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.reconstruction_scale = reconstruction_scale
        self.beta = beta
        self.interaction_weight = interaction_weight
        self.interaction_epochs = interaction_epochs
        self.consistency_weight = consistency_weight
        self.consistency_warmup = consistency_warmup
        self.recombination = recombination

    def get_loss(self, y_pred, y_true, X=None, training=False):
        x = to_tensor(X, device=self.device)
        prefix = "train_" if training else "valid_"
        error = (y_pred["reconstruction"] - x) / self.reconstruction_scale
        reconstruction = error.pow(2).mean()
        terms = {"reconstruction": (1.0, reconstruction)}
        if "kl" in y_pred:
            n_features = math.prod(x.shape[1:])
            terms["kl"] = (self.beta, y_pred["kl"].mean() / n_features)
        if "interaction" in y_pred:
            weight = self.interaction_weight
            if self.interaction_epochs is not None and (
                len(self.history) > self.interaction_epochs
            ):
                weight = 0.0
            terms["interaction"] = (weight, y_pred["interaction"].mean())
        # len(history) is the number of the epoch in progress, counted from 1.
        if (
            training
            and self.consistency_weight
            and len(self.history) > self.consistency_warmup
        ):
            module = self.module_
            terms["consistency"] = (
                self.consistency_weight,
                consistency_loss(
                    module.encoder, module.decoder, y_pred["slots"], self.recombination
                ),
            )
        loss = 0.0
        for name, (weight, value) in terms.items():
            # A detached tensor: turned into a float once per epoch
            # (on_epoch_end), not once per batch, which would sync a GPU.
            self.history.record_batch(prefix + name, value.detach())
            if weight:
                loss = loss + weight * value
        return loss

    def on_epoch_end(self, net, **kwargs):
        """Turn the epoch's recorded loss terms into floats, with one
        device-to-host copy for the whole epoch."""
        batches = self.history[-1, "batches"]
        cells = [
            (batch, key)
            for batch in batches
            for key, value in batch.items()
            if isinstance(value, torch.Tensor)
        ]
        if cells:
            values = torch.stack([batch[key] for batch, key in cells]).tolist()
            for (batch, key), value in zip(cells, values):
                batch[key] = value
        super().on_epoch_end(net, **kwargs)


class DivergenceError(FloatingPointError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch):
        super().__init__(f"non-finite training loss in epoch {epoch}")
        self.epoch = epoch

    def __reduce__(self):  # sent back from worker processes
        return type(self), (self.epoch,)


class StopOnNonFiniteLoss(Callback):
    """Stop training at the end of the first epoch whose loss, or whose
    weights after the epoch's last step, are not finite."""

    def on_epoch_end(self, net, **kwargs):
        if not math.isfinite(net.history[-1, "train_loss"]):
            raise DivergenceError(len(net.history))
        finite = [p.isfinite().all() for p in net.module_.parameters()]
        if finite and not bool(torch.stack(finite).all()):  # one sync per epoch
            raise DivergenceError(len(net.history))


class MatchedSlotLoss(nn.Module):
    """Slot-order-invariant mean squared error (criterion for replay with a pool)."""

    def forward(self, pred, target):
        return matched_slot_mse(pred, target)
