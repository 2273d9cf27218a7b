"""Decoder specifications: what a slot estimator's decoder is, as parameter objects.

A :class:`~compgen_sk.GenerativeInverter` takes its decoder as an object, the way
:class:`~sklearn.gaussian_process.GaussianProcessRegressor` takes a kernel::

    GenerativeInverter(decoder=AdditiveDecoder(renderer="broadcast", shared=True))

Each specification validates its own options, owns its penalty, and builds the
torch module (:mod:`compgen_sk.modules`) when the estimator fits. Its options are
nested parameters of the estimator (``decoder__renderer``), so that
:class:`~sklearn.model_selection.GridSearchCV` tunes them. The strings
``"additive"``, ``"masked"``, ``"transformer"`` and ``"mlp"`` stand for the
specifications at their defaults.

- :class:`AdditiveDecoder`: per-slot renderings summed; slots never interact.
- :class:`MaskedDecoder`: per-slot renderings composited by softmax masks over
  slots; slots interact by occlusion only.
- :class:`TransformerDecoder`: pixel queries cross-attend to the slots;
  interaction bounded by a penalty.
- :class:`MLPDecoder`: one network on the concatenated slots; any interaction.
"""

from __future__ import annotations

from numbers import Integral, Real

from sklearn.base import BaseEstimator, clone

from ._sklearn_compat import Interval, StrOptions
from .modules import (
    RENDERERS,
    AdditiveDecoderModule,
    MaskedDecoderModule,
    MLPDecoderModule,
    TransformerDecoderModule,
)

__all__ = [
    "AdditiveDecoder",
    "BaseDecoder",
    "MLPDecoder",
    "MaskedDecoder",
    "TransformerDecoder",
    "check_decoder",
]

# The renderers that renderer="auto" tries on images.
AUTO_RENDERERS = ("mlp", "broadcast")
_RENDERER_OPTIONS = [StrOptions({"auto", *RENDERERS}), list, tuple]
_PENALTY_EPOCHS = [Interval(Integral, 1, None, closed="left"), None]
_HIDDEN = [tuple, list, None]


class BaseDecoder(BaseEstimator):
    """Base class of the decoder specifications; not for direct use.

    A specification says what decoder to build; :meth:`build` makes the
    untrained torch module for a number of slots and an output shape, and
    :meth:`candidates` lists the concrete specifications that a fit tries
    (several where ``renderer`` names several). Subclasses implement
    ``_module`` (the module) and, where they have a penalty, ``_penalty``.

    Examples
    --------
    >>> from compgen_sk.decoders import AdditiveDecoder, BaseDecoder
    >>> isinstance(AdditiveDecoder(), BaseDecoder)
    True
    """

    #: Whether the decoder draws each slot with a renderer.
    has_renderer = False

    @property
    def exchangeable_slots(self):
        """Whether slot order means nothing to this decoder, so that
        recombined scenes (consistency, replay) draw every slot from all
        slots rather than slot k from the k-th slots."""
        return False

    def penalty(self):
        """The decoder's penalty on slot interaction in the training loss.

        Returns
        -------
        weight : float
            Its weight (0: no penalty).
        epochs : int or None
            The epochs, from the first, that weigh it; None: all.
        """
        return self._penalty()

    def _penalty(self):
        return 0.0, None

    def candidates(self, output_shape):
        """The concrete specifications a fit tries, one per renderer.

        Parameters
        ----------
        output_shape : tuple of int
            Shape of one output sample: (C, H, W) for images, (D,) for vectors.

        Returns
        -------
        candidates : list of BaseDecoder
            Validated copies, each naming one renderer (``[self]`` for a
            decoder without renderer).
        """
        self._validate_params()
        if not self.has_renderer:
            return [self]
        names = self.renderer
        if isinstance(names, str):
            names = (
                (AUTO_RENDERERS if len(output_shape) == 3 else ("mlp",))
                if names == "auto"
                else (names,)
            )
        names = tuple(names)
        unknown = [n for n in names if n not in RENDERERS]
        if not names or unknown or len(set(names)) != len(names):
            raise ValueError(
                f"renderer must be 'auto', one of {RENDERERS} or a list of distinct "
                f"ones; got {self.renderer!r}."
            )
        return [clone(self).set_params(renderer=name) for name in names]

    def build(self, n_slots, slot_dim, output_shape):
        """The untrained torch module (a concrete renderer must be named).

        Parameters
        ----------
        n_slots : int
            Number of slots K.
        slot_dim : int
            Dimension of each slot.
        output_shape : tuple of int
            Shape of one output sample: (C, H, W) for images, (D,) for vectors.

        Returns
        -------
        module : torch.nn.Module
            Maps slots (n, K, slot_dim) to outputs ``(n, *output_shape)``.
        """
        return self._module(n_slots, slot_dim, tuple(output_shape))

    def _module(self, n_slots, slot_dim, output_shape):
        raise NotImplementedError

    def _renderer_params(self):
        """Keyword arguments of the renderer: its hidden widths if given."""
        if self.renderer not in RENDERERS:
            raise ValueError(
                f"{type(self).__name__} builds one renderer; got renderer="
                f"{self.renderer!r} (see candidates)."
            )
        return {} if self.hidden is None else {"hidden": tuple(self.hidden)}


_RENDERER_DOC = """renderer : {"auto", "mlp", "broadcast", "conv"} or list of them, \
default="auto"
        How a slot is drawn: ``"mlp"``, one MLP from the slot to the whole
        output (any output; content at fixed places); ``"broadcast"``, one
        small MLP applied at every pixel to the slot and the pixel's
        coordinates (images; objects that move about); ``"conv"``,
        transposed convolutions (images). A list names candidates: each
        trains for the first half of ``max_epochs``, and the one with the
        lowest training loss in that trial trains on to the end
        (``renderer_``, ``renderer_losses_``).
        ``"auto"`` is the list ``["mlp", "broadcast"]`` on images and
        ``"mlp"`` on vectors."""
_HIDDEN_DOC = """hidden : tuple of int or None, default=None
        Widths of the renderer's hidden layers; None: the renderer's own
        default ((256, 256) for ``"mlp"``, (32, 32) for ``"broadcast"``, one
        width (32,) for ``"conv"``, its channels)."""


class AdditiveDecoder(BaseDecoder):
    """``f(z) = sum_k f_k(z_k)``: slots never interact (Lachapelle et al. 2023).

    Parameters
    ----------
    {renderer}
    shared : bool, default=False
        One renderer for every slot instead of one per slot: the slots are
        then exchangeable (objects of one kind), and recombined scenes draw
        every slot from all slots.
    {hidden}
    overlap_penalty : float >= 0, default=0.0
        Weight of :func:`~compgen_sk.modules.overlap_penalty`, how much the
        slots' renderings draw the same output elements, in the training
        loss (recorded as ``train_interaction``). A penalty in the first
        epochs keeps a spatial-broadcast renderer from binding two slots to
        one object (:ref:`decoder-overlap`).
    penalty_epochs : int >= 1 or None, default=None
        Epochs, from the first, that weigh the penalty; None: all.

    Examples
    --------
    >>> from compgen_sk import AdditiveDecoder, GenerativeInverter
    >>> decoder = AdditiveDecoder(renderer="broadcast", overlap_penalty=0.1,
    ...                           penalty_epochs=15)
    >>> GenerativeInverter(decoder=decoder).get_params()["decoder__renderer"]
    'broadcast'
    """

    has_renderer = True
    _parameter_constraints: dict = {
        "renderer": _RENDERER_OPTIONS,
        "shared": ["boolean"],
        "hidden": _HIDDEN,
        "overlap_penalty": [Interval(Real, 0, None, closed="left")],
        "penalty_epochs": _PENALTY_EPOCHS,
    }

    def __init__(
        self,
        renderer="auto",
        *,
        shared=False,
        hidden=None,
        overlap_penalty=0.0,
        penalty_epochs=None,
    ):
        self.renderer = renderer
        self.shared = shared
        self.hidden = hidden
        self.overlap_penalty = overlap_penalty
        self.penalty_epochs = penalty_epochs

    @property
    def exchangeable_slots(self):
        return bool(self.shared)

    def _penalty(self):
        return float(self.overlap_penalty), self.penalty_epochs

    def _module(self, n_slots, slot_dim, output_shape):
        return AdditiveDecoderModule(
            n_slots,
            slot_dim,
            output_shape,
            shared=self.shared,
            renderer=self.renderer,
            # The penalty is computed only when it is weighed.
            overlap=self.overlap_penalty > 0,
            **self._renderer_params(),
        )


class MaskedDecoder(BaseDecoder):
    """Per-slot renderings composited by softmax masks: slots interact by occlusion.

    Each slot is rendered to its content and a mask logit per output element
    (the spatial-broadcast decoder of Slot Attention, with any renderer); the
    masks are a softmax over slots.

    Parameters
    ----------
    {renderer}
    shared : bool, default=True
        One renderer for every slot (the slots are exchangeable, and
        recombined scenes draw every slot from all slots) instead of one per
        slot.
    background : {{"mlp", "conv", "broadcast"}} or None, default=None
        Slot 0 is a background, drawn by a renderer of this kind (with its
        default widths) over the whole image, behind the other slots: they
        cover it where their masks say, it covers nothing. For objects in front
        of a scene (:ref:`decoder-occlusion`); slot 0 then plays its own role,
        so the slots are not exchangeable. None: every slot is drawn alike.
    {hidden}

    Examples
    --------
    >>> from compgen_sk import MaskedDecoder
    >>> MaskedDecoder(renderer="broadcast").exchangeable_slots
    True
    >>> MaskedDecoder("conv", background="mlp").exchangeable_slots
    False
    """

    has_renderer = True
    _parameter_constraints: dict = {
        "renderer": _RENDERER_OPTIONS,
        "shared": ["boolean"],
        "background": [StrOptions(set(RENDERERS)), None],
        "hidden": _HIDDEN,
    }

    def __init__(self, renderer="auto", *, shared=True, background=None, hidden=None):
        self.renderer = renderer
        self.shared = shared
        self.background = background
        self.hidden = hidden

    @property
    def exchangeable_slots(self):
        return bool(self.shared) and self.background is None

    def _module(self, n_slots, slot_dim, output_shape):
        return MaskedDecoderModule(
            n_slots,
            slot_dim,
            output_shape,
            shared=self.shared,
            renderer=self.renderer,
            background=self.background,
            **self._renderer_params(),
        )


class TransformerDecoder(BaseDecoder):
    """Output-element queries that cross-attend to the slots (Brady et al. 2025).

    Every pixel (or vector feature) has a learned query; ``n_layers`` blocks
    of cross-attention to the slots and an MLP update it, and a linear map
    reads the output off it. Slots enter as a set (no slot position), so they
    are exchangeable. The interaction penalty, ``sum_{{i<j}} a_i a_j`` of every
    query's attention weights over slots, bounds how slots interact
    (:func:`~compgen_sk.modules.interaction_penalty`).

    Parameters
    ----------
    embed_dim : int, default=64
        Width of the queries and of the embedded slots.
    n_heads : int, default=4
        Attention heads of each block; must divide ``embed_dim``.
    n_layers : int, default=2
        Cross-attention blocks.
    mlp_ratio : int, default=2
        Hidden width of each block's MLP, as a multiple of ``embed_dim``.
    interaction_penalty : float >= 0, default=0.0
        Weight of the interaction penalty in the training loss (recorded as
        ``train_interaction``).
    penalty_epochs : int >= 1 or None, default=None
        Epochs, from the first, that weigh the penalty; None: all.

    Examples
    --------
    >>> from compgen_sk import TransformerDecoder
    >>> TransformerDecoder(interaction_penalty=0.05).penalty()
    (0.05, None)
    """

    _parameter_constraints: dict = {
        "embed_dim": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "mlp_ratio": [Interval(Integral, 1, None, closed="left")],
        "interaction_penalty": [Interval(Real, 0, None, closed="left")],
        "penalty_epochs": _PENALTY_EPOCHS,
    }

    def __init__(
        self,
        *,
        embed_dim=64,
        n_heads=4,
        n_layers=2,
        mlp_ratio=2,
        interaction_penalty=0.0,
        penalty_epochs=None,
    ):
        self.embed_dim = embed_dim
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.mlp_ratio = mlp_ratio
        self.interaction_penalty = interaction_penalty
        self.penalty_epochs = penalty_epochs

    @property
    def exchangeable_slots(self):
        return True

    def _penalty(self):
        return float(self.interaction_penalty), self.penalty_epochs

    def _module(self, n_slots, slot_dim, output_shape):
        if self.embed_dim % self.n_heads:
            raise ValueError(
                f"n_heads={self.n_heads} must divide embed_dim={self.embed_dim}."
            )
        return TransformerDecoderModule(
            n_slots,
            slot_dim,
            output_shape,
            embed_dim=self.embed_dim,
            n_heads=self.n_heads,
            n_layers=self.n_layers,
            mlp_ratio=self.mlp_ratio,
        )


class MLPDecoder(BaseDecoder):
    """An unconstrained decoder on the concatenated slots: no inductive bias.

    With the same encoder, search and data, it isolates what a decoder's
    structure contributes.

    Parameters
    ----------
    {renderer}
    {hidden}

    Examples
    --------
    >>> from compgen_sk import MLPDecoder
    >>> [c.renderer for c in MLPDecoder().candidates((3, 16, 16))]
    ['mlp', 'broadcast']
    """

    has_renderer = True
    _parameter_constraints: dict = {
        "renderer": _RENDERER_OPTIONS,
        "hidden": _HIDDEN,
    }

    def __init__(self, renderer="auto", *, hidden=None):
        self.renderer = renderer
        self.hidden = hidden

    def _module(self, n_slots, slot_dim, output_shape):
        return MLPDecoderModule(
            n_slots,
            slot_dim,
            output_shape,
            renderer=self.renderer,
            **self._renderer_params(),
        )


for _cls in (AdditiveDecoder, MaskedDecoder, MLPDecoder):
    _cls.__doc__ = _cls.__doc__.format(renderer=_RENDERER_DOC, hidden=_HIDDEN_DOC)
TransformerDecoder.__doc__ = TransformerDecoder.__doc__.format()

#: The decoder that each string shortcut stands for, at its defaults.
DECODERS = {
    "additive": AdditiveDecoder,
    "masked": MaskedDecoder,
    "transformer": TransformerDecoder,
    "mlp": MLPDecoder,
}


def check_decoder(decoder):
    """The validated specification that ``decoder`` stands for.

    Parameters
    ----------
    decoder : {"additive", "masked", "transformer", "mlp"} or BaseDecoder
        A shortcut string (a new specification at its defaults) or a
        specification.

    Returns
    -------
    decoder : BaseDecoder
        The specification, its parameters validated.
    """
    if isinstance(decoder, str):
        decoder = DECODERS[decoder]()
    decoder._validate_params()
    return decoder
