"""What search's budget buys: held-out scores and cost per image against
``steps`` and ``tol``, on fits of the training benchmark's data sets.

    python benchmarks/bench_search_budget.py [--datasets digits balls sprites-l16]
                                            [--seeds 0 1 2] [--n-jobs 2]

For each data set and seed, one :class:`~compgen_sk.GenerativeInverter` at its
defaults (as in ``bench_training.py``), then ``transform`` of the OOD images
with each search budget: the encoder alone, 10 and 30 steps, and 100 steps
(the default) with the per-image stopping tolerance ``tol`` at 1e-5 (the
default), 1e-4 and 1e-3. Prints, as mean ± std over seeds, the OOD slot
identifiability (MLP readouts, as the training benchmark), the OOD
reconstruction R², and milliseconds per image on one torch thread, with each
budget's time as a ratio to the default's, measured in the same run.
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd
from joblib import Parallel, delayed

BUDGETS = {
    "encoder only": None,
    "10 steps": dict(steps=10),
    "30 steps": dict(steps=30),
    "100 steps, tol 1e-5 (default)": dict(),
    "100 steps, tol 1e-4": dict(tol=1e-4),
    "100 steps, tol 1e-3": dict(tol=1e-3),
}


def run(name, seed):
    import bench_training as bt
    import torch

    from compgen_sk import GenerativeInverter, GradientSearch
    from compgen_sk.app.methods import with_search

    torch.set_num_threads(1)
    *data, n_slots, slot_dim = bt.load(name, seed)
    model = GenerativeInverter(n_slots=n_slots, slot_dim=slot_dim, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data[0])
    rows = []
    for label, budget in BUDGETS.items():
        searcher = with_search(
            model, None if budget is None else GradientSearch(**budget)
        )
        start = time.perf_counter()
        searcher.transform(data[2])
        ms = 1000 * (time.perf_counter() - start) / len(data[2])
        scores = bt.evaluate(searcher, data, n_slots, seed, bt.slot_matching(name))
        rows.append(
            dict(
                dataset=name,
                seed=seed,
                budget=label,
                slot_ood=scores["slot_ood"],
                rec_ood=scores["rec_ood"],
                ms=ms,
            )
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["digits", "balls", "sprites-l16"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args(argv)
    jobs = [(name, seed) for name in args.datasets for seed in args.seeds]
    results = Parallel(n_jobs=args.n_jobs)(delayed(run)(*job) for job in jobs)
    table = pd.DataFrame([row for rows in results for row in rows])
    default = table[table.budget == "100 steps, tol 1e-5 (default)"]
    table = table.merge(
        default[["dataset", "seed", "ms"]].rename(columns={"ms": "default_ms"}),
        on=["dataset", "seed"],
    )
    table["time_ratio"] = table.ms / table.default_ms
    grouped = table.groupby(["dataset", "budget"], sort=False)
    cols = ["slot_ood", "rec_ood", "ms", "time_ratio"]
    mean, std = grouped[cols].mean(), grouped[cols].std(ddof=0)
    out = mean.copy().astype(object)
    for c in cols:
        fmt = "{:.3f} ± {:.3f}" if c in ("slot_ood", "rec_ood") else "{:.2f} ± {:.2f}"
        out[c] = [fmt.format(m, s) for m, s in zip(mean[c], std[c])]
    out.columns = ["slots OOD", "rec. R² OOD", "ms / image", "time / default"]
    with pd.option_context("display.width", 200, "display.max_columns", 10):
        print(out.to_string())


if __name__ == "__main__":
    main()
