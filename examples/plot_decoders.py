"""
Four decoders compared
======================

The decoder carries the inductive bias of a generative inverter: how slots may
interact in producing a pixel (:ref:`background-decoders`,
:ref:`background-decoder-classes`). compgen-sk has four:

* :class:`~compgen_sk.AdditiveDecoder` (``"additive"``): each slot rendered
  on its own, renderings summed — no interaction at all (Lachapelle et al.
  2023; Wiedemer et al. 2024);
* :class:`~compgen_sk.MaskedDecoder` (``"masked"``): each slot renders content
  and a mask, softmax over slots composites them — slots interact only by
  occlusion (Slot Attention);
* :class:`~compgen_sk.TransformerDecoder` (``"transformer"``): pixel queries
  cross-attend to the slots; interaction is allowed but penalized through
  ``interaction_penalty`` (Brady et al. 2025);
* :class:`~compgen_sk.MLPDecoder` (``"mlp"``): one network on the concatenated
  slots — any interaction, the "no inductive bias" baseline.

Each is trained on the same in-domain (ID) digit compositions (two real
handwritten digits side by side, held-out digit pairs out of domain) with the
same encoder, and compared on the reconstruction R² of ID and out-of-domain
(OOD) images after search (Eq. :eq:`eq-search`), and on
:func:`~compgen_sk.metrics.jacobian_interaction_score`: per pixel, how much of
the decoder's sensitivity comes from a single slot (1: every pixel depends on
one slot, 0: all slots count equally). In these images every pixel belongs to
one digit, so a decoder that has found the true structure scores high.
"""

# %%
# Data
# ----
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from compgen_sk import (
    AdditiveDecoder,
    ConvEncoder,
    GenerativeInverter,
    GradientSearch,
    MaskedDecoder,
    MLPDecoder,
    TransformerDecoder,
)
from compgen_sk.datasets import make_digit_compositions
from compgen_sk.metrics import jacobian_interaction_score

FAST = os.environ.get("COMPGEN_EXAMPLES_FAST") == "1"

digits = make_digit_compositions(
    240 if FAST else 2400,
    digit_size=8,
    jitter=1,
    colored=True,
    holdout_fraction=0.5,
    split="all",
    random_state=0,
)
X_id, X_ood = digits.images[~digits.ood], digits.images[digits.ood]
n_test = len(X_id) // 6
X_train, X_test = X_id[n_test:], X_id[:n_test]
X_ood = X_ood[: 40 if FAST else 300]
print(f"{len(X_train)} ID training, {len(X_test)} ID test, {len(X_ood)} OOD images")

# %%
# Train one generative inverter per decoder
# -----------------------------------------
# Everything but the decoder is shared. Each decoder is an object that carries
# its options; the renderers draw each slot with an MLP (``renderer="mlp"``), and
# the transformer's interaction penalty is switched on. The sizes keep the fits
# short on a CPU (the table below gives their times), which is far from
# convergence for the transformer, the slowest to train.
DECODERS = {
    "additive": AdditiveDecoder(renderer="mlp", hidden=(128, 256)),
    "masked": MaskedDecoder(renderer="mlp", hidden=(128, 256)),
    "transformer": TransformerDecoder(
        embed_dim=32, n_layers=2, interaction_penalty=0.05
    ),
    "mlp": MLPDecoder(renderer="mlp", hidden=(256, 256)),
}
fitted, fit_seconds = {}, {}
for name, decoder in DECODERS.items():
    start = time.perf_counter()
    fitted[name] = GenerativeInverter(
        n_slots=2,
        slot_dim=8,
        decoder=decoder,
        encoder=ConvEncoder(channels=16, hidden=128),
        lr=1e-3,
        batch_size=32,
        max_epochs=2 if FAST else 30,
        search=GradientSearch(steps=5 if FAST else 50),
        random_state=0,
    ).fit(X_train)
    fit_seconds[name] = time.perf_counter() - start

# %%
# Scores
# ------
# ``score`` is the reconstruction R² through ``transform`` (encoder guess plus
# search) and the decoder. The Jacobian score is evaluated at the slots inferred
# for OOD images, on a random subset of them.
rows = []
for name, inverter in fitted.items():
    rows.append(
        {
            "decoder": name,
            "ID R²": inverter.score(X_test),
            "OOD R²": inverter.score(X_ood),
            "Jacobian interaction score": jacobian_interaction_score(
                inverter, X_ood, max_samples=8 if FAST else 32, random_state=0
            ),
            "fit seconds": fit_seconds[name],
        }
    )
results = pd.DataFrame(rows).set_index("decoder")
print(results.to_string(float_format="{:.3f}".format))

# %%
# The same numbers as bars. Reconstruction R² says how well each decoder
# explains the images, the Jacobian score how it does so: a decoder can
# reconstruct well while every pixel listens to both slots. Note that an
# additive decoder limits how slots combine (by a sum), not which pixels a slot
# may paint, so it need not score high on this measure.
metrics = ["ID R²", "OOD R²", "Jacobian interaction score"]
fig, ax = plt.subplots(figsize=(7, 3.5))
positions = np.arange(len(results))
width = 0.8 / len(metrics)
for k, metric in enumerate(metrics):
    ax.bar(positions + (k - 1) * width, results[metric], width, label=metric)
ax.set_xticks(positions, results.index)
ax.set(ylim=(min(0, results[metrics].to_numpy().min()), 1), ylabel="score")
ax.axhline(0, color="black", linewidth=0.8)
ax.legend(fontsize="small", loc="upper right")
fig.tight_layout()
plt.show()

# %%
# OOD reconstructions
# -------------------
# The first row shows OOD images (digit pairs never seen in training), the
# others each decoder's rendering of the slots search found for them.
images = X_ood[:8]
rows = [("OOD input", images)] + [
    (name, inverter.inverse_transform(inverter.transform(images)))
    for name, inverter in fitted.items()
]
fig, axes = plt.subplots(len(rows), 8, figsize=(9, 0.75 * len(rows) + 0.5))
for r, (label, row) in enumerate(rows):
    for c in range(8):
        axes[r, c].imshow(np.clip(row[c].transpose(1, 2, 0), 0, 1))
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
    axes[r, 0].set_ylabel(label, fontsize="small", rotation=0, ha="right")
fig.tight_layout()
plt.show()
