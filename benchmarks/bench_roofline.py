"""How far a training step and a search step are from what the machine can do.

    python benchmarks/bench_roofline.py [--threads 1 2] [--sizes 16 32]

For each thread count, the machine's measured throughput of a large matrix
product and of a convolution (GFLOP/s, best of several runs) is the roof. For each
image size, one training step of the default ``GenerativeInverter`` (a CNN encoder
and an additive decoder, two MLP renderers, batch 64) and one search step (a
decoder forward and backward on 256 images) are counted in FLOPs
(:class:`torch.utils.flop_counter.FlopCounterMode`) and timed; their achieved
GFLOP/s over the roof is the ratio printed. A profile of the training step then
says where its time goes: the matrix products and convolutions, and the rest
(element-wise kernels, the optimizer, framework overhead per operator).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from compgen_sk import AdditiveDecoder
from compgen_sk.encoders import build_backbone
from compgen_sk.modules import SlotAutoencoder, SlotEncoder

_BATCH, _SEARCH_BATCH = 64, 256


def _best_seconds(fn, repeats=5, min_time=0.5):
    """The best time of one call of ``fn`` over ``repeats`` timed loops."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed > min_time / repeats:
                break
        best = min(best, elapsed / n)
    return best


def roof():
    """Measured GFLOP/s of a 1024 x 1024 matrix product and of a 3x3
    convolution of 64 channels on 32 x 32 maps (batch 64)."""
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    matmul = 2 * 1024**3 / _best_seconds(lambda: a @ b) / 1e9
    x = torch.rand(64, 64, 32, 32)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    flops = 2 * 64 * 64 * 64 * 9 * 32 * 32
    with torch.no_grad():
        conv_rate = flops / _best_seconds(lambda: conv(x)) / 1e9
    return matmul, conv_rate


def model(size):
    torch.manual_seed(0)
    shape = (3, size, size)
    backbone, width = build_backbone("auto", shape)
    decoder = AdditiveDecoder("mlp").build(2, 4, shape)
    return SlotAutoencoder(SlotEncoder(backbone, width, 2, 4), decoder), shape


def step_functions(size):
    net, shape = model(size)
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3)
    x = torch.rand(_BATCH, *shape)

    def train_step():
        loss = (net(x)["reconstruction"] - x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    decoder = net.decoder.requires_grad_(False)
    target = torch.rand(_SEARCH_BATCH, *shape)
    z = torch.zeros(_SEARCH_BATCH, 2, 4, requires_grad=True)

    def search_step():
        z.grad = None
        (decoder(z) - target).pow(2).sum().backward()
        with torch.no_grad():
            z.sub_(1e-3 * z.grad)

    return train_step, search_step


def _flops(fn):
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def profile(fn, top=6):
    """The share of the step's CPU time of its costliest operators."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as p:
        for _ in range(10):
            fn()
    events = sorted(p.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    lines = [
        f"    {e.key:<40}{100 * e.self_cpu_time_total / total:5.1f} %"
        for e in events[:top]
    ]
    dense = sum(
        e.self_cpu_time_total
        for e in events
        if any(k in e.key for k in ("mm", "addmm", "conv", "linear", "bmm"))
    )
    lines.append(
        f"    matrix products and convolutions together: {100 * dense / total:.0f} %"
    )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32])
    args = parser.parse_args(argv)
    before = torch.get_num_threads()
    for threads in args.threads:
        torch.set_num_threads(threads)
        matmul, conv = roof()
        print(
            f"\n{threads} thread(s): roof {matmul:.1f} GFLOP/s (matrix product), "
            f"{conv:.1f} GFLOP/s (convolution)"
        )
        for size in args.sizes:
            train_step, search_step = step_functions(size)
            for what, fn, n in (
                (f"training step, batch {_BATCH}", train_step, _BATCH),
                (f"search step, {_SEARCH_BATCH} images", search_step, _SEARCH_BATCH),
            ):
                flops, seconds = _flops(fn), _best_seconds(fn)
                rate = flops / seconds / 1e9
                print(
                    f"  {size} px {what}: {flops / 1e6:.0f} MFLOP in "
                    f"{1000 * seconds:.1f} ms ({1e6 * seconds / n:.0f} µs/image) = "
                    f"{rate:.1f} GFLOP/s, {rate / matmul:.0%} of the roof"
                )
            if threads == args.threads[0]:
                print(f"  {size} px training step, where the time goes:")
                print(profile(train_step))
    torch.set_num_threads(before)


if __name__ == "__main__":
    main()
