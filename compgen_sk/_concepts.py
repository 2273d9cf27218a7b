"""Concept tables: which true slot each column belongs to, and numeric targets."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
    return not pd.api.types.is_numeric_dtype(series) or isinstance(
        series.dtype, pd.CategoricalDtype
    )


def _numeric_block(series):
    """A float block for one concept: one-hot for categorical, the value otherwise."""
    if is_categorical(series):
        codes = pd.Categorical(series).codes
        n_categories = int(codes.max()) + 1 if len(codes) else 0
        if isinstance(series.dtype, pd.CategoricalDtype):
            n_categories = len(series.cat.categories)
        return np.eye(n_categories, dtype=np.float32)[codes]
    return series.to_numpy(dtype=np.float32)[:, None]


def slot_targets(y, n_slots):
    """Numeric per-slot targets (n, K, m) from latents or a concept table.

    ``y`` is an array (n, K, m), an array (n, K * m) cut into ``n_slots`` equal
    parts, or a DataFrame whose columns ``"<slot>_<concept>"`` are grouped by slot
    (categorical concepts one-hot encoded, slots zero-padded to a common width).
    """
    if isinstance(y, pd.DataFrame):
        if y.isna().to_numpy().any():
            raise ValueError("y contains missing values (NaN).")
        groups = group_columns(y.columns)
        blocks = [
            np.concatenate([_numeric_block(y.iloc[:, j]) for j in cols], axis=1)
            for cols in groups.values()
        ]
        width = max(b.shape[1] for b in blocks)
        padded = [np.pad(b, ((0, 0), (0, width - b.shape[1]))) for b in blocks]
        targets = np.stack(padded, axis=1)
    else:
        targets = np.asarray(y, dtype=np.float32)
        if targets.ndim == 2:
            if targets.shape[1] % n_slots:
                raise ValueError(
                    f"y has {targets.shape[1]} columns, which n_slots={n_slots} does "
                    "not divide; pass y as (n, n_slots, m) latents or a concept table."
                )
            targets = targets.reshape(len(targets), n_slots, -1)
        elif targets.ndim != 3:
            raise ValueError(
                "y must be latents (n, K, m) or (n, K * m), or a concept table; got "
                f"an array of shape {targets.shape}."
            )
    if targets.shape[1] != n_slots:
        raise ValueError(
            f"y describes {targets.shape[1]} true slots but n_slots={n_slots}; the "
            "supervised objective reads true slot k out of inferred slot k."
        )
    if not np.isfinite(targets).all():
        raise ValueError("y contains NaN or infinity.")
    return targets.astype(np.float32)
