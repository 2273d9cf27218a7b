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
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from numbers import Integral, Real
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import ProgressBar

from .._concepts import FLOAT32_MAX
from .._sklearn_compat import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from .._torch import n_cores, resolve_device
from ..datasets import load_pug, make_additive, make_digit_compositions, make_sprites
from ..estimators import GenerativeInverter
from ..probe import SlotProbe
from .methods import METHODS, generator


def _digits(s, seed):
    return make_digit_compositions(
        s.n_samples,
        digit_size=s.image_size or 12,
        jitter=1,
        colored=False,
        holdout_fraction=0.5,
        split="all",
        random_state=seed,
    )


def _sprites(s, seed):
    size = s.image_size or 32
    return make_sprites(s.n_samples, image_size=size, split="all", random_state=seed)


def _additive(s, seed):
    return make_additive(s.n_samples, split="all", random_state=seed)


def _pug(s, seed):
    return load_pug(
        s.data_dir, image_size=s.image_size or 32, n_samples=s.n_samples,
        random_state=seed,
    )  # fmt: skip


#: The data sets a comparison runs on, each drawn for a seed.
DATASETS = {"digits": _digits, "sprites": _sprites, "additive": _additive, "pug": _pug}
PROBES = ("mlp", "linear")
#: Slot dimension per dataset when the settings leave it to the dataset.
SLOT_DIMS = {"digits": 12, "sprites": 6, "additive": 12, "pug": 12}


@dataclass
class Settings:
    """What a comparison trains and how; the defaults are the CPU main job.

    Parameters
    ----------
    dataset : {"digits", "sprites", "additive", "pug"}
        Dataset the methods are compared on.
    n_samples : int
        Images generated (ID and OOD together).
    image_size : int or None
        Sprite / PUG image side; digit side for "digits"; None: the dataset's
        default.
    methods : tuple of str
        Keys of :data:`METHODS`.
    epochs : int
        Training epochs of every model (replay trains as many).
    slot_dim : int or None
        Dimension of each slot, for every method; None: the dataset's default
        (:data:`SLOT_DIMS`: 6 for sprites, as Wiedemer et al., else 12).
    lr : float
        Learning rate of every model.
    search_steps : int
        Gradient-search steps per image for the methods with search.
    probe : {"mlp", "linear"}
        Readout of the concepts from the slots.
    device : str
        Torch device on which every model trains and infers.
    seeds : tuple of int
        One full comparison per seed (data, initialization, probes); results
        are reported as mean ± std over seeds.
    n_train : tuple of int or None
        Data efficiency: train every method on the first ``n`` ID training
        images, for each ``n``; None trains on all of them.
    n_jobs : int or None
        Seeds run side by side in this many worker processes, each fit on one
        core (results do not depend on it); None is 1, -1 every core.
    data_dir : str or None
        PUG folder.
    progress : bool
        Progress bars on training and search (one seed at a time only).
    generator_params : dict
        Further parameters of the generative model that the generative and
        replay methods share, e.g. ``{"consistency_weight": 0.1}``.
    """

    dataset: str = "digits"
    n_samples: int = 6000
    image_size: int | None = None
    methods: tuple = tuple(METHODS)
    epochs: int = 40
    slot_dim: int | None = None
    lr: float = 1e-3
    search_steps: int = 100
    probe: str = "mlp"
    device: str = "cpu"
    seeds: tuple = (0, 1, 2)
    n_train: tuple | None = None
    n_jobs: int | None = None
    data_dir: str | None = None
    progress: bool = True
    generator_params: dict = field(default_factory=dict)


_POSITIVE = [Interval(Integral, 1, None, closed="left")]
_SETTINGS_CONSTRAINTS = {
    "dataset": [StrOptions(set(DATASETS))],
    "n_samples": _POSITIVE,
    "image_size": [*_POSITIVE, None],
    "methods": [tuple, list],
    "epochs": _POSITIVE,
    "slot_dim": [*_POSITIVE, None],
    "lr": [Interval(Real, 0, FLOAT32_MAX, closed="right")],
    "search_steps": [Interval(Integral, 0, None, closed="left")],
    "probe": [StrOptions(set(PROBES))],
    "device": [str],
    "seeds": [tuple, list],
    "n_train": [tuple, list, None],
    "n_jobs": [
        Interval(Integral, 1, None, closed="left"),
        Interval(Integral, None, -1, closed="right"),
        None,
    ],
    "data_dir": [str, os.PathLike, None],
    "progress": ["boolean"],
    "generator_params": [dict],
}
#: The sprites setting of Wiedemer et al. (64 px, 300 epochs), for a GPU.
SPRITES_64PX = (
    "compgen-sk compare --dataset sprites --image-size 64 --slot-dim 6 "
    "--epochs 300 --n-samples 20000 --device cuda"
)
#: Files that a comparison writes into its output folder.
OUTPUT_FILES = (
    "results.csv",
    "concept_scores.csv",
    "summary.csv",
    "scores.png",
    "ood_reconstructions.png",
    "replay_samples.png",
    "slot_renderings.png",
    "data_efficiency.png",
)
# Generator parameters that the comparison sets itself, from other settings.
_SET_BY_COMPARE = {
    "n_slots",
    "slot_dim",
    "max_epochs",
    "lr",
    "device",
    "random_state",
    "callbacks",
    "search",
    "verbose",
}


def check_settings(settings, out=None):
    """Check every setting and the output folder before any data or training.

    Raises ValueError naming the first bad setting; creates ``out`` (when
    given) and makes sure that files can be written there, so that a run never
    fails after its training.

    Parameters
    ----------
    settings : Settings
        The settings to check.
    out : str, Path or None, default=None
        Output folder of the run; None checks no folder.
    """
    s = settings
    validate_parameter_constraints(_SETTINGS_CONSTRAINTS, vars(s), "Settings")
    _check_list("methods", s.methods, lambda m: m in METHODS, f"any of {list(METHODS)}")
    _check_list("seeds", s.seeds, lambda v: _is_int(v, 0), "integers >= 0")
    if s.n_train is not None:
        _check_list("n_train", s.n_train, lambda v: _is_int(v, 1), "integers >= 1")
    resolve_device(s.device)
    if s.image_size is not None and s.dataset == "additive":
        raise ValueError("image_size does not apply to dataset 'additive'.")
    if (s.dataset == "pug") != (s.data_dir is not None):
        raise ValueError(
            "dataset 'pug' needs --data-dir, a local copy of PUG."
            if s.data_dir is None
            else f"data_dir applies to dataset 'pug' only, not to {s.dataset!r}."
        )
    if s.data_dir is not None and not Path(s.data_dir).is_dir():
        raise ValueError(f"data_dir {str(s.data_dir)!r} is not an existing folder.")
    clash = sorted(set(s.generator_params) & _SET_BY_COMPARE)
    if clash:
        raise ValueError(
            f"generator_params must not set {clash}: the comparison sets them "
            "from its own settings (epochs, slot_dim, lr, device, seeds, …)."
        )
    unknown = sorted(
        set(s.generator_params) - set(GenerativeInverter._parameter_constraints)
    )
    if unknown:
        raise ValueError(
            f"generator_params has parameters that GenerativeInverter does not "
            f"take: {unknown}."
        )
    validate_parameter_constraints(
        GenerativeInverter._parameter_constraints,
        s.generator_params,
        "GenerativeInverter",
    )
    if out is not None:
        if not str(out).strip():
            raise ValueError("The output folder is empty; name a folder.")
        _check_writable(Path(out))


def _is_int(value, low):
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= low


def _check_list(name, values, valid, what):
    """``values`` must be a non-empty tuple or list of distinct valid items."""
    if not values:
        raise ValueError(f"{name} must be a non-empty list of {what}, got {values!r}.")
    bad = [v for v in values if not valid(v)]
    if bad:
        raise ValueError(f"{name} must be {what}; got {bad}.")
    if len(set(values)) != len(values):
        repeated = sorted({v for v in values if list(values).count(v) > 1})
        raise ValueError(f"{name} are repeated: {repeated}; give each once.")


def _check_writable(out):
    if out.exists() and not out.is_dir():
        raise ValueError(f"The output folder {str(out)!r} is an existing file.")
    for name in OUTPUT_FILES:
        target = out / name
        if target.exists() and (not target.is_file() or not os.access(target, os.W_OK)):
            raise ValueError(
                f"Cannot write {str(target)!r}: it is a folder or a read-only file."
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise ValueError(
            f"Cannot write to the output folder {str(out)!r}: {exc.strerror or exc}."
        ) from exc


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
    if split.exchangeable and seed == settings.seeds[0]:
        log(
            "Objects of one kind: slots are matched to objects per sample; the "
            "additive generator renders all slots with one shared renderer and "
            "adds compositional consistency after a third of the epochs. "
            f"At 64 px on a GPU: {SPRITES_64PX}"
        )
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

    Parameters
    ----------
    results : DataFrame
        As returned by :func:`run_comparison`.

    Returns
    -------
    summary : DataFrame
        ``method``, ``description``, ``n_train``, ``n_seeds``, then
        ``<score>`` (the mean) and ``<score>_std`` (population standard
        deviation, 0 for one seed) for every score column.
    """
    keys = ["method", "description", "n_train"]
    grouped = results.groupby(keys, sort=False)[_SCORES]
    mean = grouped.mean()
    std = grouped.std(ddof=0).add_suffix("_std")
    count = grouped.size().rename("n_seeds")
    return pd.concat([count, mean, std], axis=1).reset_index()


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
    if summary["n_train"].nunique() > 1:
        table.insert(1, "n_train", summary["n_train"])
    return table.to_string(index=False)


__all__ = [
    "COLUMNS",
    "CONCEPT_COLUMNS",
    "DATASETS",
    "METHODS",
    "Comparison",
    "Settings",
    "check_settings",
    "evaluate",
    "generator",
    "load_split",
    "run_comparison",
    "summarize",
]
