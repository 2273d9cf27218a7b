"""The Bunch every dataset returns, built in one place."""

from __future__ import annotations

import numpy as np
from sklearn.utils import Bunch


def build_bunch(
    *,
    images=None,
    data=None,
    latents,
    latent_names,
    concepts,
    ood,
    combination,
    descr,
    return_X_y,
    exchangeable=False,
    background=False,
    **extra,
):
    """Assemble the dataset Bunch, or ``(X, latents)`` with ``return_X_y``.

    ``X`` is ``images`` (n, C, H, W) for image datasets and ``data`` (n, d) for vector
    datasets; ``data`` is always the flattened view of ``images`` where there are some.
    Images are float32, except a disk-backed memmap (a uint8 cache), kept as is.
    ``exchangeable`` says that the true slots are objects of one kind in no
    fixed order (the Bunch's ``exchangeable_slots``): slots are then matched
    to objects per sample (``SlotProbe(matching="per_sample")``).
    ``background`` says that the last true slot is a background that the
    objects in front of it occlude (the Bunch's ``background_slot``).
    """
    if images is not None:
        if not isinstance(images, np.memmap):  # a cache on disk stays there
            images = np.ascontiguousarray(images, dtype=np.float32)
        data = images.reshape(len(images), -1)
    else:
        data = np.ascontiguousarray(data, dtype=np.float32)
    latents = np.ascontiguousarray(latents, dtype=np.float32)
    if return_X_y:
        return (images if images is not None else data), latents
    bunch = Bunch(
        data=data,
        latents=latents,
        latent_names=list(latent_names),
        concepts=concepts,
        ood=np.asarray(ood, dtype=bool),
        combination=np.asarray(combination, dtype=np.int64),
        exchangeable_slots=bool(exchangeable),
        background_slot=bool(background),
        DESCR=descr,
        **extra,
    )
    if images is not None:
        bunch.images = images
    return bunch
