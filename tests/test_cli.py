"""The main job, ``compgen-sk compare``, in a fast mode."""

import subprocess
import sys

import pandas as pd
import pytest

from compgen_sk.cli import main
from compgen_sk.compare import (
    COLUMNS,
    CONCEPT_COLUMNS,
    METHODS,
    format_table,
    run_comparison,
)

FAST = [
    "--n-samples",
    "300",
    "--epochs",
    "1",
    "--search-steps",
    "3",
    "--slot-dim",
    "2",
    "--seeds",
    "0",
    "--no-progress",
]


def test_compare_writes_table_csv_and_figures(tmp_path, capsys):
    import torch

    out = tmp_path / "run"
    torch_state = torch.get_rng_state().clone()
    status = main(
        [
            "compare",
            "--dataset",
            "digits",
            "--image-size",
            "8",
            "--out",
            str(out),
            *FAST,
        ]
    )
    assert status == 0
    # Training, search and the figures' random draws leave torch's global
    # generator as it was.
    assert torch.equal(torch.get_rng_state(), torch_state)
    printed = capsys.readouterr().out
    for method in METHODS:
        assert method in printed
    results = pd.read_csv(out / "results.csv")
    assert list(results["method"]) == list(METHODS)
    assert (
        results[["id_score", "ood_score"]].apply(lambda s: s.between(0, 1)).all().all()
    )
    assert (results["fit_seconds"] >= 0).all()
    assert results["ood_reconstruction_r2"].isna().tolist() == [
        m == "encoder-supervised" for m in METHODS
    ]
    for figure in (
        "scores.png",
        "ood_reconstructions.png",
        "replay_samples.png",
        "slot_renderings.png",
    ):
        assert (out / figure).stat().st_size > 1000


def test_compare_names_its_renderer_unless_extra_says_otherwise():
    from compgen_sk.compare import RENDERER, Comparison, Settings, load_split

    assert RENDERER == "mlp"
    settings = Settings(
        n_samples=300,
        epochs=1,
        seeds=(0,),
        methods=("generative-encoder",),
        progress=False,
    )
    split = load_split(settings, 0)
    comparison = Comparison(settings, split, 0)
    generator = comparison.generator()
    assert generator.decoder_params == {"renderer": "mlp"}
    assert generator.renderer_ == "mlp" and generator.renderer_losses_ is None
    baseline, _ = comparison.estimator("encoder-autoencoder")
    assert baseline.decoder_params == {"renderer": "mlp"}
    own = {"decoder_params": {"renderer": "broadcast"}}
    settings = Settings(n_samples=300, epochs=1, progress=False, extra=own)
    generator = Comparison(settings, split, 0).generator()
    assert generator.renderer_ == "broadcast"


def test_shared_fits_are_reused():
    results = run_comparison(
        dataset="additive",
        n_samples=300,
        epochs=1,
        search_steps=3,
        slot_dim=2,
        methods=("generative-encoder", "generative-search"),
        seeds=(0,),
        progress=False,
        log=None,
    )
    # One fitted generator, evaluated with and without search.
    assert results["fit_seconds"].nunique() == 1
    assert "generative-search" in format_table(results)


def test_compare_on_vector_data_skips_image_figures(tmp_path):
    run_comparison(
        dataset="additive",
        n_samples=300,
        epochs=1,
        search_steps=3,
        slot_dim=2,
        methods=("encoder-autoencoder", "generative-search"),
        seeds=(0,),
        progress=False,
        log=None,
        out=tmp_path,
    )
    assert (tmp_path / "scores.png").exists()
    assert not (tmp_path / "ood_reconstructions.png").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "--n-samples", "0"], "positive integer"),
        (["compare", "--epochs", "two"], "positive integer"),
        (["compare", "--dataset", "mnist"], "invalid choice"),
        (["compare", "--methods", "magic"], "invalid choice"),
        (["compare", "--search-steps", "-1"], "integer >= 0"),
        (["compare", "--seeds", "x"], "integer >= 0"),
        (["compare", "--n-train", "0"], "positive integer"),
    ],
)
def test_invalid_options_exit_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "--dataset", "pug"], "needs --data-dir"),
        (
            ["compare", "--dataset", "pug", "--data-dir", "/no/such/folder"],
            "not an existing folder",
        ),
        (["compare", "--device", "quantum", "--dataset", "additive", *FAST], "device"),
    ],
)
def test_library_errors_become_messages_not_tracebacks(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_python_dash_m_and_help():
    done = subprocess.run(
        [sys.executable, "-m", "compgen_sk", "compare", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--dataset" in done.stdout and "GPU" in done.stdout


SEEDED = [
    "compare",
    "--dataset",
    "additive",
    "--methods",
    "encoder-autoencoder",
    "generative-encoder",
    *FAST,
]


def test_seeds_write_one_row_per_seed_and_a_summary(tmp_path, capsys):
    out = tmp_path / "seeds"
    assert main([*SEEDED, "--seeds", "0", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "±" in printed  # mean ± std in the table
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == COLUMNS
    assert sorted(results["seed"]) == [0, 0, 1, 1]
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["method"]) == ["encoder-autoencoder", "generative-encoder"]
    assert (summary["n_seeds"] == 2).all()
    for method, rows in results.groupby("method"):
        row = summary.set_index("method").loc[method]
        assert row["ood_score"] == pytest.approx(rows["ood_score"].mean())
        assert row["ood_score_std"] == pytest.approx(rows["ood_score"].std(ddof=0))
    # Different seeds draw different data and initializations.
    assert results.groupby("method")["ood_score"].nunique().eq(2).all()
    # Each concept's scores, whose means are the scores of results.csv.
    concepts = pd.read_csv(out / "concept_scores.csv")
    assert list(concepts.columns) == CONCEPT_COLUMNS
    means = concepts.groupby(["method", "seed"])[["id_score", "ood_score"]].mean()
    for _, row in results.iterrows():
        mean = means.loc[(row["method"], row["seed"])]
        assert mean["id_score"] == pytest.approx(row["id_score"])
        assert mean["ood_score"] == pytest.approx(row["ood_score"])
    assert concepts.groupby(["method", "seed"]).size().nunique() == 1
    assert concepts.groupby(["method", "seed"])["concept"].nunique().min() > 1


def test_n_train_trains_on_growing_sets_and_plots_them(tmp_path):
    out = tmp_path / "efficiency"
    argv = [*SEEDED, "--n-train", "100", "50", "--seeds", "0", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == COLUMNS
    assert sorted(set(results["n_train"])) == [50, 100]
    assert len(results) == 2 * 2 * 2  # methods x sizes x seeds
    summary = pd.read_csv(out / "summary.csv")
    assert {"n_train", "ood_score", "ood_score_std", "n_seeds"} <= set(summary)
    assert len(summary) == 4
    assert (out / "data_efficiency.png").stat().st_size > 1000
    concepts = pd.read_csv(out / "concept_scores.csv")
    assert sorted(set(concepts["n_train"])) == [50, 100]


def test_n_train_larger_than_the_training_set_is_an_error(tmp_path, capsys):
    argv = [*SEEDED, "--n-train", "100000", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "exceeds" in capsys.readouterr().err


def test_convergence_warnings_become_log_lines(recwarn):
    lines = []
    run_comparison(
        dataset="additive",
        n_samples=300,
        epochs=2,
        search_steps=0,
        slot_dim=2,
        methods=("encoder-autoencoder",),
        seeds=(0,),
        progress=False,
        log=lines.append,
    )
    # Two epochs cannot fit the data: the fit says so in the log, once.
    notes = [line for line in lines if line.startswith("  note (encoder-autoencoder)")]
    assert len(notes) >= 1 and "training R²" in " ".join(notes)
    assert not [w for w in recwarn if "ConvergenceWarning" in w.category.__name__]


def test_with_params_copies_instead_of_changing_a_fitted_estimator():
    import warnings

    from compgen_sk import GenerativeInverter
    from compgen_sk.compare import with_params
    from compgen_sk.datasets import make_additive

    X, _ = make_additive(60, n_slots=2, return_X_y=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GenerativeInverter(
            n_slots=2, slot_dim=2, max_epochs=1, search_steps=3, random_state=0
        ).fit(X)
    encoder_only = with_params(model, search_steps=0)
    assert model.search_steps == 3 and encoder_only.search_steps == 0
    assert encoder_only.net_ is model.net_
    assert (encoder_only.transform(X) == model.encode(X)).all()


def test_sprites_comparison_matches_objects_per_sample():
    from compgen_sk.compare import Comparison, Settings, load_split

    settings = Settings(
        dataset="sprites",
        image_size=16,
        n_samples=200,
        epochs=1,
        search_steps=2,
        seeds=(0,),
        progress=False,
    )
    split = load_split(settings, 0)
    assert split.exchangeable
    assert not load_split(Settings(dataset="additive", n_samples=200), 0).exchangeable
    generator = Comparison(settings, split, 0).generator()
    assert generator.decoder_params == {"renderer": "mlp", "shared": True}
    assert generator.slot_dim == 6  # the dataset's default, as Wiedemer et al.
    assert generator.consistency_weight == 1.0
    from compgen_sk.compare import DATASETS, SLOT_DIMS

    assert set(SLOT_DIMS) == set(DATASETS)
    lines = []
    results = run_comparison(
        settings, methods=("generative-encoder",), log=lines.append
    )
    assert any("matched to objects per sample" in line for line in lines)
    assert any("--image-size 64" in line for line in lines)
    assert len(results) == 1
