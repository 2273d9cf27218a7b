"""The tables of the Results page, from the outputs of ``benchmarks/results.sh``.

    python benchmarks/results_tables.py OUT

prints every table as reStructuredText (mean ± std over seeds), in the order of
``docs/results.rst``, from the CSVs that ``results.sh OUT`` wrote; a run that has
not finished is skipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def _cell(mean, std, n, spec="{:.3f}"):
    if np.isnan(mean):
        return "-"
    return spec.format(mean) + ("" if n == 1 else " ± " + spec.format(std))


def _rst(header, rows):
    """A reStructuredText csv-table."""

    def line(cells):
        return ", ".join(f'"{cell}"' for cell in cells)

    return "\n".join(
        [".. csv-table::", f"   :header: {line(header)}", ""]
        + [f"   {line(row)}" for row in rows]
    )


def compare_table(folder):
    """A comparison's summary: ID, OOD, OOD reconstruction, fit and transform."""
    summary = pd.read_csv(folder / "summary.csv")
    rows = []
    for _, r in summary.iterrows():
        rows.append(
            [
                r["description"],
                _cell(r["id_score"], r["id_score_std"], r["n_seeds"]),
                _cell(r["ood_score"], r["ood_score_std"], r["n_seeds"]),
                _cell(r["ood_reconstruction_r2"], np.nan, 1),
                f"{r['fit_seconds']:.0f} s",
                f"{r['transform_ms_per_image']:.2f} ms",
            ]
        )
    header = [
        "method",
        "ID score",
        "OOD score",
        "OOD rec. R²",
        "fit",
        "transform/image",
    ]
    return _rst(header, rows)


def efficiency_table(folder):
    """OOD score against the number of ID training images."""
    summary = pd.read_csv(folder / "summary.csv")
    sizes = sorted(summary["n_train"].unique())
    rows = []
    for method, part in summary.groupby("description", sort=False):
        part = part.set_index("n_train")
        rows.append(
            [method]
            + [
                _cell(part.loc[n, "ood_score"], part.loc[n, "ood_score_std"], 3)
                for n in sizes
            ]
        )
    return _rst(["ID training images", *map(str, sizes)], rows)


def concept_table(folder):
    """Each concept's OOD (and ID) score per method, mean over seeds."""
    table = pd.read_csv(folder / "concept_scores.csv")
    table["concept"] = table["concept"].str.replace(
        r"^slot\d_|^object\d?_", "", regex=True
    )
    grouped = table.groupby(["method", "concept"], sort=False)
    mean = grouped[["id_score", "ood_score"]].mean().reset_index()
    concepts = list(dict.fromkeys(mean["concept"]))
    rows = []
    for method, part in mean.groupby("method", sort=False):
        part = part.set_index("concept")
        rows.append(
            [method]
            + [
                f"{part.loc[c, 'ood_score']:.2f} ({part.loc[c, 'id_score']:.2f})"
                for c in concepts
            ]
        )
    return _rst(["method (OOD (ID))", *concepts], rows)


# bench_training.py's estimators, as the Results page names them.
_LABELS = {
    "GenerativeInverter": "GenerativeInverter + search",
    "GenerativeInverter, encoder": "GenerativeInverter, encoder only",
    "EncoderBaseline": "EncoderBaseline (autoencoder)",
}


def training_table(path):
    """``bench_training.py``'s rows: per data set and estimator, mean ± std."""
    results = pd.read_csv(path)
    scores = ["rec_id", "rec_ood", "slot_id", "slot_ood"]
    out = []
    for dataset, part in results.groupby("dataset", sort=False):
        grouped = part.groupby("estimator", sort=False)
        mean, std, n = (
            grouped[scores].mean(),
            grouped[scores].std(ddof=0),
            grouped.size(),
        )
        fit = grouped["fit_s"].mean()
        rows = [
            [_LABELS.get(name, name)]
            + [_cell(mean.loc[name, c], std.loc[name, c], n[name]) for c in scores]
            + [f"{fit[name]:.0f} s"]
            for name in mean.index
        ]
        kept = part.dropna(subset=["renderer"])
        kept = kept[kept["estimator"] == "GenerativeInverter"]["renderer"]
        note = ", ".join(f"{k} {v}" for k, v in kept.value_counts().items())
        header = ["", "rec. R² ID", "rec. R² OOD", "slots ID", "slots OOD", "fit"]
        out.append(f"{dataset} (renderers kept: {note or '-'})\n\n{_rst(header, rows)}")
        per_seed = part[part["estimator"] == "GenerativeInverter"][["seed", "slot_ood"]]
        out.append(
            "GenerativeInverter + search, slots OOD per seed: "
            + ", ".join(f"{s}: {v:.3f}" for s, v in per_seed.itertuples(index=False))
        )
    return "\n\n".join(out)


def consistency_table(path):
    results = pd.read_csv(path)
    grouped = results.groupby(["consistency_weight", "way"], sort=False)
    mean, std = grouped.mean(numeric_only=True), grouped.std(ddof=0, numeric_only=True)
    ways = list(dict.fromkeys(results["way"]))
    rows = []
    for weight in dict.fromkeys(results["consistency_weight"]):
        rows.append(
            [f"{weight:g}"]
            + [
                _cell(
                    mean.loc[(weight, w), "ood_score"],
                    std.loc[(weight, w), "ood_score"],
                    2,
                )
                for w in ways
            ]
            + [
                _cell(
                    mean.loc[(weight, "encoder"), "id_score"],
                    std.loc[(weight, "encoder"), "id_score"],
                    2,
                )
            ]
        )
    return _rst(["consistency weight", *ways, "ID (encoder)"], rows)


def _log(path):
    return path.read_text()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    out = parser.parse_args(argv).out
    sections = [
        ("main job (digits)", out / "digits", compare_table),
        ("data efficiency", out / "data-efficiency", efficiency_table),
        ("defaults (balls, sprites-l16, digits)", out / "defaults.csv", training_table),
        ("MLP renderer named", out / "renderers.csv", training_table),
        ("three balls", out / "three-balls.csv", training_table),
        ("overlap penalty", out / "overlap-penalty.csv", training_table),
        ("sprites", out / "sprites", compare_table),
        ("sprites: concepts", out / "sprites", concept_table),
        ("object scenes", out / "objects", compare_table),
        ("object scenes: concepts", out / "objects", concept_table),
        ("object scenes: where each identity lives", out / "object-slots.log", _log),
        ("object scenes at 16 px", out / "object-slots-16.log", _log),
        ("object scenes: background drawn apart", out / "object-background.log", _log),
        ("the same, 40 epochs", out / "object-background-40.log", _log),
        ("the same, as an estimator", out / "object-background-estimator.log", _log),
        ("estimator as the loop", out / "object-background-as-loop.log", _log),
        ("40 epochs, KL 0.2", out / "object-background-40-kl0.2.log", _log),
        ("40 epochs, KL 0.5", out / "object-background-40-kl0.5.log", _log),
        ("40 epochs, KL 1", out / "object-background-40-kl1.log", _log),
        ("KL 0.5, seed 1", out / "object-background-40-kl0.5-seed1.log", _log),
        ("which initializations separate", out / "object-inits.log", _log),
        ("the same, slots of 12", out / "object-inits-12.log", _log),
        ("transformer, 16 px, KL 0.05", out / "object-transformer-16-kl0.05.log", _log),
        ("transformer, 16 px, KL 0.5", out / "object-transformer-16-kl0.5.log", _log),
        ("the recipe's decoder, 16 px", out / "object-masked-16.log", _log),
        ("transformer, 16 px, 120 epochs", out / "object-transformer-16-120.log", _log),
        ("transformer, 16 px, replay", out / "object-transformer-16-replay.log", _log),
        ("two objects", out / "object-two.log", _log),
        ("transformer, 32 px, KL 0.05", out / "object-transformer-32-kl0.05.log", _log),
        ("transformer, 32 px, KL 0.5", out / "object-transformer-32-kl0.5.log", _log),
        ("sprites-l16, shared + consistency", out / "sprites-l16.csv", training_table),
        ("shared renderer", out / "shared.csv", training_table),
        ("consistency and restarts", out / "consistency.csv", consistency_table),
        ("sprites, 80 epochs", out / "sprites-80", compare_table),
        ("sprites, 160 epochs", out / "sprites-160", compare_table),
    ]
    for title, path, table in sections:
        done = (path / "summary.csv").exists() if path.is_dir() else path.exists()
        if done:
            print(f"\n### {title}\n\n{table(path)}")
    log = out / "parallel.log"
    if log.exists():
        print(f"\n### threads and worker processes\n\n{log.read_text()}")


if __name__ == "__main__":
    main()
