"""Saving and loading fitted slot estimators without pickle.

A file holds plain data only: the constructor parameters and fitted attributes
as JSON text, the numeric fitted arrays and the modules' weights as tensors
(``state_dict``), and a SHA-256 digest of all of it. :func:`load` reads it with
``torch.load(weights_only=True)``, which refuses anything but tensors and plain
containers, so that opening a file cannot run code; it then rebuilds the
networks from the parameters and loads the weights into them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from sklearn.frozen import FrozenEstimator
from skorch.history import History
from torch import nn

from .._torch import resolve_device, seeded
from .._version import __version__
from ..decoders import AdditiveDecoder, MaskedDecoder, MLPDecoder, TransformerDecoder
from ..encoders import ConvEncoder, MLPEncoder
from ..search import GradientSearch
from .baseline import EncoderBaseline
from .generative import GenerativeInverter
from .replay import ReplayEncoder

__all__ = ["load", "save"]

_FORMAT = "compgen-sk estimator"
_FORMAT_VERSION = 1
_CLASSES = {
    cls.__name__: cls for cls in (GenerativeInverter, EncoderBaseline, ReplayEncoder)
}
# Parameter objects (decoders, encoders, search), stored as their parameters.
_SPECS = {
    cls.__name__: cls
    for cls in (
        AdditiveDecoder,
        MaskedDecoder,
        TransformerDecoder,
        MLPDecoder,
        ConvEncoder,
        MLPEncoder,
        GradientSearch,
    )
}
# Fitted attributes that are rebuilt rather than stored as data.
_REBUILT = ("net_", "generator_", "encoder_", "decoder_")


def save(estimator, path):
    """Save a fitted slot estimator to ``path`` without pickle.

    The file holds the constructor parameters and fitted attributes as JSON,
    the weights as tensors and a digest of both; :func:`load` restores an
    estimator whose ``transform`` equals the original's bit for bit, on the
    same device type. Unlike :mod:`pickle` (and :func:`joblib.dump`), loading
    such a file cannot run code, so it is the way to share a fitted model, or
    to open one from someone else. Use pickle for what this format cannot
    hold: an estimator with a user-defined encoder module, or a whole
    :class:`~sklearn.pipeline.Pipeline`.

    Callbacks act in ``fit`` only and are not saved (a warning says so); the
    loaded estimator has ``callbacks=None``. A ``RandomState`` instance as
    ``random_state`` is saved as None, also with a warning.

    Parameters
    ----------
    estimator : GenerativeInverter, EncoderBaseline or ReplayEncoder
        A fitted estimator.
    path : str or path-like
        File to write (conventionally ``*.pt``); replaced if it exists.

    Examples
    --------
    >>> import os, tempfile
    >>> from compgen_sk import GenerativeInverter, GradientSearch, load, save
    >>> from compgen_sk.datasets import make_additive
    >>> X, _ = make_additive(100, n_slots=2, return_X_y=True, random_state=0)
    >>> model = GenerativeInverter(n_slots=2, slot_dim=2, max_epochs=2,
    ...                            search=GradientSearch(steps=5),
    ...                            random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.pt")
    >>> save(model, path)
    >>> (load(path).transform(X) == model.transform(X)).all()
    np.True_
    """
    if Path(path).is_dir():
        raise ValueError(f"{str(path)!r} is a folder; pass a file path to save to.")
    notes = []
    record = _record(estimator, notes)
    for note in dict.fromkeys(notes):  # once each, in order
        warnings.warn(note, UserWarning, stacklevel=2)
    torch.save(
        {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "library_version": __version__,
            "estimator": record,
            "sha256": _digest(record),
        },
        path,
    )


def load(path, *, device=None):
    """Load an estimator saved by :func:`save`.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.
    device : str, torch.device or None, default=None
        Where the loaded estimator computes (its ``device`` parameter). None
        keeps the saved device where it is available, takes ``"cuda"`` for a
        GPU index this machine lacks, and ``"cpu"`` on a machine without CUDA,
        so that a model fitted on a GPU loads anywhere.

    Returns
    -------
    estimator : GenerativeInverter, EncoderBaseline or ReplayEncoder
        Fitted, with the saved parameters, attributes and weights.

    Raises
    ------
    ValueError
        If the file is not a complete compgen-sk save file, holds anything but
        plain data and tensors, or was modified after it was written.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No file {str(path)!r} to load.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"Cannot read {str(path)!r}: it is truncated, corrupted or not a file "
            "written by compgen_sk.save (which writes a torch zip archive)."
        )
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"Refused to load {str(path)!r}: it holds objects other than tensors "
            "and plain data, so it is not a file written by compgen_sk.save (or "
            "was tampered with). Open pickle files only from sources you trust."
        ) from exc
    except (
        RuntimeError,
        EOFError,
        OSError,
        KeyError,
        IndexError,
        zipfile.BadZipFile,
    ) as exc:
        raise ValueError(
            f"Cannot read {str(path)!r}: it is truncated, corrupted or not a file "
            "written by compgen_sk.save."
        ) from exc
    if not isinstance(content, dict) or content.get("format") != _FORMAT:
        raise ValueError(f"{str(path)!r} is not a file written by compgen_sk.save.")
    if content.get("format_version") != _FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} has format version {content.get('format_version')!r}; "
            f"this compgen-sk ({__version__}) reads version {_FORMAT_VERSION}."
        )
    record = content.get("estimator")
    try:
        intact = content.get("sha256") == _digest(record)
    except (TypeError, KeyError, AttributeError, ValueError):
        intact = False
    if not intact:
        raise ValueError(
            f"{str(path)!r} was modified or corrupted after it was written: its "
            "content does not match its SHA-256 digest."
        )
    try:
        return _restore(record, device)
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{str(path)!r} is malformed: {exc!r}.") from exc


# ----------------------------------------------------------------------- saving


def _record(estimator, notes):
    """The plain-data record of a fitted estimator; ``notes`` collects what
    is left out, for warnings."""
    name = type(estimator).__name__
    if name not in _CLASSES or type(estimator) is not _CLASSES[name]:
        raise TypeError(
            f"save stores {sorted(_CLASSES)}; got {type(estimator).__name__}. Use "
            "pickle or joblib for other objects (and open them only from trusted "
            "sources)."
        )
    if not hasattr(estimator, "net_"):
        raise ValueError(
            f"This {name} instance is not fitted yet; fit it before saving it."
        )
    _check_architecture(estimator)
    arrays = {}
    params = {
        key: _encode_param(estimator, key, value, notes)
        for key, value in estimator.get_params(deep=False).items()
    }
    try:
        attributes = {
            key: _encode_value(value, arrays, key)
            for key, value in vars(estimator).items()
            if key.endswith("_") and not key.startswith("_") and key not in _REBUILT
        }
    except TypeError as exc:
        raise ValueError(
            f"A fitted attribute cannot be saved as plain data ({exc}); use "
            "pickle for this estimator."
        ) from exc
    record = {
        "class": name,
        "params": json.dumps(params),
        "attributes": json.dumps(attributes),
        "arrays": arrays,
        "state_dict": {
            key: tensor.detach().cpu().clone()
            for key, tensor in estimator.net_.module_.state_dict().items()
        },
        "history": json.dumps(estimator.net_.history.to_list(), default=_plain),
        "generator": None,
    }
    if isinstance(estimator, ReplayEncoder):
        record["generator"] = _record(estimator.generator_, notes)
    return record


def _check_architecture(estimator):
    """Refuse to save parameters that no longer describe the fitted networks
    (changed by ``set_params`` after ``fit``): ``load`` rebuilds the networks
    from the parameters."""
    fitted = estimator.net_.module_.state_dict()
    on_cpu = copy.copy(estimator)  # rebuilt on the CPU, wherever it was fitted
    on_cpu.device = "cpu"
    try:
        with seeded(0, "cpu"):
            candidate = on_cpu._fitted_candidate()
            rebuilt = on_cpu._new_net(candidate).initialize().module_.state_dict()
        same = {k: tuple(v.shape) for k, v in rebuilt.items()} == {
            k: tuple(v.shape) for k, v in fitted.items()
        }
    except (AttributeError, ValueError, TypeError, RuntimeError, StopIteration):
        same = False
    if not same:
        raise ValueError(
            f"The parameters of this {type(estimator).__name__} no longer describe "
            "its fitted networks (set_params after fit?): save rebuilds the "
            "networks from them. Restore the parameters of the fit, or refit."
        )


def _encode_param(estimator, key, value, notes):
    if key == "callbacks" and value:
        notes.append(
            "Callbacks act in fit only and are not saved; the loaded estimator has "
            "callbacks=None."
        )
        return None
    if key == "random_state" and isinstance(value, np.random.RandomState):
        notes.append(
            "A RandomState instance is not saved; the loaded estimator has "
            "random_state=None. Pass an int to keep refits reproducible."
        )
        return None
    if key == "generator" and value is not None:
        if value is estimator.generator_:
            return {"__fitted_generator__": True}
        if (
            isinstance(value, FrozenEstimator)
            and value.estimator is estimator.generator_
        ):
            return {"__fitted_generator__": True, "frozen": True}
        return {
            "__estimator__": type(value).__name__,
            "params": {
                k: _encode_param(value, k, v, notes)
                for k, v in value.get_params(deep=False).items()
            },
        }
    if type(value).__name__ in _SPECS and type(value) is _SPECS[type(value).__name__]:
        return {
            "__spec__": type(value).__name__,
            "params": {
                k: _encode_param(value, k, v, notes)
                for k, v in value.get_params(deep=False).items()
            },
        }
    if isinstance(value, nn.Module):
        raise ValueError(
            f"{key}={type(value).__name__}(...) is a user-defined module, which "
            "save cannot store as plain data. Use pickle (and open the file only "
            "from trusted sources), or a named encoder ('cnn', 'mlp')."
        )
    if isinstance(value, type) and issubclass(value, torch.optim.Optimizer):
        if getattr(torch.optim, value.__name__, None) is not value:
            raise ValueError(
                f"optimizer={value!r} is not in torch.optim; save stores torch's "
                "own optimizers only. Use pickle for others."
            )
        return {"__optimizer__": value.__name__}
    if isinstance(value, torch.device):
        return {"__device__": str(value)}
    try:
        return _encode_value(value, None, key)
    except TypeError as exc:
        raise ValueError(
            f"The parameter {key}={value!r} cannot be saved as plain data; use "
            "pickle for this estimator."
        ) from exc


def _encode_value(value, arrays, key):
    """JSON-ready form of a parameter or fitted attribute; numeric arrays go to
    ``arrays`` (as tensors) when it is given."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf" and arrays is not None:
            arrays[key] = torch.from_numpy(np.ascontiguousarray(value).copy())
            return {"__array__": key}
        if value.dtype.kind in "OU":
            return {"__object_array__": [_encode_value(v, None, key) for v in value]}
        return {"__list_array__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, tuple):
        items = [_encode_value(v, arrays, f"{key}.{i}") for i, v in enumerate(value)]
        return {"__tuple__": items}
    if isinstance(value, list):
        return [_encode_value(v, arrays, f"{key}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {
            "__dict__": {
                k: _encode_value(v, arrays, f"{key}.{k}") for k, v in value.items()
            }
        }
    raise TypeError(f"{key}: {type(value).__name__} is not plain data")


def _plain(value):
    """JSON fallback for history entries (numpy scalars, tensors)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return str(value)


def _digest(record):
    """SHA-256 of every JSON text and tensor of a record, in a fixed order."""
    sha = hashlib.sha256()

    def feed(item):
        if isinstance(item, dict):
            for key in sorted(item):
                sha.update(str(key).encode())
                feed(item[key])
        elif isinstance(item, str):
            sha.update(item.encode())
        elif isinstance(item, torch.Tensor):
            sha.update(str(item.dtype).encode() + str(tuple(item.shape)).encode())
            sha.update(item.contiguous().numpy().tobytes())
        elif item is None:
            sha.update(b"None")
        else:
            raise TypeError(f"unexpected {type(item).__name__} in a save file")

    feed(record)
    return sha.hexdigest()


# ---------------------------------------------------------------------- loading


def _restore(record, device):
    cls = _CLASSES[record["class"]]
    params = {k: _decode(v, None) for k, v in json.loads(record["params"]).items()}
    generator = None
    if record["generator"] is not None:
        generator = _restore(record["generator"], device)
    if isinstance(params.get("generator"), dict):
        spec = params["generator"]
        if spec.get("__fitted_generator__"):
            params["generator"] = (
                FrozenEstimator(generator) if spec.get("frozen") else generator
            )
        else:
            sub = _CLASSES[spec["__estimator__"]]
            params["generator"] = sub(
                **{k: _decode(v, None) for k, v in spec["params"].items()}
            )
    if device is None:
        device = params["device"]
        saved = torch.device(device)
        if saved.type == "cuda" and not torch.cuda.is_available():
            device = "cpu"
        elif saved.type == "cuda" and (saved.index or 0) >= torch.cuda.device_count():
            device = "cuda"
    resolve_device(device)
    params["device"] = device
    estimator = cls(**params)
    estimator._validate_params()
    arrays = record["arrays"]
    for key, value in json.loads(record["attributes"]).items():
        setattr(estimator, key, _decode(value, arrays))
    if generator is not None:
        estimator.generator_ = generator
    with seeded(0, device):  # initial weights are overwritten below
        net = estimator._new_net(estimator._fitted_candidate())
        net.initialize()
    try:
        net.module_.load_state_dict(record["state_dict"])
    except RuntimeError as exc:
        raise ValueError(
            f"The saved weights do not fit the {cls.__name__} that its parameters "
            f"describe: {exc}"
        ) from exc
    net.history = History(json.loads(record["history"]))
    estimator.net_ = net
    estimator._set_fitted_modules()
    return estimator


def _decode(value, arrays):
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__spec__" in value:
        params = {k: _decode(v, arrays) for k, v in value["params"].items()}
        return _SPECS[value["__spec__"]](**params)
    if "__array__" in value:
        return arrays[value["__array__"]].numpy()
    if "__object_array__" in value:
        return np.asarray(
            [_decode(v, arrays) for v in value["__object_array__"]], dtype=object
        )
    if "__list_array__" in value:
        return np.asarray(value["__list_array__"], dtype=np.dtype(value["dtype"]))
    if "__tuple__" in value:
        return tuple(_decode(v, arrays) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v, arrays) for k, v in value["__dict__"].items()}
    if "__optimizer__" in value:
        return getattr(torch.optim, value["__optimizer__"])
    if "__device__" in value:
        return torch.device(value["__device__"])
    return value
