"""
Textured objects in front of photographed backgrounds
=====================================================

:func:`~compgen_sk.datasets.make_object_scenes` draws one textured object (eight
silhouette and texture identities) in front of one of eight backgrounds cut from
the photographs that ship with scikit-learn. The object occludes the background
where it stands; its position and size vary continuously. Every object and every
background appears in domain (ID), and a Latin square of object × background
pairs is held out: the out-of-domain (OOD) scenes show a known object in front of
a known background it was never seen with.

We show the design, a few ID and OOD scenes, and the concept table a probe reads.
"""

# %%
# The design: which object × background pairs are in domain
# ----------------------------------------------------------
import os

import matplotlib.pyplot as plt
import numpy as np

from compgen_sk.datasets import make_object_scenes

FAST = os.environ.get("COMPGEN_EXAMPLES_FAST") == "1"

scenes = make_object_scenes(200 if FAST else 1000, image_size=32, random_state=0)

fig, ax = plt.subplots(figsize=(6, 5))
ax.imshow(~scenes.held_out, cmap="coolwarm_r", vmin=0, vmax=1)
ax.set_xticks(range(len(scenes.background_names)), scenes.background_names, rotation=60)
ax.set_yticks(range(len(scenes.object_names)), scenes.object_names)
ax.set_xlabel("background")
ax.set_ylabel("object")
ax.set_title("in domain (blue) and held-out pairs (red)")
fig.tight_layout()

# %%
# In-domain and held-out scenes
# -----------------------------
# Each row shows the same object: on the left in front of backgrounds it was
# seen with, on the right in front of a background of a held-out pair.
objects = scenes.concepts["object_identity"].cat.codes.to_numpy()
fig, axes = plt.subplots(4, 6, figsize=(9, 6))
for row, obj in enumerate(range(4)):
    id_rows = np.flatnonzero((objects == obj) & ~scenes.ood)[:4]
    ood_rows = np.flatnonzero((objects == obj) & scenes.ood)[:2]
    for col, index in enumerate(np.concatenate([id_rows, ood_rows])):
        ax = axes[row, col]
        ax.imshow(scenes.images[index].transpose(1, 2, 0))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("OOD" if scenes.ood[index] else "ID", fontsize=8)
    for ax in axes[row, len(id_rows) + len(ood_rows) :]:
        ax.axis("off")
    axes[row, 0].set_ylabel(scenes.object_names[obj].split(",")[0], fontsize=8)
fig.tight_layout()

# %%
# The concepts
# ------------
# Object and background identity are categorical (chance 1/8); the pose is
# continuous, in units of the image side. ``scenes.ood`` marks the held-out pairs.
print(scenes.concepts.head())
print(f"{scenes.ood.mean():.0%} of the scenes are out of domain")
