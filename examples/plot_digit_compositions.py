"""
Compositions of real handwritten digits
=======================================

:func:`~compgen_sk.datasets.make_digit_compositions` puts two real handwritten
digits (scikit-learn's bundled ``load_digits`` scans) side by side, one per slot.
In-domain (ID) images show some pairs of digit classes, out-of-domain (OOD)
images the held-out pairs — every class was seen in every position, never in
that pair (the analogue of held-out animal × background pairs, :ref:`background-data`).

We fit the non-generative :class:`~compgen_sk.EncoderBaseline` and the
generative :class:`~compgen_sk.GenerativeInverter` on ID images, read the digit
classes out of each representation with a :class:`~compgen_sk.SlotProbe` fitted
on ID slots, and compare the readout accuracy on ID and OOD images
(:ref:`background-metrics`).
"""

# %%
# ID and OOD images
# -----------------
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from compgen_sk import (
    AdditiveDecoder,
    ConvEncoder,
    EncoderBaseline,
    GenerativeInverter,
    GradientSearch,
    SlotProbe,
)
from compgen_sk.datasets import make_digit_compositions

FAST = os.environ.get("COMPGEN_EXAMPLES_FAST") == "1"

digits = make_digit_compositions(
    300 if FAST else 3000,
    digit_size=8,
    jitter=1,
    colored=False,
    holdout_fraction=0.7,
    split="all",
    random_state=0,
)
ood = digits.ood
classes = digits.latents[:, :, 0].astype(int)

# Which class pairs are in domain: the design the OOD images test.
n_classes = len(digits.concepts["slot0_digit"].cat.categories)
in_domain = np.full((n_classes, n_classes), np.nan)
for (left, right), is_ood in zip(classes, ood):
    in_domain[left, right] = 0.0 if is_ood else 1.0

fig = plt.figure(figsize=(9, 4))
grid = fig.add_gridspec(6, 3, width_ratios=[2, 1, 1])
ax = fig.add_subplot(grid[:, 0])
ax.imshow(in_domain, cmap="coolwarm_r", vmin=0, vmax=1)
ax.set(xlabel="right digit", ylabel="left digit", title="ID pairs (blue), OOD (red)")
ax.set_xticks(range(n_classes))
ax.set_yticks(range(n_classes))
for column, (name, mask) in enumerate([("ID", ~ood), ("OOD", ood)], start=1):
    for row, index in enumerate(np.flatnonzero(mask)[:6]):
        ax = fig.add_subplot(grid[row, column])
        ax.imshow(digits.images[index].transpose(1, 2, 0))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(" ".join(map(str, classes[index])), fontsize="small")
        if row == 0:
            ax.set_title(f"{name} images", fontsize="small")
fig.tight_layout()
plt.show()

# %%
# ID training and test parts, and the OOD part
# --------------------------------------------
rng = np.random.default_rng(0)
id_index = rng.permutation(np.flatnonzero(~ood))
n_test = len(id_index) // 5
test, train = id_index[:n_test], id_index[n_test:]
X, concepts = digits.images, digits.concepts
X_train, y_train = X[train], concepts.iloc[train]
X_test, y_test = X[test], concepts.iloc[test]
X_ood, y_ood = X[ood], concepts[ood]
print(f"{len(train)} ID training, {len(test)} ID test, {len(X_ood)} OOD images")

# %%
# Fit the estimators on ID images
# -------------------------------
# Same encoder architecture and training budget for all. The baseline trains its
# encoder with an unconstrained decoder (``objective="autoencoder"``) or on the
# digit labels (``objective="supervised"``); the generative inverter trains it
# with an additive decoder and then refines its guess by search (Eq. :eq:`eq-search`).
# Search only changes ``transform``: the inverter is fitted once, without it.
common = dict(
    n_slots=2,
    slot_dim=8,
    encoder=ConvEncoder(channels=16, hidden=128),
    lr=1e-3,
    batch_size=32,
    max_epochs=3 if FAST else 60,
    random_state=0,
)
baseline = EncoderBaseline(**common).fit(X_train)
supervised = EncoderBaseline(objective="supervised", **common).fit(X_train, y_train)
inverter = GenerativeInverter(
    decoder=AdditiveDecoder(renderer="mlp", hidden=(128, 256)), search=None, **common
).fit(X_train)

# %%
# Read the digits out of the slots
# --------------------------------
# A probe fitted on the slots of ID training images is scored on ID test images
# and on OOD images: the accuracy of both digits, averaged. The generative
# inverter is scored with its encoder alone (``search=None``) and with search;
# ``search`` may be changed on the fitted inverter without refitting it.
methods = [
    ("EncoderBaseline (autoencoder)", baseline, {}),
    ("EncoderBaseline (supervised)", supervised, {}),
    ("GenerativeInverter, encoder only", inverter, {"search": None}),
    (
        "GenerativeInverter + search",
        inverter,
        {"search": GradientSearch(steps=10 if FAST else 100)},
    ),
]
rows = []
for name, estimator, params in methods:
    estimator.set_params(**params)
    probe = SlotProbe("mlp", random_state=0).fit(estimator.transform(X_train), y_train)
    rows.append(
        {
            "method": name,
            "ID accuracy": probe.score(estimator.transform(X_test), y_test),
            "OOD accuracy": probe.score(estimator.transform(X_ood), y_ood),
        }
    )
results = pd.DataFrame(rows).set_index("method")
print(results.to_string(float_format="{:.3f}".format))

# %%
# The same numbers as bars. Two things to keep apart when reading them: the
# supervised baseline was trained on the digit labels themselves, whereas the
# other three learned without labels and only their probe saw labels; and the
# drop from ID to OOD accuracy, not the ID accuracy, is what unseen pairs cost.
# Here each digit sits in a fixed cell of the image, which makes the task easy
# for a convolutional encoder; nothing guarantees that an encoder generalizes to
# unseen pairs (:ref:`background-decoders`), but nothing forbids it either.
fig, ax = plt.subplots(figsize=(7, 3.5))
positions = np.arange(len(results))
ax.barh(positions - 0.2, results["ID accuracy"], 0.4, label="ID test")
ax.barh(positions + 0.2, results["OOD accuracy"], 0.4, label="OOD (held-out pairs)")
ax.set_yticks(positions, results.index)
ax.invert_yaxis()
ax.set(xlim=(0, 1), xlabel="digit readout accuracy (chance 0.1)")
ax.legend(loc="lower right", fontsize="small")
fig.tight_layout()
plt.show()

# %%
# What the generative inverter sees in OOD images
# -----------------------------------------------
# The decoder's rendering of each slot after search: one digit per slot when
# the slots have separated the two digits. An additive decoder lets a slot paint
# anywhere, so nothing in training forces that separation; where a slot also
# paints into the other digit's cell, the two digits are entangled in the slots
# and the slot-wise readout suffers.
images = X_ood[:8]
per_slot = inverter.render_slots(inverter.transform(images))  # with search
fig, axes = plt.subplots(3, 8, figsize=(9, 2.6))
for r, (row, label) in enumerate(
    [(images, "input"), (per_slot[:, 0], "slot 0"), (per_slot[:, 1], "slot 1")]
):
    for c in range(8):
        axes[r, c].imshow(np.clip(row[c].transpose(1, 2, 0), 0, 1))
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
    axes[r, 0].set_ylabel(label, fontsize="small")
fig.tight_layout()
plt.show()
