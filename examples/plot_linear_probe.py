"""
Linear probes on inferred slots
===============================

A representation is useful downstream when simple readouts recover what is in
the image. The standard test is a *linear probe*: freeze the representation,
fit a linear model from it to a ground-truth concept on in-domain (ID) data,
and score it on ID and out-of-domain (OOD) data (:ref:`background-metrics`).

With slots there are two ways to do it:

* :class:`~compgen_sk.SlotProbe` with ``readout="linear"`` matches inferred
  slots to true slots first (slots come out in any order) and reads each concept
  off its matched slot only — the slot-wise readout of the reference works;
* the plain scikit-learn idiom
  ``make_pipeline(FrozenEstimator(fitted), StandardScaler(), LogisticRegression())``
  reads one concept off all slots at once, with no matching.

Both go into a :class:`~sklearn.pipeline.Pipeline` behind a slot estimator. The
data are two coloured handwritten digits of classes 0–4 side by side; OOD
images show digit pairs held out of training.
"""

# %%
# Data
# ----
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from compgen_sk import (
    AdditiveDecoder,
    ConvEncoder,
    GenerativeInverter,
    GradientSearch,
    SlotProbe,
)
from compgen_sk.datasets import make_digit_compositions

FAST = os.environ.get("COMPGEN_EXAMPLES_FAST") == "1"

digits = make_digit_compositions(
    300 if FAST else 3000,
    n_classes=5,
    digit_size=8,
    jitter=1,
    colored=True,
    holdout_fraction=0.5,
    split="all",
    random_state=0,
)
X_id, y_id = digits.images[~digits.ood], digits.concepts[~digits.ood]
X_ood, y_ood = digits.images[digits.ood], digits.concepts[digits.ood]
X_train, X_test, y_train, y_test = train_test_split(
    X_id, y_id, test_size=0.2, random_state=0
)
print(f"{len(X_train)} ID training, {len(X_test)} ID test, {len(X_ood)} OOD images")
print("concepts:", list(y_id.columns))

# %%
# Slot-wise linear readout in a pipeline
# --------------------------------------
# Fitting the pipeline trains the generative inverter by autoencoding (Eq.
# :eq:`eq-autoencoding`), infers the training slots by search (Eq. :eq:`eq-search`), and
# fits the probe on them. The pipeline's ``score`` is the probe's mean accuracy over
# both digits.
pipeline = Pipeline(
    [
        (
            "inv",
            GenerativeInverter(
                n_slots=2,
                slot_dim=8,
                decoder=AdditiveDecoder(renderer="mlp", hidden=(128, 256)),
                encoder=ConvEncoder(channels=16, hidden=128),
                lr=1e-3,
                batch_size=32,
                max_epochs=3 if FAST else 60,
                search=GradientSearch(steps=10 if FAST else 100),
                random_state=0,
            ),
        ),
        ("probe", SlotProbe(readout="linear", random_state=0)),
    ]
)
pipeline.fit(X_train, y_train)
probe = pipeline.named_steps["probe"]
slot_probe_scores = {
    "ID test": pipeline.score(X_test, y_test),
    "OOD": pipeline.score(X_ood, y_ood),
}
print(
    "SlotProbe(readout='linear') accuracy: "
    + ", ".join(f"{part} {score:.3f}" for part, score in slot_probe_scores.items())
)

# %%
# Which inferred slot holds which digit: the held-out accuracy of a linear
# readout from every inferred slot (rows) to every true slot (columns), on which
# the probe ran the Hungarian matching.
print(probe.slot_scores_.round(3))
print("matched inferred slot per true slot:", probe.matching_)

# %%
# One concept, the scikit-learn way
# ---------------------------------
# :class:`~sklearn.frozen.FrozenEstimator` keeps the fitted inverter as it is:
# fitting the outer pipeline fits only the scaler and the logistic regression.
# The regression sees every slot, so it needs no matching — but nothing stops it
# from relying on the other digit's slot, which OOD pairs change.
inverter = pipeline.named_steps["inv"]
rows = [{"readout": "SlotProbe (both digits)", **slot_probe_scores}]
for concept in y_id.columns:
    linear_probe = make_pipeline(
        FrozenEstimator(inverter),
        StandardScaler(),
        LogisticRegression(max_iter=1000),
    ).fit(X_train, y_train[concept])
    rows.append(
        {
            "readout": f"LogisticRegression ({concept})",
            "ID test": linear_probe.score(X_test, y_test[concept]),
            "OOD": linear_probe.score(X_ood, y_ood[concept]),
        }
    )
results = pd.DataFrame(rows).set_index("readout")
print(results.to_string(float_format="{:.3f}".format))

# %%
# ID against OOD readout accuracy; chance is 0.2 (five digit classes).
fig, ax = plt.subplots(figsize=(7, 3))
positions = np.arange(len(results))
ax.barh(positions - 0.2, results["ID test"], 0.4, label="ID test")
ax.barh(positions + 0.2, results["OOD"], 0.4, label="OOD (held-out pairs)")
ax.set_yticks(positions, results.index)
ax.invert_yaxis()
ax.set(xlim=(0, 1), xlabel="linear readout accuracy")
ax.legend(loc="lower right", fontsize="small")
fig.tight_layout()
plt.show()
