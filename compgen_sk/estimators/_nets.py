"""skorch nets and callbacks of the estimators' training.

The loss terms are those of :ref:`background-inversion`.
"""

from __future__ import annotations

import math

import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping
from skorch.utils import to_tensor

from ..inversion import consistency_loss, matched_slot_mse


class InterruptibleNet(NeuralNet):
    """skorch's :class:`~skorch.NeuralNet`, but an interrupt (Ctrl-C) is
    remembered (``interrupted_``) instead of being swallowed mid-epoch, so
    that the estimator can re-raise it once skorch has ended training.

    skorch's :class:`~skorch.callbacks.EarlyStopping` ends training with a
    ``KeyboardInterrupt`` too; that one, raised when its patience has run
    out, is a stop (``stopped_``), not an interrupt."""

    def fit_loop(self, X, y=None, **fit_params):
        self.interrupted_ = self.stopped_ = False
        try:
            return super().fit_loop(X, y, **fit_params)
        except KeyboardInterrupt:
            self.stopped_ = any(
                isinstance(cb, EarlyStopping) and cb.misses_ >= cb.patience
                for _, cb in self.callbacks_
            )
            self.interrupted_ = not self.stopped_
            raise


class SlotAutoencoderNet(InterruptibleNet):
    """Trains a :class:`~compgen_sk.modules.SlotAutoencoder`; only ``get_loss``
    differs from skorch's :class:`~skorch.NeuralNet`.

    The loss is the reconstruction error (per-element mean squared error,
    Eq. :eq:`eq-autoencoding`, of errors divided by ``reconstruction_scale``:
    with the data's root mean square deviation there, it is the fraction of
    variance left unexplained, 1 - R², and stays finite for data of any
    magnitude), plus ``kl_weight`` times the KL term per feature when the
    encoder has a VAE head, plus the weighted terms of ``loss_weights_``: the
    decoder's ``interaction`` penalty, and ``consistency``, the
    compositional-consistency loss (computed only while weighed, in
    training). :class:`LossWeight` callbacks set those weights epoch by
    epoch. Each term is recorded per batch in the history
    (``train_reconstruction`` …).

    Parameters
    ----------
    reconstruction_scale : float, default=1.0
        Divides the reconstruction errors before they are squared.
    kl_weight : float, default=0.0
        Weight of the KL term.
    recombination : {"shuffle", "pool"}, default="shuffle"
        How the consistency loss recombines slots.
    """

    def __init__(
        self,
        *args,
        reconstruction_scale=1.0,
        kl_weight=0.0,
        recombination="shuffle",
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.reconstruction_scale = reconstruction_scale
        self.kl_weight = kl_weight
        self.recombination = recombination
        self.loss_weights_ = {}

    def get_loss(self, y_pred, y_true, X=None, training=False):
        x = to_tensor(X, device=self.device)
        prefix = "train_" if training else "valid_"
        error = (y_pred["reconstruction"] - x) / self.reconstruction_scale
        terms = {"reconstruction": (1.0, error.pow(2).mean())}
        if "kl" in y_pred:
            n_features = math.prod(x.shape[1:])
            terms["kl"] = (self.kl_weight, y_pred["kl"].mean() / n_features)
        if "interaction" in y_pred:
            weight = self.loss_weights_.get("interaction", 0.0)
            terms["interaction"] = (weight, y_pred["interaction"].mean())
        weight = self.loss_weights_.get("consistency", 0.0)
        if training and weight:
            module = self.module_
            terms["consistency"] = (
                weight,
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


class LossWeight(Callback):
    """Weigh the loss term ``term`` of a :class:`SlotAutoencoderNet` by
    ``weight`` in the epochs ``first`` to ``last`` (counted from 1; None: to
    the end) and by 0 in the others: a warm-up that starts a term late, or a
    penalty that weighs the first epochs only.

    Parameters
    ----------
    term : {"interaction", "consistency"}
        The loss term.
    weight : float
        Its weight while active.
    first : int, default=1
        First epoch that weighs it.
    last : int or None, default=None
        Last epoch that weighs it; None: every epoch from ``first`` on.
    """

    def __init__(self, term, weight, first=1, last=None):
        self.term = term
        self.weight = weight
        self.first = first
        self.last = last

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history)  # the epoch in progress, counted from 1
        active = epoch >= self.first and (self.last is None or epoch <= self.last)
        net.loss_weights_[self.term] = self.weight if active else 0.0


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


class MatchedSlotLoss(torch.nn.Module):
    """Slot-order-invariant mean squared error (criterion for replay with a pool)."""

    def forward(self, pred, target):
        return matched_slot_mse(pred, target)
