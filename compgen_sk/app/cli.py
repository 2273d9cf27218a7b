"""Command line: ``compgen-sk compare`` (also ``python -m compgen_sk``).

The parser only reads the options; :func:`~compgen_sk.app.compare.check_settings`
validates them, as it does for the Python API.
"""

from __future__ import annotations

import argparse
import sys
import time

from .._version import __version__


def build_parser():
    """The argument parser of ``compgen-sk`` (its ``compare`` command).

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    from .compare import DATASETS, METHODS
    from .settings import PROBES, Settings

    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="compgen-sk",
        description="Compositional generalization through generative inversion.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser(
        "compare",
        help="train generative and non-generative methods on in-domain data and "
        "score them on held-out combinations",
        description=(
            "Train every method on the in-domain split, read the concepts out of "
            "its slots with a probe fitted on in-domain slots, and score the "
            "probe on held-out in-domain images and on out-of-domain images (new "
            "combinations). Prints a table (mean ± std over seeds); writes "
            "results.csv, summary.csv, concept_scores.csv (each concept's score) "
            "and figures to --out. Seeds run side by side (--n-jobs), each fit "
            "on one core; on a GPU, try --device cuda --epochs 200 "
            "--n-samples 20000."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    compare.add_argument("--dataset", choices=list(DATASETS), default=defaults.dataset)
    compare.add_argument("--data-dir", help="local copy of PUG: Animals (for pug)")
    compare.add_argument(
        "--n-samples",
        type=int,
        default=defaults.n_samples,
        help="images generated, ID and OOD together",
    )
    compare.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="image side (digit side for digits); default: the dataset's",
    )
    compare.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        default=list(METHODS),
        metavar="METHOD",
        help=f"any of: {', '.join(METHODS)}",
    )
    compare.add_argument("--epochs", type=int, default=defaults.epochs)
    compare.add_argument(
        "--slot-dim",
        type=int,
        default=defaults.slot_dim,
        help="dimension of each slot; default: the dataset's (6 for sprites, else 12)",
    )
    compare.add_argument("--lr", type=float, default=defaults.lr, help="learning rate")
    compare.add_argument("--search-steps", type=int, default=defaults.search_steps)
    compare.add_argument("--probe", choices=PROBES, default=defaults.probe)
    compare.add_argument(
        "--device", default=defaults.device, help="cpu, cuda, cuda:1 …"
    )
    compare.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=list(defaults.seeds),
        metavar="SEED",
        help="one full run per seed (data, initializations, probes); the table "
        "shows mean ± std over seeds, results.csv one row per seed and "
        "summary.csv the mean and std",
    )
    compare.add_argument(
        "--n-train",
        nargs="+",
        type=int,
        default=None,
        metavar="N",
        help="data efficiency: train every method on N ID images for each N "
        "(e.g. --n-train 250 500 1000 2000) and plot the OOD score against N "
        "(data_efficiency.png)",
    )
    compare.add_argument(
        "--n-jobs",
        type=int,
        default=-1,
        help="seeds run side by side in this many processes, each fit on one "
        "core (-1: every core; the scores do not depend on it)",
    )
    compare.add_argument("--out", default="compgen_results", help="output folder")
    compare.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from .compare import Settings, format_table, run_comparison

    settings = Settings(
        dataset=args.dataset,
        n_samples=args.n_samples,
        image_size=args.image_size,
        methods=tuple(args.methods),
        epochs=args.epochs,
        slot_dim=args.slot_dim,
        lr=args.lr,
        search_steps=args.search_steps,
        probe=args.probe,
        device=args.device,
        seeds=tuple(args.seeds),
        n_train=tuple(sorted(set(args.n_train))) if args.n_train else None,
        n_jobs=args.n_jobs,
        data_dir=args.data_dir,
        progress=not args.no_progress,
    )
    start = time.perf_counter()
    try:
        results = run_comparison(
            settings, out=args.out, log=lambda line: print(line, flush=True)
        )
    except (ValueError, OSError) as exc:
        print(f"compgen-sk compare: error: {exc}", file=sys.stderr)
        return 2
    print()
    print(format_table(results))
    print(
        f"\nScores: {args.probe} probe fitted on ID slots, mean accuracy / R² over "
        f"concepts. Total {time.perf_counter() - start:.0f} s. Results and figures "
        f"in {args.out}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
