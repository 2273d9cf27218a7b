"""
Generative replay: teach an encoder the combinations it never saw
=================================================================

Search (Eq. :eq:`eq-search`) inverts the decoder on any image, but costs hundreds
of decoder passes per image. Generative replay (Eq. :eq:`eq-replay`) pays that price
once, offline: infer the slots of the in-domain (ID) images, recombine them with each
slot drawn independently from its ID marginal, let the decoder render the
recombinations — mostly out-of-domain (OOD) scenes — and train a fresh encoder
on the rendered pairs, ``min_g E ||z~ - g(f(z~))||²``. Inference is then one
forward pass. The replay encoder can be no better than the decoder's renderings
of the new combinations.

This example trains a :class:`~compgen_sk.GenerativeInverter` on two-sprite
scenes whose objects are always alike, shows what its decoder renders for
recombined slots, and compares a :class:`~compgen_sk.ReplayEncoder` with the
generator's own encoder on scenes of two different objects.
"""

# %%
# The generator
# -------------
# An encoder and an additive decoder trained by autoencoding the ID scenes
# (Eq. :eq:`eq-autoencoding`).
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from compgen_sk import (
    AdditiveDecoder,
    ConvEncoder,
    GenerativeInverter,
    GradientSearch,
    ReplayEncoder,
)
from compgen_sk.datasets import make_sprites
from compgen_sk.inversion import sample_recombinations

FAST = os.environ.get("COMPGEN_EXAMPLES_FAST") == "1"
IMAGE_SIZE = 16 if FAST else 32
N_SLOTS, SLOT_DIM = 2, 4
ENCODER = ConvEncoder(channels=16, hidden=128)

sprites = make_sprites(
    240 if FAST else 3000, image_size=IMAGE_SIZE, split="all", random_state=0
)
X_train, X_ood = sprites.images[~sprites.ood], sprites.images[sprites.ood]
print(f"{len(X_train)} ID training images, {len(X_ood)} OOD images")

generator = GenerativeInverter(
    n_slots=N_SLOTS,
    slot_dim=SLOT_DIM,
    decoder=AdditiveDecoder(renderer="mlp", hidden=(128, 256)),
    encoder=ENCODER,
    lr=2e-3,
    max_epochs=2 if FAST else 60,
    search=None,
    random_state=0,
).fit(X_train)
print("replay recombines slots by:", generator.recombination_)

# %%
# Replayed recombinations
# -----------------------
# Slot 0 of the ID scene on the left of each row, slot 1 of the ID scene above
# each column, rendered together by the decoder. The diagonal is the decoder's
# reconstruction of one ID scene; every other cell is a combination of objects
# no training scene showed.
n_show = 5
sources = X_train[:n_show]
slots = generator.encode(sources).reshape(n_show, N_SLOTS, SLOT_DIM)
grid = np.stack(
    [np.stack([slots[i, 0], slots[j, 1]]) for i in range(n_show) for j in range(n_show)]
)
rendered = generator.inverse_transform(grid).reshape(n_show, n_show, *X_train.shape[1:])


def show(ax, image):
    ax.imshow(np.clip(image.transpose(1, 2, 0), 0, 1))
    ax.set_xticks([])
    ax.set_yticks([])


fig, axes = plt.subplots(n_show + 1, n_show + 1, figsize=(7, 7))
axes[0, 0].axis("off")
for k in range(n_show):
    show(axes[0, k + 1], sources[k])
    show(axes[k + 1, 0], sources[k])
    for j in range(n_show):
        show(axes[k + 1, j + 1], rendered[k, j])
axes[0, 1].set_title("slot 1 from ↓", fontsize="small", loc="left")
axes[1, 0].set_ylabel("slot 0 from →", fontsize="small")
fig.suptitle("The decoder renders recombined ID slots")
fig.tight_layout()
plt.show()

# %%
# ``ReplayEncoder`` draws such recombinations at random — slot k drawn from the
# k-th inferred slots of all ID scenes, independently per slot: the product of
# the per-slot marginals (the generator's ``recombination_``, ``"shuffle"``,
# because its decoder has one renderer per slot) — and renders a fresh set
# every epoch. These are a few of the pairs it trains on.
bank = torch.as_tensor(generator.encode(X_train).reshape(-1, N_SLOTS, SLOT_DIM))
replayed_slots = sample_recombinations(
    bank, 8, generator.recombination_, generator=torch.Generator().manual_seed(0)
).numpy()
replayed = generator.inverse_transform(replayed_slots)
fig, axes = plt.subplots(1, 8, figsize=(9, 1.5))
for ax, image in zip(axes, replayed):
    show(ax, image)
fig.suptitle("Random replayed scenes", fontsize="medium")
fig.tight_layout()
plt.show()

# %%
# Train the replay encoder
# ------------------------
# A fresh encoder of the same architecture learns to map rendered scenes back to
# their slots. The generator is already fitted, so it is used as is.
replay = ReplayEncoder(
    generator,
    max_epochs=2 if FAST else 40,
    encoder=ENCODER,
    lr=2e-3,
    random_state=0,
).fit(X_train)

# %%
# Which encoder inverts the decoder out of domain?
# ------------------------------------------------
# Two measures. On *replayed* scenes the true slots are known, so the slot error
# ``||g(f(z~)) - z~||²`` says how well each encoder inverts the decoder on new
# combinations (fresh draws, not the ones replay trained on). On real OOD scenes
# the true slots of the decoder are unknown; the reconstruction error of
# rendering the inferred slots says how well they explain the image. Search can
# refine either encoder's guess; the last column is the inference time.
fresh = sample_recombinations(
    bank,
    64 if FAST else 500,
    generator.recombination_,
    generator=torch.Generator().manual_seed(1),
).numpy()
fresh_images = generator.inverse_transform(fresh)
X_eval = X_ood[: 24 if FAST else 300]
search = GradientSearch(steps=10 if FAST else 100)

rows = []
for name, estimator, estimator_search in [
    ("generator's encoder", generator, None),
    ("replay encoder", replay, None),
    ("generator's encoder + search", generator, search),
    ("replay encoder + search", replay, search),
]:
    estimator.set_params(search=estimator_search)
    slot_error = np.mean(
        (estimator.transform(fresh_images) - fresh.reshape(len(fresh), -1)) ** 2
    )
    start = time.perf_counter()
    ood_slots = estimator.transform(X_eval)
    seconds = time.perf_counter() - start
    ood_mse = np.mean((generator.inverse_transform(ood_slots) - X_eval) ** 2)
    rows.append(
        {
            "method": name,
            "slot MSE on replayed scenes": slot_error,
            "OOD reconstruction MSE": ood_mse,
            "ms per OOD image": 1000 * seconds / len(X_eval),
        }
    )
results = pd.DataFrame(rows).set_index("method")
print(results.to_string(float_format="{:.5f}".format))

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
for ax, column in zip(axes, ["slot MSE on replayed scenes", "OOD reconstruction MSE"]):
    ax.barh(results.index, results[column])
    ax.set_title(column)
    ax.locator_params(axis="x", nbins=4)
    ax.invert_yaxis()
axes[1].set_yticks([])
fig.tight_layout()
plt.show()

# %%
# The two columns measure different things. The first is inversion on the
# decoder's own renderings, which replay trains for. The second is inversion of
# real scenes, which differ from any rendering as much as the decoder is
# imperfect: an encoder trained on renderings alone meets that gap on real
# images. This is the bound named at the top — replay is as good as the
# decoder's renderings of new combinations — and search, which fits the real
# image directly, is not subject to it.

# %%
# OOD scenes as each encoder sees them
# ------------------------------------
# Rendering of each encoder's one-pass slots for the same OOD scenes (no search).
generator.set_params(search=None)
replay.set_params(search=None)
images = X_ood[:8]
rows = [
    images,
    generator.inverse_transform(generator.transform(images)),
    generator.inverse_transform(replay.transform(images)),
]
labels = ["OOD input", "generator's\nencoder", "replay\nencoder"]
fig, axes = plt.subplots(3, 8, figsize=(9, 3.8))
for r, (row, label) in enumerate(zip(rows, labels)):
    for c in range(8):
        show(axes[r, c], row[c])
    axes[r, 0].set_ylabel(label, fontsize="small")
fig.tight_layout()
plt.show()
