"""Turning a user's ``device`` setting into a usable torch device."""

from __future__ import annotations

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
    return resolved
