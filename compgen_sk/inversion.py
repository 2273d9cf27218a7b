"""Inverting a decoder: gradient search, slot recombination, replay.

See :ref:`background-inversion`.

Plain torch functions on modules; the estimators call them, and so can anyone
holding a decoder.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import IterableDataset

from ._assignment import best_assignment

__all__ = [
    "ReplayStream",
    "consistency_loss",
    "matched_slot_mse",
    "recombine_slots",
    "sample_recombinations",
    "search_latents",
    "search_starts",
]

_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8
# Pairs rendered together when a ReplayStream is iterated pair by pair.
_STREAM_BATCH = 256


def _per_sample_sse(decoder, z, x):
    return (decoder(z) - x).pow(2).flatten(1).sum(dim=1)


def search_latents(decoder, x, z_init, *, steps, lr, tol=0.0):
    """Batched gradient search ``z* = argmin_z ||x - f(z)||^2`` (Eq. :eq:`eq-search`).

    Starts from ``z_init`` (the encoder's guess) with the decoder frozen. The
    per-image losses are summed, and Adam's element-wise update keeps every image's
    trajectory exactly what it would be alone. An image stops once the relative
    change of its loss falls below ``tol`` and leaves the batch, so converged
    images cost nothing more. Each image gets the best latents seen, so search
    never ends worse than its start.

    Parameters
    ----------
    decoder : callable
        Maps (n, K, d) to outputs shaped like ``x``; its parameters are not updated.
    x : Tensor of shape (n, ...)
        Targets to invert, shaped like the decoder's outputs.
    z_init : Tensor of shape (n, K, d)
        Starting latents, e.g. the encoder's slots; left unchanged.
    steps : int
        Gradient steps (0 returns ``z_init``).
    lr : float
        Adam step size.
    tol : float, default=0.0
        Per-image relative loss change that ends its search; 0 runs every step.

    Returns
    -------
    z : Tensor of shape (n, K, d)
        Best latents found per image.
    loss : Tensor of shape (n,)
        Their squared reconstruction errors.
    n_steps : Tensor of shape (n,)
        Gradient steps each image took.
    """
    n = z_init.shape[0]
    device = z_init.device
    best_z = z_init.detach().clone()
    n_steps = torch.zeros(n, dtype=torch.long, device=device)
    if steps == 0 or n == 0:
        with torch.no_grad():
            return best_z, _per_sample_sse(decoder, best_z, x), n_steps

    # The active batch shrinks as images converge; `rows` maps it to the output.
    rows = torch.arange(n, device=device)
    best_loss = torch.full((n,), math.inf, device=device)
    previous = torch.full((n,), math.inf, device=device)
    z, xa = best_z.clone(), x
    m, v = torch.zeros_like(z), torch.zeros_like(z)
    beta1, beta2 = _ADAM_BETAS
    for step in range(1, steps + 1):
        z.requires_grad_(True)
        with torch.enable_grad():
            loss = _per_sample_sse(decoder, z, xa)
            (grad,) = torch.autograd.grad(loss.sum(), z)
        z, loss = z.detach(), loss.detach()
        improved = loss < best_loss[rows]
        best_loss[rows] = torch.where(improved, loss, best_loss[rows])
        best_z[rows] = torch.where(improved[:, None, None], z, best_z[rows])

        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
        z.addcdiv_(m, v.sqrt().add_(_ADAM_EPS), value=-step_size)
        n_steps[rows] += 1

        if tol > 0 and step > 1:
            change = (previous[rows] - loss).abs() / previous[rows].clamp_min(1e-12)
            keep = change >= tol
            if not bool(keep.all()):
                done = ~keep
                _record_final(decoder, z[done], xa[done], rows[done], best_z, best_loss)
                if not bool(keep.any()):
                    return best_z, best_loss, n_steps
                rows, z, xa, m, v, loss = (
                    rows[keep],
                    z[keep],
                    xa[keep],
                    m[keep],
                    v[keep],
                    loss[keep],
                )
        previous[rows] = loss
    _record_final(decoder, z, xa, rows, best_z, best_loss)
    return best_z, best_loss, n_steps


def search_starts(z, n_starts, bank):
    """Starting points of a multi-start search: ``z`` and recombinations of it.

    A wrong binding in the encoder's guess (a feature of one object in the slot
    of the other, an object missed) is a local minimum that gradient search
    cannot leave. Start 0 is the guess itself; start ``j >= 1`` replaces a
    subset of its slots (the ``j``-th non-empty subset, cycling) by the same
    slots of ``bank[j - 1]`` (cycling), e.g. the encoder's slots of a training
    image. The starts of an image depend on that image and ``bank`` only, not
    on the other images searched with it.

    Parameters
    ----------
    z : Tensor of shape (n, K, d)
        The guesses, e.g. the encoder's slots for a batch.
    n_starts : int
        Starts per image, the guess included.
    bank : Tensor of shape (B, K, d)
        Slots that replacements are taken from.

    Returns
    -------
    starts : Tensor of shape (n_starts, n, K, d)
    """
    n_slots = z.shape[1]
    bank = bank.to(device=z.device, dtype=z.dtype)
    starts = [z]
    for j in range(1, n_starts):
        subset = (j - 1) % (2**n_slots - 1) + 1
        replace = torch.tensor(
            [bool(subset >> k & 1) for k in range(n_slots)], device=z.device
        )
        donor = bank[(j - 1) % len(bank)]
        starts.append(torch.where(replace[None, :, None], donor[None], z))
    return torch.stack(starts)


def _record_final(decoder, z, x, rows, best_z, best_loss):
    """Score the latents after the last update and keep them where they are best."""
    with torch.no_grad():
        loss = _per_sample_sse(decoder, z, x)
    improved = loss < best_loss[rows]
    best_loss[rows] = torch.where(improved, loss, best_loss[rows])
    best_z[rows] = torch.where(improved[:, None, None], z, best_z[rows])


def matched_slot_mse(pred, target):
    """Mean squared error after matching predicted to target slots per sample.

    For every sample the slot permutation with the lowest error is used
    (:func:`~compgen_sk._assignment.best_assignment`), so the loss does not
    depend on slot order; the gradient flows through the matched errors.

    Parameters
    ----------
    pred : Tensor of shape (n, K, d)
        Predicted slots.
    target : Tensor of shape (n, K, d)
        Target slots, matched to the predicted ones sample by sample.

    Returns
    -------
    loss : Tensor (scalar)
        Mean over samples and slots of the per-element squared error of
        matched slots.
    """
    cost = (pred[:, :, None] - target[:, None]).pow(2).mean(dim=-1)  # (n, K, K)
    assignment = best_assignment(cost.detach().cpu().numpy())  # (n, K)
    index = torch.as_tensor(assignment, device=pred.device)
    return cost.gather(1, index[:, None, :]).mean()


def recombine_slots(slots, mode="shuffle", generator=None):
    """New slot combinations from a batch's slots, drawn from per-slot marginals.

    ``"shuffle"`` permutes each slot position independently across the batch;
    ``"pool"`` fills every position with slots drawn from all positions (for a
    decoder shared across slots).

    Parameters
    ----------
    slots : Tensor of shape (n, K, d)
        Slots of a batch, the source of the new combinations.
    mode : {"shuffle", "pool"}, default="shuffle"
        ``"shuffle"`` keeps every slot at its position; ``"pool"`` mixes positions.
    generator : torch.Generator or None, default=None
        Random number generator of the draws, on the device of ``slots``; None
        uses torch's global one.

    Returns
    -------
    recombined : Tensor of shape (n, K, d)
    """
    n, n_slots, slot_dim = slots.shape
    if mode == "shuffle":
        index = torch.stack(
            [
                torch.randperm(n, generator=generator, device=slots.device)
                for _ in range(n_slots)
            ],
            dim=1,
        )
        return slots.gather(0, index[:, :, None].expand(-1, -1, slot_dim))
    if mode == "pool":
        return sample_recombinations(slots, n, "pool", generator)
    raise ValueError(f"Unknown recombination mode {mode!r}; use 'shuffle' or 'pool'.")


def sample_recombinations(bank, n, mode="shuffle", generator=None):
    """``n`` slot combinations whose slots are drawn independently from ``bank``.

    ``bank`` (N, K, d) holds inferred ID slots. ``"shuffle"`` draws slot ``k`` of
    each sample from the ``k``-th slots of the bank, independently per slot (the
    product of the per-slot marginals, Eq. :eq:`eq-replay`); ``"pool"`` draws every
    slot from all slots of the bank.

    Parameters
    ----------
    bank : Tensor of shape (N, K, d)
        Inferred slots to draw from.
    n : int
        Number of combinations.
    mode : {"shuffle", "pool"}, default="shuffle"
    generator : torch.Generator or None, default=None
        Random number generator of the draws, on the device of ``bank``; None
        uses torch's global one.

    Returns
    -------
    slots : Tensor of shape (n, K, d)
    """
    size, n_slots, slot_dim = bank.shape
    if mode == "shuffle":
        index = torch.randint(
            size, (n, n_slots), generator=generator, device=bank.device
        )
        return bank[index, torch.arange(n_slots, device=bank.device)]
    if mode == "pool":
        pool = bank.reshape(size * n_slots, slot_dim)
        index = torch.randint(
            size * n_slots, (n, n_slots), generator=generator, device=bank.device
        )
        return pool[index]
    raise ValueError(f"Unknown sampler {mode!r}; use 'shuffle' or 'pool'.")


def consistency_loss(encoder, decoder, slots, mode="shuffle"):
    """Compositional consistency (Wiedemer et al. 2024), :ref:`background-inversion`.

    Recombines the batch's inferred ``slots`` into new combinations, decodes them
    without gradient, re-encodes the renderings and returns the slot-matched
    squared error to the recombined slots, divided by their variance. Only the
    encoder receives gradient. The normalization makes the loss blind to the
    slots' scale: unnormalized, shrinking every slot to one point would drive it
    to zero and collapse the representation.

    Parameters
    ----------
    encoder : callable
        Maps renderings to slots (n, K, d).
    decoder : callable
        Maps slots to renderings; used without gradient.
    slots : Tensor of shape (n, K, d)
        The batch's inferred slots (detached here).
    mode : {"shuffle", "pool"}, default="shuffle"

    Returns
    -------
    loss : Tensor (scalar)
    """
    target = recombine_slots(slots.detach(), mode)
    with torch.no_grad():
        rendered = decoder(target)
        scale = target.var(dim=0).mean().clamp_min(1e-8)
    return matched_slot_mse(encoder(rendered), target) / scale


class ReplayStream(IterableDataset):
    """Freshly rendered replay pairs ``(f(z~), z~)``, ``n_replay`` per pass.

    Every pass over the stream draws new recombined slots with
    :func:`sample_recombinations` and renders them with the frozen ``decoder``;
    :meth:`iter_batches` yields whole rendered batches (the fast way), and
    iterating the stream itself yields single pairs, as an
    :class:`~torch.utils.data.IterableDataset` does.

    Parameters
    ----------
    decoder : nn.Module
        Frozen decoder (kept in eval mode, no gradient).
    bank : Tensor of shape (N, K, d)
        Inferred in-domain slots, on the decoder's device.
    n_replay : int
        Pairs per pass (epoch).
    mode : {"shuffle", "pool"}
    """

    def __init__(self, decoder, bank, n_replay, mode="shuffle"):
        self.decoder = decoder
        self.bank = bank
        self.n_replay = n_replay
        self.mode = mode

    def __len__(self):
        return self.n_replay

    def __iter__(self):
        for renderings, slots in self.iter_batches(_STREAM_BATCH):
            yield from zip(renderings, slots)

    def iter_batches(self, batch_size):
        """Yield ``(rendering, slots)`` batches of fresh recombinations.

        Parameters
        ----------
        batch_size : int

        Yields
        ------
        rendering : Tensor of shape (batch, ...)
        slots : Tensor of shape (batch, K, d)
        """
        for start in range(0, self.n_replay, batch_size):
            size = min(batch_size, self.n_replay - start)
            z = sample_recombinations(self.bank, size, self.mode)
            with torch.no_grad():
                yield self.decoder(z), z
