"""Thread policy and worker processes: fit and search alone and beside other work.

torch's OpenMP threads spin while they wait for each other; beside another busy
process, a step on all the cores of a small machine can take many times as long as
alone. The estimators therefore use the cores that ``n_jobs`` grants, one by default
(``n_jobs=None``), and run several fits side by side in worker processes of one
thread each. This script measures, in one run:

1. a training step of a 16 px slot autoencoder on 1 and 2 torch threads, with
   OpenMP's default wait policy and with ``OMP_WAIT_POLICY=PASSIVE`` (which
   must be set before torch starts, so each runs in a fresh process), alone and
   beside a busy two-thread torch process;
2. one fit (a ``GenerativeInverter`` with one renderer) and one ``transform``
   with search (100 steps on 256 images), each with ``n_jobs=None`` (one
   thread) and with ``n_jobs=-1`` (every core as torch threads), alone and
   beside the busy process (the worse of two tries), and the ratios beside /
   alone: the policy's target is at most 3x;
3. a default fit on images, which fits two candidate renderers, in turn
   (``n_jobs=None``) and side by side in worker processes (``n_jobs=-1``).

Run as ``python benchmarks/bench_parallel.py [--n 1000] [--epochs 5]``.
"""

from __future__ import annotations

import argparse
import os
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
# One training step of a default 16 px model, timed in a fresh process.
_STEP = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
from compgen_sk import AdditiveDecoder
from compgen_sk.encoders import build_backbone
from compgen_sk.modules import SlotAutoencoder, SlotEncoder
torch.manual_seed(0)
backbone, width = build_backbone("auto", (3, 16, 16))
model = SlotAutoencoder(SlotEncoder(backbone, width, 2, 4),
                        AdditiveDecoder("mlp").build(2, 4, (3, 16, 16)))
optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
x = torch.rand(64, 3, 16, 16)
def step():
    loss = (model(x)["reconstruction"] - x).pow(2).mean()
    optimizer.zero_grad(); loss.backward(); optimizer.step()
for _ in range(20):
    step()
start, n = time.perf_counter(), 0
while time.perf_counter() - start < 3:
    step(); n += 1
print(1000 * (time.perf_counter() - start) / n)
"""


def _timed(fn):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn()
    return time.perf_counter() - start


def _beside_busy(fn, tries=2):
    """The worst of ``tries`` results of ``fn``, each beside a busy process."""
    results = []
    for _ in range(tries):
        busy = subprocess.Popen([sys.executable, "-c", _BUSY])
        try:
            time.sleep(2.0)  # let it import torch and get going
            results.append(fn())
        finally:
            busy.kill()
            busy.wait()
    return max(results)


def _step_ms(threads, policy):
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    run = subprocess.run(
        [sys.executable, "-c", _STEP, str(threads)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(run.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="training images")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)

    print("1. one training step, 16 px, batch 64 (ms):")
    print(f"{'':34}{'alone':>9}{'beside':>9}{'ratio':>8}")
    for policy in ("", "PASSIVE"):
        for threads in (1, 2):
            alone = min(_step_ms(threads, policy) for _ in range(2))
            beside = _beside_busy(lambda t=threads, p=policy: _step_ms(t, p))
            label = f"{threads} thread(s), wait policy {policy or 'default'}"
            print(f"{label:34}{alone:9.1f}{beside:9.1f}{beside / alone:7.1f}x")

    images = make_digit_compositions(
        args.n, split="id", colored=False, jitter=1, random_state=0
    ).images

    def model(n_jobs, renderer="mlp"):
        return GenerativeInverter(
            decoder=AdditiveDecoder(renderer),
            max_epochs=args.epochs,
            tol=None,
            search=GradientSearch(steps=100, tol=0),
            n_jobs=n_jobs,
            random_state=0,
        )

    print(
        f"\n2. {args.n} digit images {images.shape[1:]}, {args.epochs} epochs; "
        f"transform with 100 search steps on 256 images (s):"
    )
    print(f"{'':34}{'alone':>9}{'beside':>9}{'ratio':>8}")
    queries = images[:256]
    for label, n_jobs in (("n_jobs=None (one thread)", None), ("n_jobs=-1", -1)):
        fitted = model(n_jobs).fit(images)
        jobs = {
            "fit": lambda n_jobs=n_jobs: model(n_jobs).fit(images),
            "search": lambda fitted=fitted: fitted.transform(queries),
        }
        for what, job in jobs.items():
            alone = min(_timed(job) for _ in range(2))
            beside = _beside_busy(lambda job=job: _timed(job))
            row = f"{what}, {label}"
            print(f"{row:34}{alone:9.1f}{beside:9.1f}{beside / alone:7.1f}x")

    in_turn = _timed(lambda: model(None, "auto").fit(images))
    _timed(lambda: model(-1, "auto").fit(images[:64]))  # start the workers once
    side_by_side = _timed(lambda: model(-1, "auto").fit(images))
    print(
        f"\n3. two candidate renderers, {torch.get_num_threads()} cores: in turn "
        f"(n_jobs=None) {in_turn:.1f} s, side by side (n_jobs=-1) "
        f"{side_by_side:.1f} s, ratio {side_by_side / in_turn:.2f}"
    )


if __name__ == "__main__":
    main()
