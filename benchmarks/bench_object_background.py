"""A decoder that draws the background and the object apart, on object scenes.

    python benchmarks/bench_object_background.py [--epochs 150] [--seeds 0 1 2]
                                                 [--kl-weight 0.05]
                                                 [--estimator [--as-loop]]
                                                 [--n-jobs 3]

Slot 0 is drawn full-frame by an MLP renderer (the background), slot 1 by a
transposed-convolution renderer with an alpha channel, composited over it
(``x_hat = alpha * object + (1 - alpha) * background``, the decoder that
``MaskedDecoder(renderer="conv", background="mlp")`` builds for two slots), with
a VAE's encoder (KL weight 0.05 on the per-image summed squared error, or
``--kl-weight``). Trained on 3,000 ID scenes of
:func:`~compgen_sk.datasets.make_object_scenes` (32 px):
by default with a plain loop over the package's torch modules (Adam at 1e-3,
batches of 64, every epoch); with ``--estimator`` as a
:class:`~compgen_sk.GenerativeInverter` at its defaults otherwise (its
optimizer, learning-rate schedule and plateau stop), or with ``--as-loop``
trained as the loop is (Adam, a constant learning rate, every epoch). A linear
readout of object and background identity is then fitted on the slots of 1,000
of the training scenes, from each slot alone, and scored on 600 ID test and 600
OOD scenes (held-out object x background pairs), with the encoder's slots and
after 100 steps of gradient search from them. A decoder that separates the two
reads the object from slot 1 and not the background. Prints each seed, then
mean ± std.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

SLOT_DIM = 12
SIZE = 32


def fit_estimator(X, seed, epochs, kl_weight, as_loop=False):
    """The decoder as a :class:`~compgen_sk.GenerativeInverter` fitted on X."""
    import warnings

    from compgen_sk import GenerativeInverter, MaskedDecoder

    training = {}
    if as_loop:
        training = dict(optimizer="adam", callbacks=[("lr_plateau", None)], tol=None)
    model = GenerativeInverter(
        n_slots=2,
        slot_dim=SLOT_DIM,
        decoder=MaskedDecoder("conv", background="mlp"),
        kl_weight=kl_weight,
        max_epochs=epochs,
        random_state=seed,
        **training,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not converged": the loss still falls
        model.fit(X)
    return model


def fit_loop(X, train, epochs, kl_weight):
    """The decoder trained by a plain loop: fit seconds, and the function that
    infers slots (encoder, then ``steps`` of search) of rows of ``X``."""
    import torch
    from torch import nn

    from compgen_sk.inversion import search_latents
    from compgen_sk.modules import (
        ConvBackbone,
        ConvRenderer,
        MLPRenderer,
        SlotEncoder,
        gaussian_kl,
    )

    X = (X - X[train].mean(0, keepdim=True)) / X[train].std()

    class BackgroundAndObject(nn.Module):
        def __init__(self):
            super().__init__()
            self.background = MLPRenderer(SLOT_DIM, (3, SIZE, SIZE), (256, 256))
            self.object = ConvRenderer(SLOT_DIM, (4, SIZE, SIZE))

        def forward(self, z):
            drawn = self.object(z[:, 1])
            alpha = torch.sigmoid(drawn[:, 3:])
            return alpha * drawn[:, :3] + (1 - alpha) * self.background(z[:, 0])

    encoder = SlotEncoder(ConvBackbone((3, SIZE, SIZE)), 256, 2, SLOT_DIM, vae=True)
    decoder = BackgroundAndObject()
    optimizer = torch.optim.Adam(
        [*encoder.parameters(), *decoder.parameters()], lr=1e-3
    )
    n_pixels = X[0].numel()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(train))
        for i in range(0, len(train), 64):
            x = X[train[order[i : i + 64].numpy()]]
            mean, log_var = encoder.distribution(x)
            z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
            error = (decoder(z) - x).pow(2).sum((1, 2, 3)).mean()
            kl = gaussian_kl(mean, log_var).mean()
            loss = (error + kl_weight * kl) / n_pixels
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    fit_seconds = time.perf_counter() - start
    decoder.requires_grad_(False)

    def slots(rows, steps):
        with torch.no_grad():
            z = encoder(X[rows])
        if steps:
            z, _, _ = search_latents(decoder, X[rows], z, steps=steps, lr=0.05)
        return z.numpy()

    return fit_seconds, slots


def run(seed, epochs, search_steps, estimator, kl_weight=0.05, as_loop=False):
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from compgen_sk import GradientSearch
    from compgen_sk.datasets import make_object_scenes

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    scenes = make_object_scenes(6000, image_size=SIZE, random_state=seed)
    X = torch.tensor(scenes.images)
    labels = {
        name: scenes.concepts[f"{name}_identity"].cat.codes.to_numpy()
        for name in ("object", "background")
    }
    rng = np.random.default_rng(seed)
    in_domain = rng.permutation(np.flatnonzero(~scenes.ood))
    train, test = in_domain[:3000], in_domain[3000:3600]
    ood = np.flatnonzero(scenes.ood)[:600]
    if estimator:
        start = time.perf_counter()
        model = fit_estimator(scenes.images[train], seed, epochs, kl_weight, as_loop)
        fit_seconds = time.perf_counter() - start

        def slots(rows, steps):
            model.set_params(search=GradientSearch(steps=steps) if steps else None)
            return model.transform(scenes.images[rows]).reshape(len(rows), 2, -1)

    else:
        fit_seconds, slots = fit_loop(X, train, epochs, kl_weight)

    rows = []
    fit_rows = train[:1000]
    for method, steps in (("encoder", 0), ("search", search_steps)):
        Z = {part: slots(r, steps) for part, r in
             (("fit", fit_rows), ("id", test), ("ood", ood))}  # fmt: skip
        row = dict(seed=seed, method=method, fit_s=fit_seconds)
        for name, y in labels.items():
            for k in (0, 1):
                probe = make_pipeline(
                    StandardScaler(), LogisticRegression(max_iter=2000)
                )
                probe.fit(Z["fit"][:, k], y[fit_rows])
                row[f"{name} slot {k} ID"] = probe.score(Z["id"][:, k], y[test])
                row[f"{name} slot {k} OOD"] = probe.score(Z["ood"][:, k], y[ood])
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--search-steps", type=int, default=100)
    parser.add_argument("--kl-weight", type=float, default=0.05)
    parser.add_argument("--estimator", action="store_true")
    parser.add_argument("--as-loop", action="store_true")
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args(argv)
    if args.as_loop and not args.estimator:
        parser.error("--as-loop applies to --estimator only")
    results = Parallel(n_jobs=args.n_jobs)(
        delayed(run)(
            seed,
            args.epochs,
            args.search_steps,
            args.estimator,
            kl_weight=args.kl_weight,
            as_loop=args.as_loop,
        )
        for seed in args.seeds
    )
    table = pd.DataFrame([row for rows in results for row in rows])
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))
        grouped = table.drop(columns="seed").groupby("method", sort=False)
        mean, std = grouped.mean(), grouped.std(ddof=0)
        print(mean.round(2).astype(str) + " ± " + std.round(2).astype(str))


if __name__ == "__main__":
    main()
