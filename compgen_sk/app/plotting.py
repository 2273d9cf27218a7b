"""Figures of a comparison: scores, reconstructions, replayed samples, slots."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from ..inversion import sample_recombinations
from ..search import GradientSearch
from .methods import with_search

_N_EXAMPLES = 8


def plot_scores(results, ax=None):
    """Bars of ID and OOD probe scores per method (the paper's Fig. 6 analogue),
    with error bars where ``results`` has ``id_score_std`` / ``ood_score_std``
    (a :func:`~compgen_sk.app.compare.summarize` table)."""
    if ax is None:
        ax = Figure(figsize=(1.2 * len(results) + 2, 3.5)).subplots()
    positions = np.arange(len(results))
    for shift, column, label in (
        (-0.2, "id_score", "ID (held-out images)"),
        (0.2, "ood_score", "OOD (new combinations)"),
    ):
        ax.bar(
            positions + shift,
            results[column],
            0.4,
            yerr=results.get(column + "_std"),
            capsize=3,
            label=label,
        )
    ax.set_xticks(positions, results["method"], rotation=30, ha="right")
    ax.set_ylabel("concept readout score")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower left", fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_data_efficiency(summary, path=None):
    """OOD (solid) and ID (dashed) probe score against the number of ID
    training images, mean ± std over seeds, one line per method.

    Parameters
    ----------
    summary : DataFrame
        :func:`~compgen_sk.app.compare.summarize` of a comparison run with
        ``n_train``.
    path : str or Path or None, default=None
        Where to save the figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    for method, rows in summary.groupby("method", sort=False):
        line = ax.errorbar(
            rows["n_train"],
            rows["ood_score"],
            yerr=rows["ood_score_std"],
            capsize=3,
            label=method,
        )
        color = line[0].get_color()
        ax.plot(rows["n_train"], rows["id_score"], "--", color=color, alpha=0.5)
    ax.set_xscale("log")
    sizes = sorted(summary["n_train"].unique())
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("ID training images")
    ax.set_ylabel("probe score (OOD solid, ID dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def _show(ax, image):
    ax.imshow(np.clip(np.transpose(image, (1, 2, 0)), 0, 1))
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(rows, labels, path=None, title=None):
    """Rows of images (each (n, C, H, W)) with a label per row.

    Returns the :class:`~matplotlib.figure.Figure` (built without pyplot, so the
    caller's backend is untouched), saved to ``path`` if given.
    """
    n_rows, n_cols = len(rows), len(rows[0])
    fig = Figure(figsize=(1.3 * n_cols, 1.3 * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, (images, label) in enumerate(zip(rows, labels)):
        for c in range(n_cols):
            _show(axes[r, c], images[c])
        axes[r, 0].set_ylabel(label, fontsize="small")
    if title:
        fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def comparison_figures(results, comparison, out):
    """Write the comparison's figures into the folder ``out``."""
    fig = Figure(figsize=(1.2 * len(results) + 2, 3.8))
    ax = plot_scores(results, fig.subplots())
    ax.set_title(f"{comparison.settings.dataset}: probe score, ID vs OOD")
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=100)

    split = comparison.split
    generator = comparison.fitted_generator()
    if split.X_ood.ndim != 4 or generator is None:
        return
    steps = comparison.settings.search_steps
    images = split.X_ood[:_N_EXAMPLES]
    encoded = generator.encode(images)
    searched = with_search(generator, GradientSearch(steps=steps)).transform(images)
    image_grid(
        [
            images,
            generator.inverse_transform(encoded),
            generator.inverse_transform(searched),
        ],
        ["OOD input", "encoder", f"search ({steps})"],
        out / "ood_reconstructions.png",
        title="OOD images reconstructed from the encoder's guess and after search",
    )

    bank = torch.as_tensor(generator.encode(split.X_train)).view(
        len(split.X_train), split.n_slots, -1
    )
    draws = torch.Generator().manual_seed(comparison.seed)
    replayed = generator.inverse_transform(
        sample_recombinations(
            bank,
            2 * _N_EXAMPLES,
            generator.recombination_,  # as the ReplayEncoder draws
            generator=draws,
        ).numpy()
    )
    image_grid(
        [replayed[:_N_EXAMPLES], replayed[_N_EXAMPLES:]],
        ["replayed", "replayed"],
        out / "replay_samples.png",
        title="Generative replay: the decoder renders recombined ID slots",
    )

    per_slot = generator.render_slots(searched)
    rows = [images, generator.inverse_transform(searched)]
    rows += [per_slot[:, k] for k in range(per_slot.shape[1])]
    labels = ["OOD input", "rendering"] + [
        f"slot {k}" for k in range(per_slot.shape[1])
    ]
    image_grid(
        rows, labels, out / "slot_renderings.png", title="Each slot's contribution"
    )
