"""The main job, ``compgen-sk compare``, in a fast mode (issue 5, §1)."""

import subprocess
import sys

import pandas as pd
import pytest

from compgen_sk.cli import main
from compgen_sk.compare import METHODS, format_table, run_comparison

FAST = [
    "--n-samples",
    "300",
    "--epochs",
    "1",
    "--search-steps",
    "3",
    "--slot-dim",
    "2",
    "--no-progress",
]


def test_compare_writes_table_csv_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
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


def test_shared_fits_are_reused():
    results = run_comparison(
        dataset="additive",
        n_samples=300,
        epochs=1,
        search_steps=3,
        slot_dim=2,
        methods=("generative-encoder", "generative-search"),
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
