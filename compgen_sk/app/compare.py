"""The main job: generative vs non-generative perception on held-out combinations.

:func:`run_comparison` trains every method (:data:`METHODS`) on the in-domain (ID)
part of a dataset, reads the ground-truth concepts out of each method's slots with
a :class:`~compgen_sk.SlotProbe` fitted on ID slots, and scores the probe on unseen
ID images and on out-of-domain (OOD) images — new combinations of the same
concepts (:ref:`background-metrics`). Every method is evaluated the same way.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import ProgressBar

from .._torch import n_cores, resolve_device
from ..probe import SlotProbe
from .methods import METHODS, generator
from .settings import (
    DATASETS,
    GPU_COMMANDS,
    OUTPUT_FILES,
    SLOT_DIMS,
    Settings,
    check_settings,
)


@dataclass
class Split:
    """ID training, ID test and OOD parts of a dataset, with their concepts."""

    X_train: np.ndarray
    X_test: np.ndarray
    X_ood: np.ndarray
    y_train: pd.DataFrame
    y_test: pd.DataFrame
    y_ood: pd.DataFrame
    n_slots: int
    exchangeable: bool
    background: bool
    description: str


def load_split(settings, seed):
    """Draw the dataset for ``seed`` and cut it into ID train (80 %), ID test
    (20 %) and OOD."""
    bunch = DATASETS[settings.dataset](settings, seed)
    X = bunch.images if "images" in bunch else bunch.data
    concepts = bunch.concepts
    rng = np.random.default_rng(seed)
    in_domain = rng.permutation(np.flatnonzero(~bunch.ood))
    n_test = max(1, len(in_domain) // 5)
    test, train = in_domain[:n_test], in_domain[n_test:]
    ood = np.flatnonzero(bunch.ood)
    if len(ood) == 0 or len(train) < 10:
        raise ValueError(
            f"{settings.dataset}: too few samples ({len(train)} ID train, "
            f"{len(ood)} OOD); raise --n-samples."
        )
    return Split(
        X[train],
        X[test],
        X[ood],
        concepts.iloc[train].reset_index(drop=True),
        concepts.iloc[test].reset_index(drop=True),
        concepts.iloc[ood].reset_index(drop=True),
        bunch.latents.shape[1],
        bunch.exchangeable_slots,
        bunch.background_slot,
        bunch.DESCR,
    )


class Comparison:
    """Fits the methods of one seed, each fit once: methods that share a model
    (:func:`~compgen_sk.app.methods.generator`) reuse it."""

    def __init__(self, settings, split, seed, log=None):
        self.settings = settings
        self.split = split
        self.seed = seed
        self.log = log or (lambda *args: None)
        self._fitted = {}
        self.fit_seconds = {}

    def fit(self, key, estimator, *fit_args):
        """``estimator`` with the comparison's settings, fitted on the ID
        training images once under ``key``; and the seconds its fit took.
        Convergence warnings become log lines."""
        if key not in self._fitted:
            s = self.settings
            common = dict(
                n_slots=self.split.n_slots,
                slot_dim=s.slot_dim or SLOT_DIMS[s.dataset],
                max_epochs=s.epochs,
                lr=s.lr,
                device=s.device,
                random_state=self.seed,
                callbacks=[ProgressBar()] if s.progress else None,
            )
            own = estimator.get_params(deep=False)
            estimator.set_params(**{k: v for k, v in common.items() if k in own})
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                estimator.fit(self.split.X_train, *fit_args)
            self.fit_seconds[key] = time.perf_counter() - start
            for warning in caught:  # one line each in the log, not a traceback
                if issubclass(warning.category, ConvergenceWarning):
                    self.log(f"  note ({key}): {warning.message}")
                else:
                    warnings.warn_explicit(
                        warning.message,
                        warning.category,
                        warning.filename,
                        warning.lineno,
                    )
            self._fitted[key] = estimator
        return self._fitted[key], self.fit_seconds[key]

    def fitted_generator(self):
        """The shared GenerativeInverter if a method has fitted it, else None."""
        return self._fitted.get("generator")

    def estimator(self, method):
        """The fitted estimator of a method and the seconds its fit took."""
        return METHODS[method].fit(self)


def evaluate(settings, split, estimator, seed):
    """ID and OOD probe scores and the transform time per image, and under
    ``"concepts"`` each concept's ID and OOD score (a DataFrame with the
    columns ``concept``, ``id_score`` and ``ood_score``)."""
    estimator = copy.copy(estimator).set_params(verbose=int(settings.progress))
    slots_train = estimator.transform(split.X_train)
    slots_test = estimator.transform(split.X_test)
    start = time.perf_counter()
    slots_ood = estimator.transform(split.X_ood)
    per_image = (time.perf_counter() - start) / len(split.X_ood)
    matching = "per_sample" if split.exchangeable else "global"
    probe = SlotProbe(settings.probe, matching=matching, random_state=seed)
    probe.fit(slots_train, split.y_train)
    has_decoder = estimator.decoder_ is not None
    concepts = pd.DataFrame(
        {
            "id_score": probe.concept_scores(slots_test, split.y_test),
            "ood_score": probe.concept_scores(slots_ood, split.y_ood),
        }
    )
    scores = {
        # probe.score: the mean over concepts
        "id_score": float(np.mean(concepts["id_score"].to_numpy())),
        "ood_score": float(np.mean(concepts["ood_score"].to_numpy())),
        "transform_ms_per_image": 1000 * per_image,
        # Not applicable (NaN, an empty cell in results.csv) without a decoder.
        "ood_reconstruction_r2": (
            estimator.score(split.X_ood) if has_decoder else np.nan
        ),
    }
    bad = {
        name: value
        for name, value in scores.items()
        if not math.isfinite(value) and (has_decoder or name != "ood_reconstruction_r2")
    }
    if bad:
        raise ValueError(
            f"{type(estimator).__name__} gave non-finite results {bad}; nothing was "
            "written. Lower the learning rate (--lr) or check the data."
        )
    scores["concepts"] = concepts.rename_axis("concept").reset_index()
    return scores


def _first(split, n_train):
    """The split with only its first ``n_train`` ID training images (they are
    in random order already)."""
    return replace(
        split,
        X_train=split.X_train[:n_train],
        y_train=split.y_train.iloc[:n_train].reset_index(drop=True),
    )


def run_seed(settings, seed, log):
    """Every method and training-set size of one seed: result rows, concept
    scores, and the last :class:`Comparison` (for the figures)."""
    split = load_split(settings, seed)
    log(
        f"[seed {seed}] {split.description} ID train {len(split.X_train)}, ID "
        f"test {len(split.X_test)}, OOD {len(split.X_ood)}."
    )
    if seed == settings.seeds[0]:  # what the whole comparison does, said once
        if split.exchangeable:
            log(
                "Objects of one kind: slots are matched to objects per sample; "
                "the additive generator renders all slots with one shared "
                "renderer and adds compositional consistency after a third of "
                "the epochs."
            )
        if split.background:
            log(
                "An object in front of a background: the generator draws the "
                "background from slot 0 and the object from slot 1 with a mask "
                "over it, in a VAE."
            )
        if settings.dataset in GPU_COMMANDS:
            log(f"At 64 px on a GPU: {GPU_COMMANDS[settings.dataset]}")
    largest = max(settings.n_train or (0,))
    if largest > len(split.X_train):  # before any training
        raise ValueError(
            f"n_train={largest} exceeds the {len(split.X_train)} ID training "
            "images; raise --n-samples."
        )
    rows, concepts, comparison = [], [], None
    for n_train in settings.n_train or (None,):
        part = split if n_train is None else _first(split, n_train)
        comparison = Comparison(settings, part, seed, log)
        for method in settings.methods:
            tag = f"seed {seed}" + (f", n_train {n_train}" if n_train else "")
            log(f"[{tag}] {method}: {METHODS[method].description}")
            estimator, seconds = comparison.estimator(method)
            row = {
                "method": method,
                "description": METHODS[method].description,
                "seed": seed,
                "n_train": len(part.X_train),
            }
            scores = evaluate(settings, part, estimator, seed)
            concepts.append(
                scores.pop("concepts").assign(
                    method=method, seed=seed, n_train=row["n_train"]
                )
            )
            row.update(scores, fit_seconds=seconds)
            rows.append(row)
            log(
                f"[{tag}] {method}: ID {row['id_score']:.3f}  OOD "
                f"{row['ood_score']:.3f}  fit {seconds:.0f} s"
            )
    return rows, concepts, comparison


def run_comparison(settings=None, out=None, log=print, **overrides):
    """Train and evaluate every method; write ``results.csv`` and figures to ``out``.

    Parameters
    ----------
    settings : Settings or None
        None uses the defaults; ``overrides`` replace single fields.
    out : str, Path or None
        Folder for ``results.csv`` and the figures; None writes nothing.
    log : callable or None, default=print
        Receives progress lines; None is silent.
    **overrides
        Fields of :class:`Settings` to replace.

    Returns
    -------
    results : DataFrame
        One row per method, seed and training-set size, with the columns
        :data:`COLUMNS`. ``out`` receives it as ``results.csv``, its
        :func:`summarize` (mean and std over seeds) as ``summary.csv``, each
        concept's scores (whose means the scores are) as
        ``concept_scores.csv`` (:data:`CONCEPT_COLUMNS`), and figures: with
        ``n_train``, ``data_efficiency.png`` (OOD score against training-set
        size), else the scores and image figures of the last seed.

    Examples
    --------
    >>> from compgen_sk.app.compare import run_comparison
    >>> results = run_comparison(dataset="additive", n_samples=300, epochs=2,
    ...                          methods=("encoder-autoencoder",),
    ...                          search_steps=5, seeds=(0, 1), progress=False,
    ...                          log=None)
    >>> results[["method", "seed"]].values.tolist()
    [['encoder-autoencoder', 0], ['encoder-autoencoder', 1]]
    """
    settings = Settings(**{**(vars(settings) if settings else {}), **overrides})
    check_settings(settings, out)
    log = log or (lambda *args: None)
    n_workers = min(len(settings.seeds), n_cores(settings.n_jobs))
    if n_workers > 1 and resolve_device(settings.device).type == "cpu":
        # Progress bars of processes side by side would overwrite each other.
        quiet = replace(settings, progress=False)
        per_seed = joblib.Parallel(n_jobs=n_workers, backend="loky")(
            joblib.delayed(run_seed)(quiet, seed, log) for seed in settings.seeds
        )
    else:
        per_seed = [run_seed(settings, seed, log) for seed in settings.seeds]
    rows = [row for seed_rows, _, _ in per_seed for row in seed_rows]
    concepts = [table for _, tables, _ in per_seed for table in tables]
    results = pd.DataFrame(rows)[COLUMNS]
    if out is not None:
        from .plotting import comparison_figures, plot_data_efficiency

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        results.to_csv(out / "results.csv", index=False)
        concept_scores = pd.concat(concepts, ignore_index=True)[CONCEPT_COLUMNS]
        concept_scores.to_csv(out / "concept_scores.csv", index=False)
        summary = summarize(results)
        summary.to_csv(out / "summary.csv", index=False)
        if settings.n_train:
            plot_data_efficiency(summary, out / "data_efficiency.png")
        else:
            comparison_figures(summary, per_seed[-1][2], out)
    return results


#: Columns of ``results.csv``: one row per method, seed and training-set size.
COLUMNS = [
    "method",
    "description",
    "seed",
    "n_train",
    "id_score",
    "ood_score",
    "ood_reconstruction_r2",
    "fit_seconds",
    "transform_ms_per_image",
]
#: Columns of ``concept_scores.csv``: each concept's probe score, one row per
#: method, seed, training-set size and concept (``results.csv``'s ``id_score``
#: and ``ood_score`` are their means over concepts).
CONCEPT_COLUMNS = ["method", "seed", "n_train", "concept", "id_score", "ood_score"]
_SCORES = [
    "id_score",
    "ood_score",
    "ood_reconstruction_r2",
    "fit_seconds",
    "transform_ms_per_image",
]


def summarize(results):
    """Mean and standard deviation over seeds, per method and training-set size.

    Seeds draw their own data, so where every method trains on all ID images
    the number of them can differ between seeds; rows are therefore grouped by
    the rank of their training-set size within their method and seed (the
    sizes of ``--n-train``, smallest first), not by the size itself.

    Parameters
    ----------
    results : DataFrame
        As returned by :func:`run_comparison`.

    Returns
    -------
    summary : DataFrame
        ``method``, ``description``, ``n_train`` (the mean over seeds, rounded),
        ``n_seeds``, then ``<score>`` (the mean) and ``<score>_std``
        (population standard deviation, 0 for one seed) for every score column.
    """
    size = results.groupby(["method", "seed"])["n_train"].rank(method="dense")
    grouped = results.assign(size=size).groupby(
        ["method", "description", "size"], sort=False
    )
    mean = grouped[["n_train", *_SCORES]].mean()
    mean["n_train"] = mean["n_train"].round().astype(int)
    std = grouped[_SCORES].std(ddof=0).add_suffix("_std")
    count = grouped.size().rename("n_seeds")
    summary = pd.concat([count, mean, std], axis=1).reset_index()
    columns = ["method", "description", "n_train", "n_seeds", *_SCORES]
    return summary[columns + [c + "_std" for c in _SCORES]]


def format_table(results):
    """The results as an aligned text table, mean ± std over seeds."""
    summary = summarize(results)

    def fmt(column, spec):
        return [
            spec.format(m) + ("" if n == 1 else " ± " + spec.format(sd))
            for m, sd, n in zip(
                summary[column], summary[column + "_std"], summary["n_seeds"]
            )
        ]

    table = pd.DataFrame(
        {
            "method": summary["method"],
            "ID score": fmt("id_score", "{:.3f}"),
            "OOD score": fmt("ood_score", "{:.3f}"),
            "fit time": [f"{v:.0f} s" for v in summary["fit_seconds"]],
            "transform/image": [
                f"{v:.2f} ms" for v in summary["transform_ms_per_image"]
            ],
        }
    )
    if summary["method"].duplicated().any():  # several training-set sizes
        table.insert(1, "n_train", summary["n_train"])
    return table.to_string(index=False)


__all__ = [
    "COLUMNS",
    "CONCEPT_COLUMNS",
    "DATASETS",
    "METHODS",
    "OUTPUT_FILES",
    "Comparison",
    "Settings",
    "check_settings",
    "evaluate",
    "generator",
    "load_split",
    "run_comparison",
    "summarize",
]
