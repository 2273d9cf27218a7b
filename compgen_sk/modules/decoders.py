"""Slot decoders with different inductive biases (:ref:`background-decoder-classes`).

Every decoder maps slots ``z`` of shape (n, K, d) to outputs of shape
``(n, *output_shape)``, where ``output_shape`` is ``(C, H, W)`` for images or
``(D,)`` for vectors. Decoders that compose per-slot renderings also expose
``render_slots(z)`` of shape ``(n, K, *output_shape)``.

=============  ==============================================  =====================
module         composition                                     slot interaction
=============  ==============================================  =====================
additive       per-slot renderings summed                      none
masked         per-slot renderings, softmax masks over slots   occlusion only
transformer    pixel queries cross-attend to the slots         bounded, penalized
mlp            one network on the concatenated slots           any
=============  ==============================================  =====================

The estimators build these modules from decoder specifications
(:mod:`compgen_sk.decoders`).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

#: Names accepted as ``renderer`` by the decoders that render with one.
RENDERERS = ("mlp", "conv", "broadcast")
_MIN_CONV_MAP = 4


def _numel(shape):
    return math.prod(shape)


def _mlp_layers(in_dim, hidden, out_dim):
    """Linear + ReLU for every width in ``hidden``, then a linear output layer."""
    layers, width = [], in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return [*layers, nn.Linear(width, out_dim)]


def _image_shape(output_shape, renderer):
    """``output_shape`` as (C, H, W); a ValueError naming ``renderer`` otherwise."""
    if len(output_shape) != 3:
        raise ValueError(
            f"renderer={renderer!r} draws images (C, H, W), not shape {output_shape}."
        )
    return tuple(output_shape)


class MLPRenderer(nn.Module):
    """ReLU MLP from a vector to an output of any shape.

    Parameters
    ----------
    in_dim : int
        Size of each input vector.
    output_shape : tuple of int
        Shape of one output sample; the output has shape ``(n, *output_shape)``.
    hidden : tuple of int, default=(256, 256)
        Widths of the hidden layers, each followed by a ReLU; ``()`` makes the
        renderer a single linear map.
    """

    def __init__(self, in_dim, output_shape, hidden=(256, 256)):
        super().__init__()
        self.net = nn.Sequential(*_mlp_layers(in_dim, hidden, _numel(output_shape)))
        self.output_shape = tuple(output_shape)

    def forward(self, z):
        return self.net(z).view(-1, *self.output_shape)


class ConvRenderer(nn.Module):
    """A linear map to a small feature map, upsampled by transposed convolutions.

    The feature map starts at about 4 pixels on its shorter side and doubles until
    it covers the image, which is then cropped to ``(H, W)``.

    Parameters
    ----------
    in_dim : int
        Size of each input vector.
    output_shape : (C, H, W)
        Shape of one output image: channels, height and width. Other shapes raise
        a ValueError.
    hidden : tuple of one int, default=(32,)
        Channels of the starting feature map and of every transposed
        convolution.
    """

    def __init__(self, in_dim, output_shape, hidden=(32,)):
        super().__init__()
        out_channels, height, width = _image_shape(output_shape, "conv")
        hidden = tuple(hidden)
        if len(hidden) != 1:
            raise ValueError(
                "renderer='conv' takes one width, its channels: hidden=(32,); got "
                f"hidden={hidden!r}."
            )
        (channels,) = hidden
        n_up = max(0, int(math.log2(min(height, width) / _MIN_CONV_MAP)))
        self.start = (
            channels,
            math.ceil(height / 2**n_up),
            math.ceil(width / 2**n_up),
        )
        self.project = nn.Linear(in_dim, _numel(self.start))
        layers = []
        for _ in range(n_up):
            layers += [nn.ReLU(), nn.ConvTranspose2d(channels, channels, 4, 2, 1)]
        layers += [nn.ReLU(), nn.Conv2d(channels, out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)
        self.output_shape = tuple(output_shape)

    def forward(self, z):
        image = self.net(self.project(z).view(-1, *self.start))
        return image[:, :, : self.output_shape[1], : self.output_shape[2]]


class BroadcastRenderer(nn.Module):
    """A spatial-broadcast renderer: one small MLP applied at every pixel.

    Each pixel's value is ``MLP([z, x, y])``, where ``(x, y)`` are the pixel's
    coordinates in [-1, 1], as in the spatial-broadcast decoder of Slot Attention
    without its convolutions. An object that moves is a shift of the first
    layer's pre-activations, so objects drawn anywhere in the image share one
    set of weights: this renderer learns scenes of moving objects far better
    than :class:`MLPRenderer`, and content drawn at fixed places (such as
    digits in fixed cells) far worse (:ref:`decoder-renderers`). The first layer
    is computed once per slot and once per pixel and the two are broadcast-added,
    so the cost per pixel is that of the other layers.

    Parameters
    ----------
    in_dim : int
        Size of each input vector.
    output_shape : (C, H, W)
        Shape of one output image: channels, height and width. Other shapes raise
        a ValueError.
    hidden : tuple of int, default=(32, 32)
        Widths of the hidden layers, each followed by a ReLU; at least one
        (shapes need two: edges, then their intersection).
    gain : float, default=9.0
        The weights are stored divided by ``gain`` and every layer's output is
        multiplied by it. The function at initialization is unchanged, but an
        Adam step moves the weights ``gain`` times as far: the renderer learns
        at the estimator's learning rate as it would at ``gain`` times that
        rate, while the encoder keeps its own. (Exactly so for Adam and
        RMSprop; AdamW's weight decay acts on the stored weights, and plain
        SGD moves them ``gain**2`` times as far.) Inside a whole model the
        renderer must learn faster than the encoder that feeds it; the user
        guide (:ref:`decoder-renderers`) says how the default was chosen.
    """

    def __init__(self, in_dim, output_shape, hidden=(32, 32), gain=9.0):
        super().__init__()
        channels, height, width = _image_shape(output_shape, "broadcast")
        hidden = tuple(hidden)
        if not hidden:
            raise ValueError("renderer='broadcast' needs at least one hidden layer.")
        if not (isinstance(gain, numbers.Real) and math.isfinite(gain) and gain > 0):
            raise ValueError(f"gain must be a positive number, got {gain!r}.")
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij"
        )
        self.register_buffer("coords", torch.stack([xs, ys], -1).view(-1, 2))
        self.from_slot = nn.Linear(in_dim, hidden[0])
        self.from_coords = nn.Linear(2, hidden[0], bias=False)
        self.net = nn.Sequential(
            nn.ReLU(), *_mlp_layers(hidden[0], hidden[1:], channels)
        )
        self.output_shape = tuple(output_shape)
        # A buffer, so that saved weights are loaded with the gain they were
        # trained at.
        self.register_buffer("gain", torch.tensor(float(gain)))
        with torch.no_grad():
            for weight in self.parameters():
                weight.div_(gain)

    def forward(self, z):
        channels, height, width = self.output_shape
        first = self.from_slot(z)[:, None, :] + self.from_coords(self.coords)[None]
        pixels = first * self.gain  # (n, H * W, hidden[0])
        for layer in self.net:
            pixels = layer(pixels)
            if isinstance(layer, nn.Linear):
                pixels = pixels * self.gain
        return pixels.transpose(1, 2).reshape(-1, channels, height, width)


def make_renderer(in_dim, output_shape, renderer="mlp", **params):
    """A renderer by name.

    Parameters
    ----------
    in_dim : int
        Size of each input vector.
    output_shape : tuple of int
        Shape of one output sample.
    renderer : {"mlp", "conv", "broadcast"}, default="mlp"
        :class:`MLPRenderer` (any output), :class:`ConvRenderer` or
        :class:`BroadcastRenderer` (images).
    **params
        Passed to the renderer (``hidden``).

    Returns
    -------
    renderer : torch.nn.Module
        The untrained renderer.
    """
    if renderer == "mlp":
        return MLPRenderer(in_dim, output_shape, **params)
    if renderer == "conv":
        return ConvRenderer(in_dim, output_shape, **params)
    if renderer == "broadcast":
        return BroadcastRenderer(in_dim, output_shape, **params)
    raise ValueError(f"Unknown renderer {renderer!r}; use one of {RENDERERS}.")


class _PerSlotRenderers(nn.Module):
    """One renderer shared by all slots, or one per slot."""

    def __init__(self, n_slots, slot_dim, output_shape, shared, **renderer_params):
        super().__init__()
        self.shared = shared
        count = 1 if shared else n_slots
        self.renderers = nn.ModuleList(
            make_renderer(slot_dim, output_shape, **renderer_params)
            for _ in range(count)
        )

    def forward(self, z):
        n, n_slots, slot_dim = z.shape
        if self.shared:
            out = self.renderers[0](z.reshape(n * n_slots, slot_dim))
            return out.view(n, n_slots, *out.shape[1:])
        return torch.stack([r(z[:, k]) for k, r in enumerate(self.renderers)], dim=1)


class AdditiveDecoderModule(nn.Module):
    """``f(z) = sum_k f_k(z_k)``: slots never interact (Lachapelle et al. 2023).

    Parameters
    ----------
    n_slots : int
        Number of slots K.
    slot_dim : int
        Dimension d of each slot.
    output_shape : tuple of int
        Shape of one output sample: ``(C, H, W)`` for images or ``(D,)`` for
        vectors.
    shared : bool, default=False
        One renderer for every slot (slots exchangeable, as in Wiedemer et al.'s
        ``SlotMLPAdditive``) instead of one per slot.
    renderer : {"mlp", "conv", "broadcast"}, default="mlp"
        Network that renders each slot: :class:`MLPRenderer` (any output),
        :class:`ConvRenderer` or :class:`BroadcastRenderer` (images only).
    overlap : bool, default=False
        ``forward_with_penalty`` also returns :func:`overlap_penalty` of the
        slots' renderings (else None), for a loss to weigh.
    **renderer_params
        Passed to the renderer (``hidden``).
    """

    def __init__(
        self,
        n_slots,
        slot_dim,
        output_shape,
        shared=False,
        renderer="mlp",
        overlap=False,
        **renderer_params,
    ):
        super().__init__()
        self.overlap = overlap
        self.slots = _PerSlotRenderers(
            n_slots,
            slot_dim,
            output_shape,
            shared,
            renderer=renderer,
            **renderer_params,
        )

    def render_slots(self, z):
        """Each slot's additive contribution, ``(n, K, *output_shape)``."""
        return self.slots(z)

    def forward(self, z):
        return self.slots(z).sum(dim=1)

    def forward_with_penalty(self, z):
        """Output, and :func:`overlap_penalty` of the slots' renderings where
        ``overlap`` (else None)."""
        if not self.overlap:
            return self.forward(z), None
        renderings = self.slots(z)
        return renderings.sum(dim=1), overlap_penalty(renderings)


class MaskedDecoderModule(nn.Module):
    """Per-slot renderings composited by softmax masks over slots (occlusion).

    Each slot is rendered to its content and a mask logit per output element
    (the spatial-broadcast decoder of Slot Attention, with any renderer); the
    masks are a softmax over slots, so slots interact only through occlusion.

    Parameters
    ----------
    n_slots : int
        Number of slots K.
    slot_dim : int
        Dimension d of each slot.
    output_shape : tuple of int
        Shape of one output sample: ``(C, H, W)`` for images or ``(D,)`` for
        vectors.
    shared : bool, default=True
        One renderer for every slot (slots exchangeable) instead of one per slot.
    renderer : {"mlp", "conv", "broadcast"}, default="mlp"
        Network that renders each slot: :class:`MLPRenderer` (any output),
        :class:`ConvRenderer` or :class:`BroadcastRenderer` (images only).
    background : {"mlp", "conv", "broadcast"} or None, default=None
        Slot 0 is a background drawn by a renderer of this kind (with its
        default widths) over the whole output, behind the other slots: it
        has no mask logit of its own (a fixed 0), so each other slot covers it
        where its mask logit is high. Needs two slots or more.
    **renderer_params
        Passed to the renderer (``hidden``).
    """

    def __init__(
        self,
        n_slots,
        slot_dim,
        output_shape,
        shared=True,
        renderer="mlp",
        background=None,
        **renderer_params,
    ):
        super().__init__()
        self.output_shape = tuple(output_shape)
        if len(output_shape) == 3:
            channels, height, width = output_shape
            rendered = (channels + 1, height, width)
        else:
            rendered = (2, *output_shape)
        if background is None:
            self.background = None
        elif n_slots < 2:
            raise ValueError(
                f"A background slot needs n_slots >= 2 (one background, then "
                f"objects); got n_slots={n_slots}."
            )
        else:
            self.background = make_renderer(slot_dim, output_shape, background)
            n_slots -= 1
        self.slots = _PerSlotRenderers(
            n_slots, slot_dim, rendered, shared, renderer=renderer, **renderer_params
        )

    def contents_and_masks(self, z):
        """Per-slot contents and masks that sum to one over slots.

        Contents have shape ``(n, K, *output_shape)``; masks ``(n, K, 1, H, W)``
        for images and ``(n, K, D)`` for vectors.
        """
        drawn = z if self.background is None else z[:, 1:]
        rendered = self.slots(drawn)  # (n, drawn slots, C + 1, H, W) or (.., 2, D)
        content, logits = rendered[:, :, :-1], rendered[:, :, -1:]
        if self.background is not None:
            behind = self.background(z[:, 0]).view(-1, 1, *content.shape[2:])
            content = torch.cat([behind, content], dim=1)
            logits = torch.cat([torch.zeros_like(logits[:, :1]), logits], dim=1)
        masks = torch.softmax(logits, dim=1)
        if len(self.output_shape) == 1:
            content, masks = content.squeeze(2), masks.squeeze(2)
        return content, masks

    def render_slots(self, z):
        """Each slot's masked contribution, ``(n, K, *output_shape)``; sums to f(z)."""
        content, masks = self.contents_and_masks(z)
        return content * masks

    def forward(self, z):
        return self.render_slots(z).sum(dim=1)


class _CrossAttentionBlock(nn.Module):
    def __init__(self, embed_dim, n_heads, mlp_ratio):
        super().__init__()
        self.norm_query = nn.LayerNorm(embed_dim)
        self.attention = nn.MultiheadAttention(embed_dim, n_heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(embed_dim)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, mlp_ratio * embed_dim),
            nn.GELU(),
            nn.Linear(mlp_ratio * embed_dim, embed_dim),
        )

    def forward(self, h, slots):
        update, weights = self.attention(
            self.norm_query(h),
            slots,
            slots,
            need_weights=True,
            average_attn_weights=False,
        )
        h = h + update
        return h + self.mlp(self.norm_mlp(h)), weights


def interaction_penalty(weights):
    """Cross-slot interaction of attention weights (Brady et al. 2025).

    ``weights`` (n, heads, P, K) sum to one over slots; per output element the
    penalty is ``sum_{i<j} a_i a_j = (1 - sum_i a_i^2) / 2``, summed over heads and
    averaged over elements. It is 0 exactly when every element attends to one
    slot per head.

    Parameters
    ----------
    weights : Tensor of shape (n, heads, P, K)
        Attention weights of the P output elements over the K slots, per head;
        each row sums to one over slots.

    Returns
    -------
    penalty : Tensor of shape (n,)
        Interaction penalty of each sample.
    """
    pairwise = 0.5 * (1.0 - weights.pow(2).sum(dim=-1))
    return pairwise.sum(dim=1).mean(dim=-1)


def overlap_penalty(renderings):
    """How much the slots of an additive decoder draw the same output elements.

    Per sample, ``sum_p sum_{i<j} |r_ip| |r_jp| / sum_p sum_k r_kp^2`` over the
    output elements p of the slots' renderings r_k (deviations from the data
    mean, in standardized units): 0 exactly when every element is drawn by one
    slot at most, at most (K - 1) / 2. It is the rendering counterpart of
    compositional contrast (Brady et al. 2023), without Jacobians.

    Parameters
    ----------
    renderings : Tensor of shape (n, K, ...)
        Each slot's additive contribution.

    Returns
    -------
    penalty : Tensor of shape (n,)
        Overlap of each sample's renderings.
    """
    magnitude = renderings.flatten(2).float().abs()  # sums over P overflow float16
    total = magnitude.sum(dim=1)
    squares = magnitude.pow(2).sum(dim=1)
    pairwise = 0.5 * (total.pow(2) - squares)  # sum_{i<j} |r_i| |r_j| per element
    return pairwise.sum(dim=1) / (squares.sum(dim=1) + 1e-6)


class TransformerDecoderModule(nn.Module):
    """Output-element queries that cross-attend to the slots (Brady et al. 2025).

    Every pixel (or vector feature) has a learned positional query; ``n_layers``
    blocks of cross-attention to the slots and an MLP update the queries, and a
    linear map reads the output channels off each query. ``forward_with_penalty``
    also returns :func:`interaction_penalty` averaged over layers.

    Parameters
    ----------
    n_slots : int
        Number of slots K.
    slot_dim : int
        Dimension d of each slot.
    output_shape : tuple of int
        Shape of one output sample: ``(C, H, W)`` for images (one query per
        pixel, read out to C channels) or ``(D,)`` for vectors (one query per
        feature).
    embed_dim : int, default=64
        Width of the queries and of the slots once embedded.
    n_heads : int, default=4
        Attention heads of each cross-attention block; must divide ``embed_dim``.
    n_layers : int, default=2
        Number of cross-attention blocks.
    mlp_ratio : int, default=2
        Hidden width of each block's MLP, as a multiple of ``embed_dim``.
    """

    def __init__(
        self,
        n_slots,
        slot_dim,
        output_shape,
        embed_dim=64,
        n_heads=4,
        n_layers=2,
        mlp_ratio=2,
    ):
        super().__init__()
        self.output_shape = tuple(output_shape)
        if len(output_shape) == 3:
            self.channels, n_queries = (
                output_shape[0],
                output_shape[1] * output_shape[2],
            )
        else:
            self.channels, n_queries = 1, _numel(output_shape)
        self.queries = nn.Parameter(torch.randn(n_queries, embed_dim) * 0.5)
        self.embed_slots = nn.Sequential(
            nn.Linear(slot_dim, embed_dim), nn.LayerNorm(embed_dim)
        )
        self.blocks = nn.ModuleList(
            _CrossAttentionBlock(embed_dim, n_heads, mlp_ratio) for _ in range(n_layers)
        )
        self.readout = nn.Sequential(
            nn.LayerNorm(embed_dim), nn.Linear(embed_dim, self.channels)
        )

    def forward_with_penalty(self, z):
        """Outputs and the per-sample interaction penalty averaged over layers."""
        slots = self.embed_slots(z)
        h = self.queries.expand(z.shape[0], -1, -1)
        penalties = []
        for block in self.blocks:
            h, weights = block(h, slots)
            penalties.append(interaction_penalty(weights))
        out = self.readout(h)  # (n, P, C)
        if len(self.output_shape) == 3:
            out = out.transpose(1, 2)
        out = out.reshape(z.shape[0], *self.output_shape)
        return out, torch.stack(penalties).mean(dim=0)

    def forward(self, z):
        return self.forward_with_penalty(z)[0]


class MLPDecoderModule(nn.Module):
    """An unconstrained decoder on the concatenated slots: the no-bias baseline.

    Parameters
    ----------
    n_slots : int
        Number of slots K.
    slot_dim : int
        Dimension d of each slot.
    output_shape : tuple of int
        Shape of one output sample: ``(C, H, W)`` for images or ``(D,)`` for
        vectors.
    renderer : {"mlp", "conv", "broadcast"}, default="mlp"
        Network on the concatenated slots ``(n, K * d)``: :class:`MLPRenderer` (any
        output), :class:`ConvRenderer` or :class:`BroadcastRenderer` (images only).
    **renderer_params
        Passed to the renderer (``hidden``).
    """

    def __init__(
        self, n_slots, slot_dim, output_shape, renderer="mlp", **renderer_params
    ):
        super().__init__()
        self.net = make_renderer(
            n_slots * slot_dim, output_shape, renderer, **renderer_params
        )

    def forward(self, z):
        return self.net(z.flatten(1))
