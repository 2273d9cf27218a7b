"""Scale: in-memory vs disk-backed vs uint8 images, and a search on a Dask cluster.

For each data set size, one process per storage fits a GenerativeInverter for
one epoch and transforms every image (the encoder alone), and reports the
throughput (images per second) and the peak of anonymous memory (RssAnon,
sampled every 20 ms) above its level once the data are opened:

- ``memory``: a float32 array in RAM (the data themselves count in the baseline);
- ``memmap``: the same float32 images in a ``.npy`` file opened with
  ``mmap_mode="r"`` (pages of the file are cache, not anonymous memory);
- ``uint8``: the images as uint8 pixels in a ``.npy`` memmap (a quarter of the
  disk and page cache).

Then a ``GridSearchCV`` (4 candidates x 2 held-out-combination folds) runs
serially and on a ``dask.distributed.LocalCluster`` of 2 worker processes, one
torch thread per fit in both (Dask's workers set ``OMP_NUM_THREADS=1``; with
another thread count, float sums run in another order and scores differ in
their last digits).

Anonymous memory includes what the C allocator keeps after freeing: with
glibc, the per-batch buffers of a long epoch fragment its heap (the same for
arrays in memory), so the training loaders hand freed memory back every 128
batches (``malloc_trim``); without it, 100,000 images added about 0.8 GB.

    python benchmarks/bench_scale.py                   # 20,000 and 175,000 (2 GB)
    python benchmarks/bench_scale.py --sizes 5000 --no-dask
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

_IMAGE = (3, 32, 32)


def _rss_anon_kb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


class _PeakAnon:
    """The highest RssAnon seen while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        self.base = self.peak = _rss_anon_kb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_anon_kb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_anon_kb())

    @property
    def added_mb(self):
        return (self.peak - self.base) / 1024


def _write_data(folder, n):
    """Random smooth images as float32 and uint8 .npy files, written in chunks."""
    rng = np.random.default_rng(0)
    as_float = np.lib.format.open_memmap(
        folder / f"float_{n}.npy", mode="w+", dtype=np.float32, shape=(n, *_IMAGE)
    )
    as_uint8 = np.lib.format.open_memmap(
        folder / f"uint8_{n}.npy", mode="w+", dtype=np.uint8, shape=(n, *_IMAGE)
    )
    ramp = np.linspace(0, 1, _IMAGE[1], dtype=np.float32)
    for start in range(0, n, 5000):
        m = min(5000, n - start)
        weights = rng.random((m, 3, 1, 1), dtype=np.float32)
        pixels = np.round(255 * weights * ramp[None, None, :, None]).astype(np.uint8)
        pixels = np.broadcast_to(pixels, (m, *_IMAGE))
        as_uint8[start : start + m] = pixels
        as_float[start : start + m] = pixels.astype(np.float32) / np.float32(255)
    as_float.flush()
    as_uint8.flush()


def _child(storage, path, n):
    """Run in a fresh process: open, fit one epoch, transform; print JSON."""

    from compgen_sk import GenerativeInverter

    warnings.simplefilter("ignore")
    X = np.load(path, mmap_mode="r")
    if storage == "memory":
        X = np.array(X)
    model = GenerativeInverter(
        n_slots=2, slot_dim=4, max_epochs=1, search=None, random_state=0
    )
    with _PeakAnon() as memory:
        start = time.perf_counter()
        model.fit(X)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        model.transform(X)
        transform_seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "storage": storage,
                "n": n,
                "data_mb": X.nbytes / 2**20,
                "fit_images_per_s": n / fit_seconds,
                "transform_images_per_s": n / transform_seconds,
                "added_memory_mb": memory.added_mb,
            }
        )
    )


def _run_storage(storage, folder, n):
    path = folder / (f"uint8_{n}.npy" if storage == "uint8" else f"float_{n}.npy")
    out = subprocess.run(
        [sys.executable, __file__, "--child", storage, str(path), str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _dask_search():
    """Wall time of one grid search, serial and on 2 Dask worker processes."""
    import joblib
    from distributed import Client, LocalCluster
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    from compgen_sk import (
        GenerativeInverter,
        GradientSearch,
        HeldOutCombinations,
        SlotProbe,
    )
    from compgen_sk.datasets import make_digit_compositions

    warnings.simplefilter("ignore")
    # Each fit runs on one torch thread (n_jobs=None), serially as on Dask's
    # workers: the same arithmetic, so the same scores.
    digits = make_digit_compositions(1500, random_state=0)
    model = Pipeline(
        [
            (
                "inv",
                GenerativeInverter(
                    n_slots=2,
                    max_epochs=5,
                    search=GradientSearch(steps=20),
                    random_state=0,
                ),
            ),
            ("probe", SlotProbe(random_state=0)),
        ]
    )
    grid = {"inv__decoder": ["additive", "mlp"], "inv__search__steps": [0, 20]}
    cv = HeldOutCombinations(n_splits=2, random_state=0)

    def search(n_jobs):
        start = time.perf_counter()
        found = GridSearchCV(model, grid, cv=cv, n_jobs=n_jobs, refit=False)
        found.fit(digits.images, digits.concepts, groups=digits.concepts)
        return time.perf_counter() - start, found.cv_results_["mean_test_score"]

    serial_seconds, serial_scores = search(None)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
        joblib.parallel_config(backend="dask"),
    ):
        dask_seconds, dask_scores = search(-1)
    return (
        serial_seconds,
        dask_seconds,
        bool(np.array_equal(serial_scores, dask_scores)),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", nargs="*", type=int, default=[20000, 175000], help="none: skip"
    )
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        storage, path, n = args.child
        _child(storage, path, int(n))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(
            f"{'images':>8} {'storage':>8} {'data MB':>8} {'fit img/s':>10} "
            f"{'transform img/s':>16} {'added MB':>9} {'vs memory':>10}"
        )
        for n in args.sizes:
            _write_data(folder, n)
            rows = [_run_storage(s, folder, n) for s in ("memory", "memmap", "uint8")]
            base = rows[0]["fit_images_per_s"]
            for row in rows:
                print(
                    f"{n:>8} {row['storage']:>8} {row['data_mb']:>8.0f} "
                    f"{row['fit_images_per_s']:>10.0f} "
                    f"{row['transform_images_per_s']:>16.0f} "
                    f"{row['added_memory_mb']:>9.0f} "
                    f"{row['fit_images_per_s'] / base:>9.2f}x"
                )
            for name in (f"float_{n}.npy", f"uint8_{n}.npy"):
                (folder / name).unlink()
    if not args.no_dask:
        serial, on_dask, same = _dask_search()
        print(
            f"\nGridSearchCV, 4 candidates x 2 folds: serial {serial:.0f} s, Dask "
            f"LocalCluster of 2 workers {on_dask:.0f} s ({serial / on_dask:.2f}x); "
            f"same scores: {same}"
        )


if __name__ == "__main__":
    main()
