"""Which initializations of a generator of object scenes draw the object apart,
and whether their training loss says so.

    python benchmarks/bench_object_inits.py [--data-seeds 0 1 2] [--inits 0 1 2]
                                            [--epochs 40] [--n-jobs 2]
                                            [--decoder masked] [--kl-weight 0.5]
                                            [--image-size 32] [--device cpu]
                                            [--replay] [--n-objects 1]
                                            [--slot-dim 4]

For each data seed, 6,000 scenes of :func:`~compgen_sk.datasets.make_object_scenes`
(``--image-size`` px) and 3,600 of the ID scenes to train on; for each
initialization, a generator fitted once (``n_init=1``, ``random_state`` the
initialization) for ``--epochs``: by default the generator of ``compgen-sk compare
--dataset objects`` (:data:`~compgen_sk.app.methods.OCCLUSION`) with two slots of 4
(the comparison's are 12); ``--decoder transformer`` puts the cross-attention
decoder with the interaction penalty (weight 0.05) in its place; ``--device`` trains
and searches there (e.g. ``cuda``); ``--replay`` also trains a
:class:`~compgen_sk.ReplayEncoder` on each generator and reads its slots too
(columns ``replay: …``); ``--n-objects 2`` draws two objects per scene (8,000
scenes) for a generator of three slots (``--slot-dim`` sets their size), and reads
the back object (``object0``), the front one (``object1``) and the background from
every slot. A linear readout of object and background identity from each slot is
fitted on the slots of 600 training scenes and scored on 300 ID test and 300 OOD
scenes (held-out object x background pairs), with the encoder's slots and after 100
steps of gradient search. Prints one row per fit, ordered by final training loss
within each data seed (``half``: the lowest loss of the first half of the epochs;
columns without a slot read slot 1, the masked decoder's object slot), then per data
seed the rank correlation of the final loss with the held-out object's readout from
slot 1 after search, and which fit was lowest at half the epochs. A fit that
separates the object from the background reads the object from one slot and the
background from the other only.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import time
import warnings

import numpy as np
import pandas as pd
from joblib import Parallel, delayed


def run(
    data_seed,
    init,
    *,
    epochs=40,
    decoder="masked",
    kl_weight=None,
    image_size=32,
    device="cpu",
    replay=False,
    n_objects=1,
    slot_dim=4,
):
    import torch
    from bench_object_slots import _readout

    from compgen_sk import (
        GenerativeInverter,
        GradientSearch,
        ReplayEncoder,
        TransformerDecoder,
    )
    from compgen_sk.app.methods import OCCLUSION, with_search
    from compgen_sk.datasets import make_object_scenes

    torch.set_num_threads(1)
    # With two objects 43 % of the scenes are out of domain: 8,000 scenes hold
    # the 3,900 ID scenes that training and the ID test need.
    scenes = make_object_scenes(
        6000 if n_objects == 1 else 8000,
        n_objects=n_objects,
        image_size=image_size,
        random_state=data_seed,
    )
    labels = {
        name.removesuffix("_identity"): scenes.concepts[name].cat.codes.to_numpy()
        for name in scenes.concepts.columns
        if name.endswith("_identity")
    }
    n_slots = n_objects + 1
    in_domain = np.random.default_rng(data_seed).permutation(
        np.flatnonzero(~scenes.ood)
    )
    train, test = in_domain[:3600], in_domain[3600:3900]
    ood = np.flatnonzero(scenes.ood)[:300]
    params = {**copy.deepcopy(OCCLUSION), "n_init": 1}
    if decoder == "transformer":
        params["decoder"] = TransformerDecoder(interaction_penalty=0.05)
    if kl_weight is not None:
        params["kl_weight"] = kl_weight
    model = GenerativeInverter(
        **params,
        n_slots=n_slots,
        slot_dim=slot_dim,
        max_epochs=epochs,
        random_state=init,
        device=device,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not converged": the loss still falls
        model.fit(scenes.images[train])
    row = dict(
        data=data_seed,
        init=init,
        fit_s=round(time.perf_counter() - start),
        loss=model.loss_curve_[-1],
        # The lowest loss of the first half of the epochs: what a trial of
        # half the epochs (as the renderer candidates have) would decide on.
        half=min(model.loss_curve_[: max(1, epochs // 2)]),
    )
    fit_rows = train[:600]
    searching = {"encoder": (model, 0), "search": (model, 100)}
    if replay:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            replayed = ReplayEncoder(model).fit(scenes.images[train])
        row["replay_fit_s"] = round(time.perf_counter() - start)
        searching.update(replay=(replayed, 0), **{"replay + search": (replayed, 100)})
    for method, (fitted, steps) in searching.items():
        fitted = with_search(fitted, GradientSearch(steps=steps) if steps else None)
        slots = {
            part: fitted.transform(scenes.images[rows]).reshape(len(rows), n_slots, -1)
            for part, rows in (("fit", fit_rows), ("id", test), ("ood", ood))
        }
        for slot in (1, 0, *range(2, n_slots)):
            suffix = "" if slot == 1 else f" in slot {slot}"
            parts = [slots[part][:, slot] for part in ("fit", "id", "ood")]
            for name, y in labels.items():
                scores = _readout(*parts, y, (fit_rows, test, ood))
                for part, score in zip(("ID", "OOD"), scores):
                    row[f"{method}: {name}{suffix} {part}"] = round(score, 3)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--inits", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--decoder", choices=["masked", "transformer"],
                        default="masked")  # fmt: skip
    parser.add_argument("--kl-weight", type=float, default=None,
                        help="default: the comparison's (OCCLUSION)")  # fmt: skip
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu, cuda …")
    parser.add_argument("--replay", action="store_true")
    parser.add_argument("--n-objects", type=int, choices=[1, 2], default=1)
    parser.add_argument("--slot-dim", type=int, default=4)
    args = parser.parse_args(argv)
    settings = {
        name: getattr(args, name)
        for name in inspect.signature(run).parameters
        if name not in ("data_seed", "init")
    }
    rows = Parallel(n_jobs=args.n_jobs)(
        delayed(run)(data_seed, init, **settings)
        for data_seed in args.data_seeds
        for init in args.inits
    )
    table = pd.DataFrame(rows).sort_values(["data", "loss"])
    with pd.option_context("display.width", 250, "display.max_columns", 100):
        print(table.round(4).to_string(index=False))
    # The object read: the only one, or the front one of two.
    column = "search: object OOD" if args.n_objects == 1 else "search: object1 OOD"
    print("\nrank correlation of the final loss with the OOD object after search:")
    for data_seed, fits in table.groupby("data"):
        rho = fits["loss"].corr(fits[column], method="spearman")
        kept = fits.iloc[0]
        print(
            f"data seed {data_seed}: {rho:+.2f}; the lowest loss (init "
            f"{int(kept['init'])}) reads the held-out object at "
            f"{kept[column]:.3f}, the inits' mean "
            f"{fits[column].mean():.3f}; the lowest loss at half "
            f"the epochs: init {int(fits.loc[fits['half'].idxmin(), 'init'])}"
        )


if __name__ == "__main__":
    main()
