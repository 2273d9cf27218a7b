"""Inference over arrays in batches: encoding, search, decoding.

Functions of fitted torch modules and an array read a batch at a time (X may be
disk-backed), without gradient except in search; the estimators' ``transform``,
``inverse_transform`` and ``render_slots`` call them.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from .._torch import eval_mode
from ._data import as_float_tensor

# Rows per forward pass when encoding or decoding without gradient.
INFERENCE_BATCH = 512


def on_device(module, device):
    """``module``, or a copy of it on ``device`` where it is elsewhere."""
    param = next(module.parameters(), None)
    if param is not None and param.device != torch.device(device):
        return copy.deepcopy(module).to(device)
    return module


def _batches(array, batch_size, device):
    for start in range(0, len(array), batch_size):
        yield start, as_float_tensor(array[start : start + batch_size]).to(device)


def map_array(fn, array, sample_shape, device, *modules):
    """``fn`` over ``array`` in batches, without gradient and with ``modules``
    in eval mode; returns (n, *sample_shape) float32."""
    out = np.empty((len(array), *sample_shape), dtype=np.float32)
    with eval_mode(*modules), torch.no_grad():
        for start, batch in _batches(array, INFERENCE_BATCH, device):
            out[start : start + len(batch)] = fn(batch).cpu().numpy()
    return out


def encode_slots(encoder, X, device):
    """The encoder's slots of X, (n, n_slots, slot_dim)."""
    return map_array(encoder, X, (encoder.n_slots, encoder.slot_dim), device, encoder)


def decode(decoder, Z, output_shape, device, *, per_slot=False):
    """Renderings of slots Z (n, K, d): ``(n, *output_shape)``, or each
    slot's apart, ``(n, K, *output_shape)``, with ``per_slot``."""
    if per_slot:
        shape = (Z.shape[1], *output_shape)
        return map_array(decoder.render_slots, Z, shape, device, decoder)
    return map_array(decoder, Z, output_shape, device, decoder)


def infer(encoder, decoder, X, search, bank, device, *, progress=False):
    """The encoder's guess for X refined by ``search`` (a
    :class:`~compgen_sk.GradientSearch`) on ``decoder`` (a
    :class:`~compgen_sk.modules.RescaledDecoder`), in chunks of
    ``search.batch_size`` so that memory stays bounded whatever ``len(X)``.

    The search runs in the decoder's standardized units: the same minimizer,
    and squared errors that stay finite for data of any size. ``bank`` holds
    slots of training images for restarts.
    """
    out = np.empty((len(X), encoder.n_slots, encoder.slot_dim), dtype=np.float32)
    chunks = _batches(X, search.batch_size, device)
    if progress:
        from tqdm.auto import tqdm

        total = math.ceil(len(X) / search.batch_size)
        chunks = tqdm(chunks, total=total, desc="search", unit="batch")
    bank = None if bank is None else torch.as_tensor(bank)
    with eval_mode(encoder, decoder):
        for start, x in chunks:
            with torch.no_grad():
                z = encoder(x)
            z = search.refine(decoder.decoder, decoder.standardize(x), z, bank)
            out[start : start + len(x)] = z.cpu().numpy()
    return out
