"""Small torch helpers shared across the package: devices and eval mode."""

from __future__ import annotations

import contextlib

import torch


def resolve_device(device):
    """The torch device named by ``device``; ValueError if it is not one or
    CUDA is asked for but not available."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device; use e.g. 'cpu' or 'cuda'."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested, but CUDA is not available on "
            "this machine; use device='cpu'."
        )
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} was requested, but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s); use 'cuda:0' … "
            f"'cuda:{torch.cuda.device_count() - 1}'."
        )
    return resolved


@contextlib.contextmanager
def eval_mode(*modules):
    """Eval mode (no dropout, no VAE sampling) for the block; each module's
    mode is restored after."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
