"""
Model selection on held-out combinations with ``GridSearchCV``
==============================================================

Choosing hyperparameters for compositional generalization needs a validation
set of *unseen combinations*: a random split of in-domain (ID) data only tells
how well a model handles the combinations it trained on. True out-of-domain
(OOD) data is not available at training time, but held-out combinations of the
ID data are. :class:`~compgen_sk.HeldOutCombinations` builds them: each split
moves whole concept combinations to the validation part, and only those whose
every single concept value still occurs in training — new combinations of known
values, the definition of OOD in :ref:`background-setting`.

Here ``GridSearchCV`` tunes a ``Pipeline(GenerativeInverter, SlotProbe)`` on ID
digit compositions with ``cv=HeldOutCombinations`` and ``groups=concepts``; the
pipeline's score is the probe's readout accuracy on the validation images
(:ref:`background-metrics`). The images show two handwritten digits of classes 0–4 side
by side. At the end the selected model is scored on the real OOD pairs,
which the search never saw.
"""

# %%
# ID data for the search, OOD data for the end
# --------------------------------------------
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from compgen_sk import (
    AdditiveDecoder,
    ConvEncoder,
    GenerativeInverter,
    GradientSearch,
    HeldOutCombinations,
    MLPDecoder,
    SlotProbe,
)
from compgen_sk.datasets import make_digit_compositions
from compgen_sk.metrics import make_slot_scorer

FAST = os.environ.get("COMPGEN_EXAMPLES_FAST") == "1"

digits = make_digit_compositions(
    200 if FAST else 2400,
    n_classes=5,
    digit_size=8,
    jitter=1,
    colored=False,
    holdout_fraction=0.5,
    split="all",
    random_state=0,
)
X_id, y_id = digits.images[~digits.ood], digits.concepts[~digits.ood]
X_ood, y_ood = digits.images[digits.ood], digits.concepts[digits.ood]
print(
    f"{len(X_id)} ID images ({len(np.unique(digits.combination[~digits.ood]))} "
    f"digit pairs), {len(X_ood)} OOD images"
)

# %%
# What a held-out-combination split looks like
# --------------------------------------------
# ``groups`` is the concept table, one column per slot. No validation pair
# occurs in training, and every digit in validation was seen in its position.
cv = HeldOutCombinations(n_splits=2, test_size=0.3, random_state=0)
train, valid = next(cv.split(X_id, groups=y_id))
pairs = y_id.astype(str).agg(" ".join, axis=1)
print("validation pairs:", sorted(set(pairs.iloc[valid]))[:8], "...")
print("shared with training:", set(pairs.iloc[train]) & set(pairs.iloc[valid]))
print(
    "left digits in validation also in training:",
    set(y_id["slot0_digit"].iloc[valid]) <= set(y_id["slot0_digit"].iloc[train]),
)

# %%
# The search
# ----------
# Candidates: the decoder (additive, with the inductive bias that lets it render
# unseen combinations, or an unconstrained MLP, both drawing with MLP renderers
# of the same widths) and whether to search the slots at transform time (Eq.
# :eq:`eq-search`) or take the encoder's guess (``search=None``). Decoders and
# searches are parameter objects, so the grid lists objects. ``refit`` picks the
# readout score; the reconstruction R² of the validation images is recorded as a
# second metric. Changing ``search`` does not change training, but
# ``GridSearchCV`` refits every candidate; that is the price of the generic tool.
pipeline = Pipeline(
    [
        (
            "inv",
            GenerativeInverter(
                n_slots=2,
                slot_dim=8,
                encoder=ConvEncoder(channels=16, hidden=128),
                lr=1e-3,
                batch_size=32,
                max_epochs=2 if FAST else 40,
                random_state=0,
            ),
        ),
        ("probe", SlotProbe(random_state=0)),
    ]
)
param_grid = {
    "inv__decoder": [
        AdditiveDecoder(renderer="mlp", hidden=(128, 256)),
        MLPDecoder(renderer="mlp", hidden=(128, 256)),
    ],
    "inv__search": [None, GradientSearch(steps=5 if FAST else 50)],
}
search = GridSearchCV(
    pipeline,
    param_grid,
    cv=cv,
    scoring={
        "readout": make_slot_scorer("readout"),
        "reconstruction": make_slot_scorer("reconstruction"),
    },
    refit="readout",
    n_jobs=1 if FAST else 2,
)
search.fit(X_id, y_id, groups=y_id)
print("best parameters:", search.best_params_)


def search_steps(spec):
    """Search steps per image of a ``search`` parameter (0: the encoder alone)."""
    return 0 if spec is None else spec.steps


# %%
# Cross-validation results
# ------------------------
# The parameter columns hold the candidate objects; the table names them.
columns = {
    "param_inv__decoder": "decoder",
    "param_inv__search": "search steps",
    "mean_test_readout": "readout (held-out pairs)",
    "std_test_readout": "± std",
    "mean_test_reconstruction": "reconstruction R²",
    "mean_fit_time": "fit seconds",
    "rank_test_readout": "rank",
}
table = pd.DataFrame(search.cv_results_)[list(columns)].rename(columns=columns)
table["decoder"] = [type(decoder).__name__ for decoder in table["decoder"]]
table["search steps"] = [search_steps(spec) for spec in table["search steps"]]
print(table.to_string(index=False, float_format="{:.3f}".format))

# %%
# Does the held-out-combination estimate predict OOD accuracy?
# ------------------------------------------------------------
# ``best_estimator_`` was refitted on all ID images. Its readout accuracy on the
# real OOD pairs is what the cross-validated score tried to estimate. The
# cross-validated models trained on fewer images and fewer digit pairs than the
# refitted one (each split holds out about 30 % of the ID data), one reason why
# the two numbers need not agree; what the search needs from the estimate is the
# ranking of the candidates.
ood_score = search.best_estimator_.score(X_ood, y_ood)
print(f"selected model, CV readout on held-out pairs: {search.best_score_:.3f}")
print(f"selected model, readout on the real OOD pairs: {ood_score:.3f}")

labels = [
    f"{decoder}, {steps} steps"
    for decoder, steps in zip(table["decoder"], table["search steps"])
]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.barh(labels, table["readout (held-out pairs)"], xerr=table["± std"], capsize=3)
ax.axvline(ood_score, color="black", linestyle="--", label="selected model on OOD")
ax.invert_yaxis()
ax.set(xlim=(0, 1), xlabel="digit readout accuracy on held-out pairs (CV)")
ax.legend(loc="lower right", fontsize="small")
fig.tight_layout()
plt.show()
