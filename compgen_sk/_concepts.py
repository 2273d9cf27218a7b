"""Concept tables: which true slot each column belongs to, and numeric targets."""

from __future__ import annotations

import numpy as np
import pandas as pd

FLOAT32_MAX = float(np.finfo(np.float32).max)


def slot_of_column(name):
    """The slot a concept column belongs to: its name up to the first ``"_"``.

    ``"slot0_x"`` belongs to ``"slot0"``, ``"animal_class"`` to ``"animal"``.
    """
    return str(name).split("_", 1)[0]


def group_columns(columns):
    """Column positions per slot, slots in order of first appearance."""
    groups = {}
    for j, name in enumerate(columns):
        groups.setdefault(slot_of_column(name), []).append(j)
    return groups


def is_categorical(series):
    """Categorical, object, string and bool columns are categorical concepts."""
    return (
        not pd.api.types.is_numeric_dtype(series)
        or pd.api.types.is_bool_dtype(series)
        or isinstance(series.dtype, pd.CategoricalDtype)
    )


def check_unique_columns(frame):
    """Raise on duplicate column names: concepts are named by their columns."""
    names = [str(c) for c in frame.columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"y has duplicate concept columns {duplicates}; every concept needs a "
            "name of its own."
        )


def column_categories(series):
    """The categories of a categorical concept column (all declared categories
    of a pandas categorical, else its sorted distinct values); None for a
    continuous column."""
    if not is_categorical(series):
        return None
    if isinstance(series.dtype, pd.CategoricalDtype):
        return list(series.cat.categories)
    return list(pd.Categorical(series).categories)


def _numeric_block(series, categories):
    """A float block for one concept: one-hot over ``categories`` for a
    categorical concept, the value for a continuous one (``categories=None``)."""
    if categories is None:
        values = pd.to_numeric(np.asarray(series, dtype=object), errors="coerce")
        if np.isnan(values).any():
            raise ValueError(
                f"Concept column {series.name!r} was continuous at fit, but y gives "
                "it non-numeric values."
            )
        return np.asarray(values, dtype=np.float32)[:, None]
    codes = pd.Categorical(series, categories=categories).codes
    if (codes < 0).any():
        unseen = sorted({str(v) for v in series[codes < 0]})
        raise ValueError(
            f"Concept column {series.name!r} has categories {unseen[:5]} that were "
            f"not seen at fit (known: {[str(c) for c in categories][:10]})."
        )
    return np.eye(len(categories), dtype=np.float32)[codes]


def slot_targets(y, n_slots, categories=None):
    """Numeric per-slot targets (n, K, m) from latents or a concept table.

    ``y`` is an array (n, K, m), an array (n, K * m) cut into ``n_slots`` equal
    parts, an array (n,) (one latent, for one slot), or a DataFrame whose
    columns ``"<slot>_<concept>"`` are grouped by slot (categorical concepts
    one-hot encoded, slots zero-padded to a common width).

    ``categories`` fixes the encoding of a concept table: a dict column ->
    categories (None for a continuous column), as returned at fit; y must then
    have exactly those columns, and a category outside them raises. None
    derives it from ``y``.

    Returns
    -------
    targets : ndarray of shape (n, K, m), float32
    categories : dict or None
        The encoding used (None for arrays).
    """
    if isinstance(y, pd.DataFrame):
        if y.isna().to_numpy().any():
            raise ValueError("y contains missing values (NaN).")
        check_unique_columns(y)
        columns = [str(c) for c in y.columns]
        if categories is None:
            categories = {
                name: column_categories(y.iloc[:, j]) for j, name in enumerate(columns)
            }
        elif columns != list(categories):
            raise ValueError(
                f"y has the concept columns {columns}, but the estimator was fitted "
                f"on {list(categories)}."
            )
        groups = group_columns(columns)
        blocks = [
            np.concatenate(
                [_numeric_block(y.iloc[:, j], categories[columns[j]]) for j in cols],
                axis=1,
            )
            for cols in groups.values()
        ]
        width = max(b.shape[1] for b in blocks)
        padded = [np.pad(b, ((0, 0), (0, width - b.shape[1]))) for b in blocks]
        targets = np.stack(padded, axis=1)
    else:
        if categories is not None:
            raise ValueError(
                "The estimator was fitted on a concept table; y must be a "
                f"DataFrame with the columns {list(categories)}."
            )
        targets = np.asarray(y)
        if targets.dtype.kind not in "biuf":
            raise ValueError(
                f"y must hold numbers (latents) or be a concept table; got an "
                f"array of dtype {targets.dtype}."
            )
        if np.abs(targets).max(initial=0) > FLOAT32_MAX:
            raise ValueError(
                "y has values beyond the float32 range that the networks compute "
                "in; rescale y."
            )
        targets = targets.astype(np.float32)
        if targets.ndim == 1:  # one latent per sample
            if n_slots != 1:
                raise ValueError(
                    f"y is 1-D (one latent per sample), which fits n_slots=1 "
                    f"only; got n_slots={n_slots}. Pass y as (n, n_slots, m) "
                    "latents or a concept table."
                )
            targets = targets[:, None]
        if targets.ndim == 2:
            if targets.shape[1] % n_slots:
                raise ValueError(
                    f"y has {targets.shape[1]} columns, which n_slots={n_slots} does "
                    "not divide; pass y as (n, n_slots, m) latents or a concept table."
                )
            targets = targets.reshape(len(targets), n_slots, -1)
        elif targets.ndim != 3:
            raise ValueError(
                "y must be latents (n, K, m), (n, K * m) or (n,), or a concept "
                "table; got "
                f"an array of shape {targets.shape}."
            )
    if targets.shape[1] != n_slots:
        raise ValueError(
            f"y describes {targets.shape[1]} true slots but n_slots={n_slots}; the "
            "supervised objective reads true slot k out of inferred slot k."
        )
    if not np.isfinite(targets).all():
        raise ValueError("y contains NaN or infinity.")
    return targets.astype(np.float32), categories
