"""Encoder specifications: the backbone of a slot estimator's encoder, as objects.

A slot encoder is a backbone (inputs to features) and a linear slot head. The
estimators take the backbone as a specification (``encoder=ConvEncoder(channels=64)``,
tunable as ``encoder__channels``), as a shortcut string (``"cnn"``, ``"mlp"``, or
``"auto"``: a :class:`ConvEncoder` for images and an :class:`MLPEncoder` for
vectors), or as any torch module that maps inputs to features (copied, never
trained in place).
"""

from __future__ import annotations

import copy
from numbers import Integral

import torch
from sklearn.base import BaseEstimator
from torch import nn

from ._sklearn_compat import Interval
from .modules import ConvBackbone, MLPBackbone

__all__ = ["BaseEncoder", "ConvEncoder", "MLPEncoder", "build_backbone"]


class BaseEncoder(BaseEstimator):
    """Base class of the encoder specifications; not for direct use.

    Subclasses implement ``_backbone(input_shape)``.

    Examples
    --------
    >>> from compgen_sk.encoders import BaseEncoder, MLPEncoder
    >>> isinstance(MLPEncoder(), BaseEncoder)
    True
    """

    def build(self, input_shape):
        """The untrained backbone for samples of ``input_shape``.

        Parameters
        ----------
        input_shape : tuple of int
            Shape of one input sample: (C, H, W) for images, (D,) for vectors.

        Returns
        -------
        backbone : torch.nn.Module
            Maps inputs ``(n, *input_shape)`` to features (n, out_features).
        """
        return self._backbone(tuple(input_shape))

    def _backbone(self, input_shape):
        raise NotImplementedError


class ConvEncoder(BaseEncoder):
    """Strided convolutions, then a fully connected layer.

    The convolutions halve the resolution while the map is large
    (:class:`~compgen_sk.modules.ConvBackbone`).

    Parameters
    ----------
    channels : int, default=32
        Channels of every convolution.
    n_layers : int, default=4
        Convolutions; those that would leave a side under 4 pixels keep the
        resolution.
    hidden : int, default=256
        Width of the fully connected layer (the features of the slot head).

    Examples
    --------
    >>> from compgen_sk import ConvEncoder, GenerativeInverter
    >>> GenerativeInverter(encoder=ConvEncoder(channels=64)).get_params()[
    ...     "encoder__channels"]
    64
    """

    _parameter_constraints: dict = {
        "channels": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 0, None, closed="left")],
        "hidden": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, *, channels=32, n_layers=4, hidden=256):
        self.channels = channels
        self.n_layers = n_layers
        self.hidden = hidden

    def _backbone(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                "ConvEncoder needs images (n, C, H, W); got samples of shape "
                f"{tuple(input_shape)}. Use MLPEncoder (encoder='mlp') for vectors."
            )
        return ConvBackbone(
            input_shape,
            channels=self.channels,
            n_layers=self.n_layers,
            hidden=self.hidden,
        )


class MLPEncoder(BaseEncoder):
    """A ReLU MLP on the flattened inputs (:class:`~compgen_sk.modules.MLPBackbone`).

    Parameters
    ----------
    hidden : tuple of int, default=(256, 256)
        Widths of the hidden layers; the last is the width of the features.

    Examples
    --------
    >>> from compgen_sk import MLPEncoder
    >>> MLPEncoder(hidden=(64,)).build((20,)).out_features
    64
    """

    _parameter_constraints: dict = {"hidden": [tuple, list]}

    def __init__(self, *, hidden=(256, 256)):
        self.hidden = hidden

    def _backbone(self, input_shape):
        n_features = 1
        for size in input_shape:
            n_features *= size
        return MLPBackbone(n_features, hidden=tuple(self.hidden))


_SHORTCUTS = {"cnn": ConvEncoder, "mlp": MLPEncoder}


def build_backbone(encoder, input_shape):
    """The untrained backbone that ``encoder`` names and its features' width.

    Parameters
    ----------
    encoder : {"auto", "cnn", "mlp"}, BaseEncoder or torch.nn.Module
        ``"auto"`` is a :class:`ConvEncoder` for images and an
        :class:`MLPEncoder` for vectors; a torch module is copied (one that
        does not map samples of ``input_shape`` to features (n, F) raises a
        ValueError before training).
    input_shape : tuple of int
        Shape of one input sample.

    Returns
    -------
    backbone : torch.nn.Module
        Maps inputs to features.
    width : int
        Number of features per sample.
    """
    if isinstance(encoder, nn.Module):
        backbone = copy.deepcopy(encoder)
        return backbone, _module_width(backbone, input_shape)
    if isinstance(encoder, str):
        if encoder == "auto":
            encoder = "cnn" if len(input_shape) == 3 else "mlp"
        encoder = _SHORTCUTS[encoder]()
    encoder._validate_params()
    backbone = encoder.build(input_shape)
    return backbone, backbone.out_features


def _module_width(backbone, input_shape):
    """The output width of a user's backbone, from one dry forward on two
    zero samples."""
    try:
        param = next(backbone.parameters(), None)
        device = param.device if param is not None else "cpu"
        was_training = backbone.training
        backbone.eval()
        with torch.no_grad():
            out = backbone(torch.zeros((2, *input_shape), device=device))
        backbone.train(was_training)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ValueError(
            f"The encoder module {type(backbone).__name__} does not accept samples "
            f"of shape {tuple(input_shape)} (the shape of X without its first "
            f"axis): {exc}"
        ) from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out)
        raise ValueError(
            f"The encoder module {type(backbone).__name__} must map samples of "
            f"shape (n, {', '.join(map(str, input_shape))}) to features (n, "
            f"n_features); it returns {shape}."
        )
    return int(out.shape[1])
