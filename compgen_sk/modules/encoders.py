"""Slot encoders: a backbone (image or vector to features) and a slot head."""

from __future__ import annotations

from torch import nn

# Stop downsampling once the feature map is this small.
_MIN_FEATURE_MAP = 4


class ConvBackbone(nn.Module):
    """Convolutions, downsampling by two while the map is large, then an MLP layer.

    As in the encoder of Wiedemer et al. (2024), convolutions halve the
    resolution from the first layer on: full-resolution layers cost most of the
    computation and added nothing in our benchmarks.

    Parameters
    ----------
    input_shape : (C, H, W)
        Shape of one input image: channels, height and width.
    channels : int, default=32
        Channels of every convolution.
    n_layers : int, default=4
        Convolutions (kernel 4, stride 2) that halve the resolution while both
        sides stay >= 4 pixels; the rest keep it (kernel 3).
    hidden : int, default=256
        Width of the fully connected layer after flattening (the output size).
    """

    def __init__(self, input_shape, channels=32, n_layers=4, hidden=256):
        super().__init__()
        in_channels, height, width = input_shape
        layers = []
        for _ in range(n_layers):
            if min(height, width) >= 2 * _MIN_FEATURE_MAP:
                conv = nn.Conv2d(in_channels, channels, 4, stride=2, padding=1)
                height, width = height // 2, width // 2
            else:
                conv = nn.Conv2d(in_channels, channels, 3, padding=1)
            layers += [conv, nn.ReLU()]
            in_channels = channels
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.project = nn.Sequential(
            nn.Linear(channels * height * width, hidden), nn.ReLU()
        )
        self.out_features = hidden

    def forward(self, x):
        return self.project(self.features(x))


class MLPBackbone(nn.Module):
    """A ReLU MLP on vectors.

    Parameters
    ----------
    n_features : int
        Size of each input once flattened; inputs of any shape are flattened to
        (n, n_features).
    hidden : tuple of int, default=(256, 256)
        Widths of the hidden layers, each followed by a ReLU; the last is the
        output size (``n_features`` when empty).
    """

    def __init__(self, n_features, hidden=(256, 256)):
        super().__init__()
        layers, width = [], n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.net = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x):
        return self.net(x.flatten(1))


class SlotEncoder(nn.Module):
    """Backbone followed by a linear head giving ``n_slots`` slots of ``slot_dim``.

    With ``vae=True`` a second head gives each latent's log-variance
    (a diagonal Gaussian posterior).

    Parameters
    ----------
    backbone : nn.Module
        Maps inputs to features (n, n_features).
    n_features : int
        Width of the backbone's output.
    n_slots : int
        Number of slots K.
    slot_dim : int
        Dimension d of each slot.
    vae : bool, default=False
        Add the log-variance head, so that ``distribution`` returns a diagonal
        Gaussian posterior (log-variances clamped to [-10, 10]); without it the
        encoder is deterministic.
    """

    def __init__(self, backbone, n_features, n_slots, slot_dim, vae=False):
        super().__init__()
        self.backbone = backbone
        self.n_slots, self.slot_dim = n_slots, slot_dim
        self.mean = nn.Linear(n_features, n_slots * slot_dim)
        self.log_var = nn.Linear(n_features, n_slots * slot_dim) if vae else None

    def forward(self, x):
        """Slot means (n, n_slots, slot_dim)."""
        return self.mean(self.backbone(x)).view(-1, self.n_slots, self.slot_dim)

    def distribution(self, x):
        """Mean and log-variance (None without a VAE head), each (n, K, d)."""
        features = self.backbone(x)
        mean = self.mean(features).view(-1, self.n_slots, self.slot_dim)
        if self.log_var is None:
            return mean, None
        log_var = self.log_var(features).view(-1, self.n_slots, self.slot_dim)
        return mean, log_var.clamp(-10.0, 10.0)


def gaussian_kl(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per sample, summed over latents.

    Parameters
    ----------
    mean : Tensor of shape (n, ...)
        Means of the Gaussian posterior.
    log_var : Tensor of the shape of ``mean``
        Log-variances of the Gaussian posterior.

    Returns
    -------
    kl : Tensor of shape (n,)
        KL divergence of each sample's posterior from the standard normal prior.
    """
    return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).flatten(1).sum(1)
