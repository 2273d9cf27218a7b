"""The main job: generative vs non-generative perception on held-out combinations.

:func:`run_comparison` trains every method on the in-domain (ID) part of a dataset,
reads the ground-truth concepts out of each method's slots with a
:class:`~compgen_sk.SlotProbe` fitted on ID slots, and scores the probe on unseen
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

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import ProgressBar

from ._concepts import EXCHANGEABLE
from ._torch import resolve_device
from .datasets import load_pug, make_additive, make_digit_compositions, make_sprites
from .estimators import EncoderBaseline, GenerativeInverter, ReplayEncoder
from .estimators._base import check_parameters
from .probe import SlotProbe

DATASETS = ("digits", "sprites", "additive", "pug")
METHODS = {
    "encoder-autoencoder": "EncoderBaseline (autoencoder)",
    "encoder-supervised": "EncoderBaseline (supervised)",
    "generative-mlp": "GenerativeInverter, MLP decoder + search",
    "generative-encoder": "GenerativeInverter, encoder only",
    "generative-search": "GenerativeInverter + search",
    "replay": "ReplayEncoder",
    "replay-search": "ReplayEncoder + search",
}


@dataclass
class Settings:
    """What a comparison trains and how; the defaults are the CPU main job.

    Parameters
    ----------
    dataset : {"digits", "sprites", "additive", "pug"}
        Dataset the methods are compared on.
    n_samples : int
        Images generated (ID and OOD together; half of each for the generators).
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
        Gradient-search steps per image in ``transform`` for the methods with
        search (``generative-mlp``, ``generative-search``, ``replay-search``).
    probe : {"mlp", "linear"}
        Readout of the concepts from the slots.
    device : str
        Torch device on which every model trains and infers ("cpu", "cuda",
        "cuda:1", …).
    seeds : tuple of int
        One full comparison per seed (data, initialization, probes); results
        are reported as mean ± std over seeds.
    n_train : tuple of int or None
        Data efficiency: train every method on the first ``n`` ID training
        images, for each ``n``; None trains on all of them.
    n_jobs : int or None
        Threads reading PUG images.
    data_dir : str or None
        PUG folder.
    progress : bool
        Progress bars on training, replay and search.
    extra : dict
        Further constructor parameters given to every estimator.
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
    extra: dict = field(default_factory=dict)


PROBES = ("mlp", "linear")
#: Slot dimension per dataset when the settings leave it to the dataset.
SLOT_DIMS = {"digits": 12, "sprites": 6, "additive": 12, "pug": 12}
#: The renderer of every decoder a comparison trains: the one its published
#: tables were measured with (on digits in fixed cells, ``renderer="auto"``
#: keeps it too, and naming it saves the second fit that "auto" costs).
RENDERER = "mlp"
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
# Learning rates beyond float32's range overflow in the optimizer.
_MAX_LR = float(np.finfo(np.float32).max)


def _is_int(value, low):
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= low


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
    if s.dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {s.dataset!r}.")
    _check_list("methods", s.methods, lambda m: m in METHODS, f"any of {list(METHODS)}")
    for name, low in (("n_samples", 1), ("epochs", 1)):
        if not _is_int(getattr(s, name), low):
            raise ValueError(
                f"{name} must be an integer >= {low}, got {getattr(s, name)!r}."
            )
    if s.slot_dim is not None and not _is_int(s.slot_dim, 1):
        raise ValueError(
            f"slot_dim must be an integer >= 1 or None, got {s.slot_dim!r}."
        )
    if not _is_int(s.search_steps, 0):
        raise ValueError(
            f"search_steps must be an integer >= 0, got {s.search_steps!r}."
        )
    if not _is_real(s.lr) or not 0 < s.lr <= _MAX_LR:
        raise ValueError(f"lr must be a number in (0, {_MAX_LR:.3g}], got {s.lr!r}.")
    if s.probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {s.probe!r}.")
    _check_list("seeds", s.seeds, lambda v: _is_int(v, 0), "integers >= 0")
    if s.n_train is not None:
        _check_list("n_train", s.n_train, lambda v: _is_int(v, 1), "integers >= 1")
    resolve_device(s.device)
    _check_dataset_options(s)
    _check_extra(s)
    if out is not None:
        if not str(out).strip():
            raise ValueError("The output folder is empty; name a folder.")
        _check_writable(Path(out))


def _is_real(value):
    return isinstance(value, Real) and not isinstance(value, bool)


def _check_list(name, values, valid, what):
    """``values`` must be a non-empty tuple or list of distinct valid items."""
    if not isinstance(values, tuple | list) or not values:
        raise ValueError(f"{name} must be a non-empty list of {what}, got {values!r}.")
    bad = [v for v in values if not valid(v)]
    if bad:
        raise ValueError(f"{name} must be {what}; got {bad}.")
    if len(set(values)) != len(values):
        repeated = sorted({v for v in values if list(values).count(v) > 1})
        raise ValueError(f"{name} are repeated: {repeated}; give each once.")


def _check_dataset_options(s):
    """Options that apply to some data sets only must not be given to others."""
    if s.image_size is not None:
        if s.dataset == "additive":
            raise ValueError("image_size does not apply to dataset 'additive'.")
        if not _is_int(s.image_size, 1):
            raise ValueError(
                f"image_size must be a positive integer or None, got {s.image_size!r}."
            )
    if s.dataset != "pug":
        given = [name for name in ("data_dir", "n_jobs") if getattr(s, name)]
        if given:
            raise ValueError(
                f"{' and '.join(given)} apply to dataset 'pug' only, not to "
                f"{s.dataset!r}."
            )
        return
    if s.data_dir is None:
        raise ValueError("dataset 'pug' needs --data-dir, a local copy of PUG.")
    if not Path(s.data_dir).is_dir():
        raise ValueError(f"data_dir {str(s.data_dir)!r} is not an existing folder.")
    if s.n_jobs is not None and not (_is_int(s.n_jobs, -(2**31)) and s.n_jobs != 0):
        raise ValueError(f"n_jobs must be a nonzero integer or None, got {s.n_jobs!r}.")


# Constructor parameters that the comparison sets itself, from other settings.
_SET_BY_COMPARE = {
    "n_slots",
    "slot_dim",
    "max_epochs",
    "replay_epochs",
    "lr",
    "device",
    "random_state",
    "callbacks",
    "decoder",
    "search_steps",
    "objective",
    "generator",
    "verbose",
}


def _check_extra(s):
    """``extra`` parameters must be valid for every estimator the methods use."""
    if not isinstance(s.extra, dict):
        raise ValueError(f"extra must be a dict of parameters, got {s.extra!r}.")
    clash = sorted(set(s.extra) & _SET_BY_COMPARE)
    if clash:
        raise ValueError(
            f"extra must not set {clash}: the comparison sets them from its own "
            "settings (epochs, slot_dim, lr, device, seeds, search_steps, …)."
        )
    classes = (
        {EncoderBaseline} if any(m.startswith("encoder") for m in s.methods) else set()
    )
    if any(not m.startswith("encoder") for m in s.methods):
        classes.add(GenerativeInverter)
    if any(m.startswith("replay") for m in s.methods):
        classes.add(ReplayEncoder)
    for cls in sorted(classes, key=lambda c: c.__name__):
        unknown = sorted(set(s.extra) - set(cls().get_params(deep=False)))
        if unknown:
            raise ValueError(
                f"extra has parameters that {cls.__name__} does not take: {unknown}."
            )
        check_parameters(cls(**s.extra))


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
    description: str

    @property
    def exchangeable(self):
        """Whether the true slots are objects of one kind in no fixed order
        (sprites): probes then match slots per sample, and the additive
        generator renders every slot with one shared renderer and learns with
        compositional consistency."""
        return bool(self.y_train.attrs.get(EXCHANGEABLE, False))


def load_split(settings, seed):
    """Draw the dataset for ``seed`` and cut it into ID train (80 %), ID test
    (20 %) and OOD."""
    s = settings
    if s.dataset == "digits":
        bunch = make_digit_compositions(
            s.n_samples,
            digit_size=s.image_size or 12,
            jitter=1,
            colored=False,
            holdout_fraction=0.5,
            split="all",
            random_state=seed,
        )
    elif s.dataset == "sprites":
        bunch = make_sprites(
            s.n_samples, image_size=s.image_size or 32, split="all", random_state=seed
        )
    elif s.dataset == "additive":
        bunch = make_additive(s.n_samples, split="all", random_state=seed)
    elif s.dataset == "pug":
        bunch = load_pug(
            s.data_dir,
            image_size=s.image_size or 32,
            n_samples=s.n_samples,
            random_state=seed,
            n_jobs=s.n_jobs,
        )
    else:
        raise ValueError(f"dataset must be one of {DATASETS}, got {s.dataset!r}.")
    X = bunch.images if "images" in bunch else bunch.data
    concepts = bunch.concepts
    rng = np.random.default_rng(seed)
    in_domain = rng.permutation(np.flatnonzero(~bunch.ood))
    n_test = max(1, len(in_domain) // 5)
    test, train = in_domain[:n_test], in_domain[n_test:]
    ood = np.flatnonzero(bunch.ood)
    if len(ood) == 0 or len(train) < 10:
        raise ValueError(
            f"{s.dataset}: too few samples ({len(train)} ID train, {len(ood)} OOD); "
            "raise --n-samples."
        )
    return Split(
        X[train],
        X[test],
        X[ood],
        concepts.iloc[train].reset_index(drop=True),
        concepts.iloc[test].reset_index(drop=True),
        concepts.iloc[ood].reset_index(drop=True),
        bunch.latents.shape[1],
        bunch.DESCR,
    )


class Comparison:
    """Fits the methods of a comparison, sharing fits where methods share a model.

    ``generative-encoder`` and ``generative-search`` are one fitted
    GenerativeInverter with and without search; ``replay`` and ``replay-search``
    replay that same generator.
    """

    def __init__(self, settings, split, seed, log=None):
        self.settings = settings
        self.split = split
        self.seed = seed
        self.log = log or (lambda *args: None)
        self._fitted = {}
        self.fit_seconds = {}

    def _common(self):
        s = self.settings
        return dict(
            n_slots=self.split.n_slots,
            slot_dim=s.slot_dim or SLOT_DIMS[s.dataset],
            max_epochs=s.epochs,
            lr=s.lr,
            device=s.device,
            random_state=self.seed,
            callbacks=[ProgressBar()] if s.progress else None,
            **s.extra,
        )

    def _fit(self, key, make, *fit_args):
        if key not in self._fitted:
            estimator = make()
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
        return self._fitted[key]

    def fitted_generator(self):
        """The shared GenerativeInverter if a method has fitted it, else None."""
        return self._fitted.get("generator")

    def _decoder_params(self, shared=False):
        """``decoder_params`` of a method that trains a decoder, as a keyword
        dict that ``extra`` may replace: :data:`RENDERER`, and with ``shared``
        one renderer for all slots of exchangeable objects."""
        params = {"renderer": RENDERER}
        if shared and self.split.exchangeable:
            params["shared"] = True
        return {"decoder_params": params}

    def generator(self):
        s = self.settings
        common = {**self._decoder_params(shared=True), **self._common()}
        if self.split.exchangeable:
            # Objects of one kind need one code for all slots: one renderer
            # shared by the slots (_decoder_params), and compositional
            # consistency after a third of the epochs, as Wiedemer et al.
            wiedemer = {
                "consistency_weight": 1.0,
                "consistency_warmup": s.epochs // 3,
            }
            common = {**wiedemer, **common}
        return self._fit(
            "generator",
            lambda: GenerativeInverter(
                decoder="additive", search_steps=s.search_steps, **common
            ),
        )

    def estimator(self, method):
        """The fitted estimator of a method and the seconds its fit took."""
        s = self.settings
        common = self._common()
        if method == "encoder-autoencoder":
            common = {**self._decoder_params(), **common}
            est = self._fit(method, lambda: EncoderBaseline(**common))
        elif method == "encoder-supervised":
            est = self._fit(
                method,
                lambda: EncoderBaseline(objective="supervised", **common),
                self.split.y_train,
            )
        elif method == "generative-mlp":
            common = {**self._decoder_params(), **common}
            est = self._fit(
                method,
                lambda: GenerativeInverter(
                    decoder="mlp", search_steps=s.search_steps, **common
                ),
            )
        elif method in ("generative-encoder", "generative-search"):
            est = self.generator()
            seconds = self.fit_seconds["generator"]
            steps = 0 if method == "generative-encoder" else s.search_steps
            return _with_search(est, steps), seconds
        elif method in ("replay", "replay-search"):
            generator = self.generator()
            replay_common = {
                k: v
                for k, v in common.items()
                if k not in ("n_slots", "slot_dim", "max_epochs")
            }
            est = self._fit(
                "replay",
                lambda: ReplayEncoder(
                    generator, replay_epochs=s.epochs, **replay_common
                ),
            )
            seconds = self.fit_seconds["generator"] + self.fit_seconds["replay"]
            steps = s.search_steps if method == "replay-search" else 0
            return _with_search(est, steps), seconds
        else:
            raise ValueError(f"Unknown method {method!r}; use one of {list(METHODS)}.")
        return est, self.fit_seconds[method]


def _with_search(estimator, steps):
    return with_params(estimator, search_steps=steps)


def with_params(estimator, **params):
    """A shallow copy of a fitted estimator with other parameters.

    The copy shares the fitted networks, and the estimator given is left
    unchanged: a cheap way to change, e.g., the search settings of a fitted
    estimator.

    Parameters
    ----------
    estimator : estimator instance
        A scikit-learn estimator, usually fitted.
    **params
        Parameters of ``estimator`` to set on the copy.

    Returns
    -------
    estimator : estimator instance
        The copy with ``params`` set.
    """
    return copy.copy(estimator).set_params(**params)


def evaluate(settings, split, estimator, seed):
    """ID and OOD probe scores and the transform time per image, and under
    ``"concepts"`` each concept's ID and OOD score (a DataFrame with the
    columns ``concept``, ``id_score`` and ``ood_score``)."""
    estimator = with_params(estimator, verbose=int(settings.progress))
    slots_train = estimator.transform(split.X_train)
    slots_test = estimator.transform(split.X_test)
    start = time.perf_counter()
    slots_ood = estimator.transform(split.X_ood)
    per_image = (time.perf_counter() - start) / len(split.X_ood)
    probe = SlotProbe(settings.probe, random_state=seed)
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
        :data:`COLUMNS`: ``method``, ``description``, ``seed``, ``n_train``,
        ``id_score``, ``ood_score``, ``ood_reconstruction_r2``,
        ``fit_seconds``, ``transform_ms_per_image``. ``out`` receives it as
        ``results.csv``, its :func:`summarize` (mean and std over seeds) as
        ``summary.csv``, each concept's scores (whose means the scores are) as
        ``concept_scores.csv`` (:data:`CONCEPT_COLUMNS`), and figures: with
        ``n_train``,
        ``data_efficiency.png`` (OOD score against training-set size), else
        the scores and image figures of the last seed.

    Examples
    --------
    >>> from compgen_sk.compare import run_comparison
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
    rows, concepts, comparison = [], [], None
    for seed in settings.seeds:
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
        for n_train in settings.n_train or (None,):
            part = split if n_train is None else _first(split, n_train)
            comparison = Comparison(settings, part, seed, log)
            for method in settings.methods:
                tag = f"seed {seed}" + (f", n_train {n_train}" if n_train else "")
                log(f"[{tag}] {method}: {METHODS[method]}")
                estimator, seconds = comparison.estimator(method)
                row = {
                    "method": method,
                    "description": METHODS[method],
                    "seed": seed,
                    "n_train": len(part.X_train),
                }
                scores = evaluate(settings, part, estimator, seed)
                concepts.append(
                    scores.pop("concepts").assign(
                        method=method, seed=seed, n_train=row["n_train"]
                    )
                )
                row.update(scores)
                row["fit_seconds"] = seconds
                rows.append(row)
                log(
                    f"[{tag}] {method}: ID {row['id_score']:.3f}  OOD "
                    f"{row['ood_score']:.3f}  fit {seconds:.0f} s"
                )
    results = pd.DataFrame(rows)[COLUMNS]
    if out is not None:
        concept_scores = pd.concat(concepts, ignore_index=True)[CONCEPT_COLUMNS]
        from .plotting import comparison_figures, plot_data_efficiency

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        results.to_csv(out / "results.csv", index=False)
        concept_scores.to_csv(out / "concept_scores.csv", index=False)
        summary = summarize(results)
        summary.to_csv(out / "summary.csv", index=False)
        if settings.n_train:
            plot_data_efficiency(summary, out / "data_efficiency.png")
        else:
            comparison_figures(summary, comparison, out)
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


def _first(split, n_train):
    """The split with only its first ``n_train`` ID training images (they are
    in random order already)."""
    return replace(
        split,
        X_train=split.X_train[:n_train],
        y_train=split.y_train.iloc[:n_train].reset_index(drop=True),
    )


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
