"""Candidate fits side by side in worker processes.

On a CPU, small networks gain little from a second torch thread, and OpenMP
threads that wait for each other slow down beside other work; independent fits
(restarts, renderer candidates) therefore run side by side in loky worker
processes of one thread each. What a worker prints and the warnings it raises
are replayed in the parent, in order, as if the fit had run there.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import sys
import threading
import warnings

import joblib
import numpy as np
import torch
from joblib.externals.loky.process_executor import (
    BrokenProcessPool,
    TerminatedWorkerError,
)
from torch import nn

# In-memory arrays larger than this are not shared with worker processes (joblib
# would copy them once into shared memory); fits then run in turn.
_MAX_SHARED_BYTES = 2**30


def _shareable(array):
    """None, a memory-mapped array (sent by reference) or an in-memory array
    of at most ``_MAX_SHARED_BYTES``."""
    if array is None or isinstance(array, np.memmap):
        return True
    return isinstance(array, np.ndarray) and array.nbytes <= _MAX_SHARED_BYTES


def _defined_in_main(value):
    """Whether ``value`` (a parameter) holds a class or module defined in a
    script or notebook (``__main__``), which worker processes cannot load
    back by name."""
    if isinstance(value, dict):
        return any(_defined_in_main(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_defined_in_main(v) for v in value)
    objects = list(value.modules()) if isinstance(value, nn.Module) else [value]
    return any(
        (obj if isinstance(obj, type) else type(obj)).__module__ == "__main__"
        for obj in objects
    )


def can_use_workers(params, *arrays):
    """Whether fits with these parameters and data can run in worker
    processes: the data is shareable, nothing is defined in ``__main__``, and
    processes can be started from here (not from a thread, such as a
    threading backend's or dask's, nor from a daemonic process)."""
    return (
        all(_shareable(a) for a in arrays)
        and not _defined_in_main(params)
        and threading.current_thread() is threading.main_thread()
        and not multiprocessing.current_process().daemon
    )


def _call(function, args, n_threads):
    """Run ``function(*args)`` with ``n_threads`` torch threads; return its
    result, what it printed and the warnings it raised."""
    threads, log = torch.get_num_threads(), io.StringIO()
    torch.set_num_threads(n_threads)
    try:
        with contextlib.redirect_stdout(log), warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            result = function(*args)
    finally:  # the worker may serve other joblib calls next
        torch.set_num_threads(threads)
    # Each warning once, as the default filter would show it.
    caught = {(m.category, str(m.message), m.filename, m.lineno): m for m in w}
    caught = [(m.message, m.category, m.filename, m.lineno) for m in caught.values()]
    return result, log.getvalue(), caught


def _replay_warning(message, category, filename, lineno):
    """Raise a worker's warning here, as if raised at its origin (its
    module's filters and once-per-location registry apply)."""
    module = next(
        (
            m
            for m in list(sys.modules.values())
            if getattr(m, "__file__", None) == filename
        ),
        None,
    )
    if module is None:
        warnings.warn_explicit(message, category, filename, lineno)
        return
    registry = module.__dict__.setdefault("__warningregistry__", {})
    warnings.warn_explicit(
        message, category, filename, lineno, module.__name__, registry
    )


def run_in_workers(function, jobs, n_workers, n_threads):
    """Yield ``function(*args)`` for every ``args`` of ``jobs``, in order,
    computed ``n_workers`` at a time in worker processes of ``n_threads``
    torch threads each.

    Workers that died while idle (an interrupt that reached them between two
    fits) leave a broken pool behind; it is replaced once, before any result.
    """
    for attempt in (1, 2):
        parallel = joblib.Parallel(
            n_jobs=n_workers, backend="loky", batch_size=1, return_as="generator"
        )
        results = parallel(
            joblib.delayed(_call)(function, args, n_threads) for args in jobs
        )
        try:
            first = next(results, None)
        except (BrokenProcessPool, TerminatedWorkerError):
            if attempt == 2:
                raise
            continue  # joblib replaces a broken pool
        break
    if first is None:
        return
    # Runs joblib's generator to its end: closed early, it would stop the
    # workers, which are otherwise reused by the next fit.
    for result, log, caught in _chain(first, results):
        sys.stdout.write(log)
        for warning in caught:
            _replay_warning(*warning)
        yield result
        del result  # a losing net's memory, before the next one arrives


def _chain(first, rest):
    yield first
    yield from rest
