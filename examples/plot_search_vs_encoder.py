"""
Search versus encoder on out-of-domain images
=============================================

A slot autoencoder trained on in-domain (ID) images has two ways to represent a
new image: the encoder's one-pass guess ``z0 = g(x)``, or a search for the slots
that the frozen decoder renders into the image, ``z* = argmin_z ||x - f(z)||²``,
started from that guess (Eq. :eq:`eq-search`).

On ID images the encoder already inverts the decoder: autoencoding trained it to
(Eq. :eq:`eq-autoencoding`). On out-of-domain (OOD) images — new combinations of objects
— nothing constrains the encoder, while an additive decoder can still render the
combination, so search can find slots that reconstruct it. This example trains
on two-sprite scenes whose objects are always alike (the "diagonal" support of
Wiedemer et al. 2024, :ref:`background-data`) and reconstructs scenes with two different
objects, before and after search.
"""

# %%
# Data: alike objects in training, different objects out of domain
# ----------------------------------------------------------------
import os

import matplotlib.pyplot as plt
import numpy as np

from compgen_sk import AdditiveDecoder, ConvEncoder, GenerativeInverter, GradientSearch
from compgen_sk.datasets import make_sprites

FAST = os.environ.get("COMPGEN_EXAMPLES_FAST") == "1"
IMAGE_SIZE = 16 if FAST else 32

sprites = make_sprites(
    240 if FAST else 3000, image_size=IMAGE_SIZE, split="all", random_state=0
)
X_id, X_ood = sprites.images[~sprites.ood], sprites.images[sprites.ood]
n_test = len(X_id) // 10
X_train, X_test = X_id[n_test:], X_id[:n_test]
print(f"{len(X_train)} ID training, {len(X_test)} ID test, {len(X_ood)} OOD images")

# %%
# Train by autoencoding the ID images
# -----------------------------------
# An additive decoder renders each slot on its own and sums the renderings, the
# inductive bias that lets it draw object combinations it never saw together
# (:ref:`background-decoders`). ``GradientSearch(tol=0)`` runs every search
# step, so that the effect of the number of steps below is not hidden by early
# stopping.
inverter = GenerativeInverter(
    n_slots=2,
    slot_dim=4,
    decoder=AdditiveDecoder(renderer="mlp", hidden=(128, 256)),
    encoder=ConvEncoder(channels=16, hidden=128),
    lr=2e-3,
    max_epochs=2 if FAST else 60,
    search=GradientSearch(steps=10 if FAST else 200, tol=0.0),
    random_state=0,
)
inverter.fit(X_train)


def reconstruction_mse(images, slots):
    """Mean squared error per pixel of rendering ``slots`` against ``images``."""
    return float(np.mean((inverter.inverse_transform(slots) - images) ** 2))


n_eval = 24 if FAST else 200
parts = {"ID test": X_test[:n_eval], "OOD": X_ood[:n_eval]}
for name, images in parts.items():
    encoder_mse = reconstruction_mse(images, inverter.encode(images))
    search_mse = reconstruction_mse(images, inverter.transform(images))
    print(
        f"{name:8s} reconstruction MSE: encoder {encoder_mse:.5f}, "
        f"after {inverter.search.steps} search steps {search_mse:.5f}"
    )

# %%
# Reconstructions
# ---------------
# Rows: the input, the decoder's rendering of the encoder's guess, the rendering
# after search, and what each slot contributes to it. For an additive decoder
# the slot renderings sum to the full rendering, so they show which object each
# slot took. A short CPU training leaves the decoder's sprites blurry; the
# reference works train for hundreds of GPU epochs (:ref:`background-data`).
n_show = 6
shown = {"ID": X_test[:n_show], "OOD": X_ood[:n_show]}
rows, labels = [], []
for name, images in shown.items():
    searched = inverter.transform(images)
    per_slot = inverter.render_slots(searched)
    rows += [
        images,
        inverter.inverse_transform(inverter.encode(images)),
        inverter.inverse_transform(searched),
        per_slot[:, 0],
        per_slot[:, 1],
    ]
    labels += [
        f"{name} input",
        "encoder",
        "search",
        "slot 0",
        "slot 1",
    ]

fig, axes = plt.subplots(
    len(rows), n_show, figsize=(1.2 * n_show, 1.2 * len(rows)), squeeze=False
)
for r, (images, label) in enumerate(zip(rows, labels)):
    for c in range(n_show):
        axes[r, c].imshow(np.clip(images[c].transpose(1, 2, 0), 0, 1))
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
    axes[r, 0].set_ylabel(label, fontsize="small")
fig.suptitle("Reconstructions from the encoder's guess and after search")
fig.tight_layout()
plt.show()

# %%
# Reconstruction error against search steps
# -----------------------------------------
# Search is the "System 2" refinement of the encoder's "System 1" guess: every
# step costs one decoder forward and backward pass per image. Zero steps is the
# encoder alone. Search keeps the best slots it saw, so more steps never
# reconstruct worse. ``search__steps`` is the nested option of the inverter's
# ``search``; changing it leaves the fitted networks as they are.
step_grid = [0, 5, 10] if FAST else [0, 10, 30, 100, 300]
errors = {name: [] for name in parts}
for steps in step_grid:
    inverter.set_params(search__steps=steps)
    for name, images in parts.items():
        errors[name].append(reconstruction_mse(images, inverter.transform(images)))
for name, values in errors.items():
    print(
        name, " ".join(f"{steps}: {mse:.5f}" for steps, mse in zip(step_grid, values))
    )

fig, ax = plt.subplots(figsize=(5, 3.5))
for name, values in errors.items():
    ax.plot(step_grid, values, marker="o", label=name)
ax.set_xscale("symlog", linthresh=10)
ax.set_ylim(bottom=0)
ax.set(
    xlabel="search steps",
    ylabel="reconstruction MSE per pixel",
    title="Reconstruction error against search steps",
)
ax.legend()
fig.tight_layout()
plt.show()
