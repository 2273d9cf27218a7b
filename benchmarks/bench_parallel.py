"""Candidate fits side by side against one after another.

A default ``GenerativeInverter`` on images fits two candidates (the MLP and the
broadcast renderer of ``renderer="auto"``); with ``n_init=k`` it fits ``2k``.
This script fits the same model on the same digit compositions with
``n_jobs=1`` (in turn, in this process, on all of torch's threads) and with the
default ``n_jobs=None`` (side by side in worker processes, torch's threads
shared out among them), and prints both wall times, their ratio and how far
the kept fits' final losses differ (the thread count changes rounding only).

The worker processes are started by a short warm-up fit first, as they are
once per session; the time they take to start is printed separately.

Run as ``python benchmarks/bench_parallel.py [--epochs 10] [--n-init 1]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from compgen_sk import GenerativeInverter
from compgen_sk.datasets import make_digit_compositions


def fit(images, n_jobs, epochs, n_init):
    model = GenerativeInverter(
        n_slots=2,
        slot_dim=4,
        max_epochs=epochs,
        n_init=n_init,
        n_jobs=n_jobs,
        random_state=0,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(images)
    return time.perf_counter() - start, model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="training images")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-init", type=int, default=1)
    args = parser.parse_args(argv)
    images = make_digit_compositions(
        args.n, split="id", colored=False, jitter=1, random_state=0
    ).images
    threads = torch.get_num_threads()
    print(
        f"{args.n} digit images {images.shape[1:]}, {args.epochs} epochs, "
        f"n_init={args.n_init}, {2 * args.n_init} candidates, torch threads {threads}"
    )
    warm_up, _ = fit(images[:64], None, 1, 1)
    print(f"worker start-up and a tiny fit: {warm_up:.1f} s")
    in_turn, a = fit(images, 1, args.epochs, args.n_init)
    side_by_side, b = fit(images, None, args.epochs, args.n_init)
    print(f"n_jobs=1 (in turn):           {in_turn:6.1f} s  kept {a.renderer_}")
    print(f"n_jobs=None (side by side):   {side_by_side:6.1f} s  kept {b.renderer_}")
    print(f"ratio side by side / in turn: {side_by_side / in_turn:.2f}")
    gap = abs(a.loss_curve_[-1] - b.loss_curve_[-1]) / a.loss_curve_[-1]
    print(f"relative difference of the kept final losses: {gap:.1e}")


if __name__ == "__main__":
    main()
