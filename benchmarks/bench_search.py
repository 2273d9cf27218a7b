"""Search and training performance, as ratios measured in one run.

    python benchmarks/bench_search.py [--steps 100] [--device cpu]

Prints four figures, each against its target:

1. batched search vs a per-image loop of the same search, 256 images (>= 20x);
2. search wall time vs ``steps`` x one decoder forward+backward on the same batch
   (<= 1.25: no overhead beyond the arithmetic);
3. skorch training throughput vs a plain torch loop on the same module, data,
   batch size and optimizer (>= 0.9);
4. peak memory added by ``transform`` on 20,000 images vs on one chunk of the
   search's ``batch_size`` images (<= 2x), read from the kernel's peak-RSS counter.

Everything runs on one torch thread, as the estimators do at ``n_jobs=None``.

The workload is the default compare setting: digit compositions (3 x 16 x 32
images), a GenerativeInverter with the additive decoder, 2 slots of 8.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from compgen_sk import GenerativeInverter, GradientSearch
from compgen_sk.datasets import make_digit_compositions
from compgen_sk.inversion import search_latents


def _best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_search(estimator, images, steps, device):
    module = estimator.net_.module_.eval()
    decoder, encoder = module.decoder, module.encoder
    x = torch.as_tensor(images[:256], device=device)
    with torch.no_grad():
        z0 = encoder(x)

    def batched():
        search_latents(decoder, x, z0, steps=steps, lr=0.05)
        _sync(device)

    def per_image():
        for i in range(len(x)):
            search_latents(decoder, x[i : i + 1], z0[i : i + 1], steps=steps, lr=0.05)
        _sync(device)

    def arithmetic():
        for _ in range(steps):
            z = z0.clone().requires_grad_(True)
            loss = (decoder(z) - x).pow(2).flatten(1).sum(1).sum()
            torch.autograd.grad(loss, z)
        _sync(device)

    batched()  # warm up
    t_batch = _best_of(batched)
    t_arith = _best_of(arithmetic)
    t_loop = _best_of(per_image, repeats=1)
    return t_loop / t_batch, t_batch / t_arith, t_batch, t_arith, t_loop


def bench_training(images, epochs, device):
    """Throughput of GenerativeInverter.fit vs a plain loop on the same module."""
    estimator = GenerativeInverter(
        n_slots=2,
        slot_dim=8,
        max_epochs=epochs,
        batch_size=64,
        device=device,
        search=None,
        random_state=0,
    )
    estimator.fit(images[:256])  # warm up torch (first optimizer import, kernels)
    start = time.perf_counter()
    estimator.fit(images)
    _sync(device)
    t_skorch = time.perf_counter() - start

    # The same architecture (weights do not change the cost), trained by hand.
    torch.manual_seed(0)
    module = copy.deepcopy(estimator.net_.module_).to(device).train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    data = torch.as_tensor(images)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(data))
        for i in range(0, len(data), 64):
            x = data[order[i : i + 64]].to(device)
            optimizer.zero_grad()
            loss = (module(x)["reconstruction"] - x).pow(2).mean()
            loss.backward()
            optimizer.step()
    _sync(device)
    t_plain = time.perf_counter() - start
    n = epochs * len(images)
    return (n / t_skorch) / (n / t_plain), n / t_skorch, n / t_plain


def _rss_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _peak_added_mib(fn):
    """Peak resident memory added while fn runs, in MiB (Linux peak-RSS reset)."""
    import gc

    gc.collect()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset VmHWM, the peak-RSS counter, to the current RSS
    before = _rss_kib("VmRSS")
    fn()
    return (_rss_kib("VmHWM") - before) / 1024


def bench_memory(estimator, images, steps):
    search = GradientSearch(steps=steps)
    estimator.set_params(search=search)
    chunk = search.batch_size
    big = np.concatenate([images] * int(np.ceil(20_000 / len(images))))[:20_000]
    estimator.transform(big[:chunk])  # warm up allocator and kernels
    one_chunk = _peak_added_mib(lambda: estimator.transform(big[:chunk]))
    everything = _peak_added_mib(lambda: estimator.transform(big))
    return everything / max(one_chunk, 1e-3), one_chunk, everything, big.nbytes / 2**20


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="search steps")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(1)  # the estimators' own policy, for the plain loops too

    bunch = make_digit_compositions(args.n_train, random_state=0)
    images = bunch.images
    estimator = GenerativeInverter(
        n_slots=2, slot_dim=8, max_epochs=2, device=args.device, random_state=0
    ).fit(images)
    print(
        f"device: {device}, torch threads: {torch.get_num_threads()}, "
        f"images {images.shape[1:]}, search steps {args.steps}"
    )

    speedup, overhead, t_batch, t_arith, t_loop = bench_search(
        estimator, images, args.steps, device
    )
    print(
        f"1. batched search, 256 images: {t_batch:.2f} s; per-image loop "
        f"{t_loop:.2f} s -> speed-up {speedup:.1f}x (target >= 20x)"
    )
    print(
        f"2. search / (steps x forward+backward) = {t_batch:.2f} / {t_arith:.2f} "
        f"= {overhead:.3f} (target <= 1.25)"
    )

    ratio, skorch_rate, plain_rate = bench_training(images, args.epochs, device)
    print(
        f"3. training throughput: skorch {skorch_rate:.0f} img/s, plain loop "
        f"{plain_rate:.0f} img/s -> ratio {ratio:.3f} (target >= 0.9)"
    )

    if device.type == "cpu":
        mem_ratio, one, everything, data_mib = bench_memory(estimator, images, steps=5)
        print(
            f"4. transform peak memory added: one chunk {one:.1f} MiB, 20,000 "
            f"images {everything:.1f} MiB (input itself {data_mib:.0f} MiB, already "
            f"resident) -> ratio {mem_ratio:.2f} (target <= 2)"
        )
    else:
        print("4. memory: measured on CPU only (peak RSS)")


if __name__ == "__main__":
    main()
