"""Thread policy and worker processes: fit and search alone and beside other work.

torch's OpenMP threads spin while they wait for each other; beside another busy
process, a step on all the cores of a small machine can take many times as long as
alone. The estimators therefore use the cores that ``n_jobs`` grants, one by default
(``n_jobs=None``), and run several fits side by side in worker processes of one
thread each. This script measures, in one run:

1. one fit (a ``GenerativeInverter`` with one renderer) and one ``transform`` with
   search (100 steps on 256 images), each with ``n_jobs=None`` (one thread) and
   with ``n_jobs=-1`` (every core as torch threads), alone and beside a busy
   two-thread torch process (the worse of two tries), and prints the ratios
   beside / alone: the policy's target is at most 3x;
2. a default fit on images, which fits two candidate renderers, in turn
   (``n_jobs=None``) and side by side in worker processes (``n_jobs=-1``).

Run as ``python benchmarks/bench_parallel.py [--n 1000] [--epochs 5]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings

import torch

from compgen_sk import GenerativeInverter, GradientSearch
from compgen_sk.datasets import make_digit_compositions
from compgen_sk.decoders import AdditiveDecoder

# A busy neighbour: a torch training loop on two threads, until killed.
_BUSY = """
import torch
torch.set_num_threads(2)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3), torch.nn.ReLU(),
                          torch.nn.Flatten(), torch.nn.Linear(32 * 14 * 14, 64))
opt = torch.optim.Adam(net.parameters())
x = torch.rand(64, 3, 16, 16)
while True:
    opt.zero_grad(); net(x).pow(2).mean().backward(); opt.step()
"""


def _timed(fn):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn()
    return time.perf_counter() - start


def _beside_busy(fn, tries=2):
    """The worst time of ``fn`` over ``tries``, each beside a busy process."""
    times = []
    for _ in range(tries):
        busy = subprocess.Popen([sys.executable, "-c", _BUSY])
        try:
            time.sleep(2.0)  # let it import torch and get going
            times.append(_timed(fn))
        finally:
            busy.kill()
            busy.wait()
    return max(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="training images")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    images = make_digit_compositions(
        args.n, split="id", colored=False, jitter=1, random_state=0
    ).images
    print(
        f"{args.n} digit images {images.shape[1:]}, {args.epochs} epochs; "
        f"{torch.get_num_threads()} torch threads available"
    )

    def model(n_jobs, renderer="mlp"):
        return GenerativeInverter(
            decoder=AdditiveDecoder(renderer),
            max_epochs=args.epochs,
            tol=None,
            search=GradientSearch(steps=100, tol=0),
            n_jobs=n_jobs,
            random_state=0,
        )

    fitted = {n_jobs: model(n_jobs).fit(images) for n_jobs in (None, -1)}
    queries = images[:256]
    print(f"\n{'':34}{'alone':>9}{'beside':>9}{'ratio':>8}")
    for label, n_jobs in (("n_jobs=None (one thread)", None), ("n_jobs=-1", -1)):
        search = fitted[n_jobs]
        jobs = {
            "fit": lambda n_jobs=n_jobs: model(n_jobs).fit(images),
            "transform, search": lambda search=search: search.transform(queries),
        }
        for what, fn in jobs.items():
            alone = min(_timed(fn) for _ in range(2))
            beside = _beside_busy(fn)
            print(
                f"{what + ', ' + label:34}{alone:8.1f}s{beside:8.1f}s"
                f"{beside / alone:7.1f}x"
            )
    in_turn = _timed(lambda: model(None, "auto").fit(images))
    _timed(lambda: model(-1, "auto").fit(images[:64]))  # start the workers once
    side_by_side = _timed(lambda: model(-1, "auto").fit(images))
    print(
        f"\ntwo candidate renderers: in turn (n_jobs=None) {in_turn:.1f} s, side by "
        f"side (n_jobs=-1) {side_by_side:.1f} s, ratio {side_by_side / in_turn:.2f}"
    )


if __name__ == "__main__":
    main()
