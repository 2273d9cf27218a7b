"""Small torch helpers shared across the package: devices, eval mode, threads."""

from __future__ import annotations

import contextlib

import joblib
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


def n_cores(n_jobs):
    """The CPU cores that ``n_jobs`` grants, as scikit-learn reads it: None is
    1 unless a :func:`joblib.parallel_config` block sets another number;
    -1 is every core, -2 all but one, and so on."""
    return joblib.effective_n_jobs(n_jobs)


@contextlib.contextmanager
def torch_threads(n_threads):
    """Run the block with ``n_threads`` torch threads, restored afterwards.

    torch's OpenMP threads spin while they wait for each other: beside another
    busy process, a step on two threads of a two-core machine can take tens of
    times as long as on one. One thread per fit is the default policy of the
    estimators (``n_jobs=None``), which keeps them fast both alone and beside
    other work.
    """
    before = torch.get_num_threads()
    if n_threads != before:
        torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def seeded(seed, device):
    """Run the block with torch's generators seeded by ``seed`` (on the CPU and
    on ``device`` where it is a GPU) and restored afterwards, so that fitting
    neither depends on nor disturbs them."""
    device = torch.device(device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def rng_state(device):
    """torch's random state on the CPU and on ``device`` where it is a GPU."""
    device = torch.device(device)
    gpu = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), gpu


def set_rng_state(state, device):
    """Restore a :func:`rng_state`."""
    cpu, gpu = state
    torch.set_rng_state(cpu)
    if gpu is not None:
        torch.cuda.set_rng_state(gpu, torch.device(device))
