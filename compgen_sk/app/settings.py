"""The settings of a comparison: what it trains on and how, checked before any work.

:class:`Settings` holds them (the defaults are the CPU main job);
:func:`check_settings` validates them, for the command line and the Python API
alike; :data:`DATASETS` names the data sets a comparison can draw.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path

from .._concepts import FLOAT32_MAX
from .._sklearn_compat import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from .._torch import resolve_device
from ..datasets import (
    load_pug,
    make_additive,
    make_digit_compositions,
    make_object_scenes,
    make_sprites,
)
from ..estimators import GenerativeInverter
from .methods import METHODS


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


def _objects(s, seed):
    size = s.image_size or 32
    return make_object_scenes(s.n_samples, image_size=size, random_state=seed)


def _additive(s, seed):
    return make_additive(s.n_samples, split="all", random_state=seed)


def _pug(s, seed):
    return load_pug(
        s.data_dir, image_size=s.image_size or 32, n_samples=s.n_samples,
        random_state=seed,
    )  # fmt: skip


#: The data sets a comparison runs on, each drawn for a seed.
DATASETS = {
    "digits": _digits,
    "sprites": _sprites,
    "objects": _objects,
    "additive": _additive,
    "pug": _pug,
}
#: The readouts a comparison's probe can use.
PROBES = ("mlp", "linear")
#: Slot dimension per dataset when the settings leave it to the dataset.
SLOT_DIMS = {"digits": 12, "sprites": 6, "objects": 12, "additive": 12, "pug": 12}


@dataclass
class Settings:
    """What a comparison trains and how; the defaults are the CPU main job.

    Parameters
    ----------
    dataset : {"digits", "sprites", "objects", "additive", "pug"}
        Dataset the methods are compared on (``"objects"``:
        :func:`~compgen_sk.datasets.make_object_scenes`).
    n_samples : int
        Images generated (ID and OOD together).
    image_size : int or None
        Image side of sprites, object scenes and PUG; digit side for
        "digits"; None: the dataset's default.
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
#: The 64 px runs for a GPU that a comparison prints, by data set: the
#: sprites setting of Wiedemer et al. (300 epochs) and object scenes at the
#: size of the paper's PUG splits (about 20,000 images).
GPU_COMMANDS = {
    "sprites": (
        "compgen-sk compare --dataset sprites --image-size 64 --slot-dim 6 "
        "--epochs 300 --n-samples 20000 --device cuda"
    ),
    "objects": (
        "compgen-sk compare --dataset objects --image-size 64 --epochs 200 "
        "--n-samples 20000 --device cuda"
    ),
}
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
    for value in s.generator_params.values():  # decoder, encoder or search objects
        if hasattr(value, "_validate_params"):
            value._validate_params()
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
