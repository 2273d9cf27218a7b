"""Two-sprite scenes: compositional consistency and multi-start search.

    python benchmarks/bench_sprites.py [--seeds 0 1] [--weights 0 0.1 1]
        [--restarts 4] [--image-size 32] [--epochs 40] [--device cpu]

Objects of one kind on the diagonal support (Wiedemer et al.); every score is a
per-sample-matched SlotProbe (MLP readouts shared by the slots) fitted on ID
training slots and scored on held-out ID and on OOD images, as in
``compgen-sk compare --dataset sprites``. For each consistency weight, one
GenerativeInverter with one renderer shared by the slots is fitted (the
consistency loss starts after a third of the epochs, as in Wiedemer et al.) and
scored three ways:

- ``encoder``: the encoder's slots, no search;
- ``search``: 100 steps of gradient search from the encoder's guess;
- ``search xK``: the same search from K starts (``GradientSearch(restarts=K)``).

Prints per seed, then mean ± std over seeds, with the transform time per image
of each way, so that the cost of K starts can be read against one.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import pandas as pd

from compgen_sk import GradientSearch
from compgen_sk.app.compare import Comparison, Settings, evaluate, load_split
from compgen_sk.app.methods import generator, with_search


def run(args):
    rows = []
    base = Settings(
        dataset="sprites",
        image_size=args.image_size,
        n_samples=args.n_samples,
        epochs=args.epochs,
        slot_dim=args.slot_dim,
        search_steps=0,
        device=args.device,
        probe="mlp",
        progress=False,
    )
    for seed in args.seeds:
        split = load_split(base, seed)
        for weight in args.weights:
            # The comparison's own sprites generator (shared renderer,
            # consistency after a third of the epochs), at this weight.
            settings = replace(base, generator_params={"consistency_weight": weight})
            model, fit_seconds = generator(Comparison(settings, split, seed))
            steps = args.search_steps
            ways = {
                "encoder": with_search(model, None),
                "search": with_search(model, GradientSearch(steps=steps)),
                f"search x{args.restarts}": with_search(
                    model, GradientSearch(steps=steps, restarts=args.restarts)
                ),
            }
            for way, estimator in ways.items():
                scores = evaluate(settings, split, estimator, seed)
                scores.pop("concepts")
                row = {
                    "seed": seed,
                    "consistency_weight": weight,
                    "way": way,
                    "fit_seconds": fit_seconds,
                    **scores,
                }
                rows.append(row)
                print(
                    f"seed {seed}  weight {weight:<5g} {way:<10} ID "
                    f"{row['id_score']:.3f}  OOD {row['ood_score']:.3f}  OOD rec "
                    f"{row['ood_reconstruction_r2']:.3f}  "
                    f"{row['transform_ms_per_image']:.2f} ms/img  fit "
                    f"{fit_seconds:.0f} s",
                    flush=True,
                )
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 1.0])
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--search-steps", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--n-samples", type=int, default=6000)
    parser.add_argument("--slot-dim", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--csv", help="also write the rows to this CSV file")
    args = parser.parse_args(argv)
    results = run(args)
    if args.csv:
        results.to_csv(args.csv, index=False)
    columns = [
        "id_score",
        "ood_score",
        "ood_reconstruction_r2",
        "transform_ms_per_image",
    ]
    summary = results.groupby(["consistency_weight", "way"], sort=False)[columns]
    mean, std = summary.mean(), summary.std(ddof=0)
    print(f"\nmean ± std over seeds {args.seeds}:")
    for key in mean.index:
        cells = "  ".join(
            f"{c} {mean.loc[key, c]:.3f} ± {std.loc[key, c]:.3f}" for c in columns
        )
        print(f"weight {key[0]:<5g} {key[1]:<10} {cells}")
    base = mean.xs("search", level="way")["transform_ms_per_image"]
    multi = mean.xs(f"search x{args.restarts}", level="way")["transform_ms_per_image"]
    print(
        f"cost of {args.restarts} starts vs one: "
        + ", ".join(f"{w:g}: {m / b:.2f}x" for w, m, b in zip(base.index, multi, base))
    )


if __name__ == "__main__":
    main()
