"""The main job, ``compgen-sk compare``, in a fast mode."""

import copy
import subprocess
import sys
import warnings

import pandas as pd
import pytest

from compgen_sk import AdditiveDecoder, GenerativeInverter, GradientSearch, MLPDecoder
from compgen_sk.app.cli import build_parser, main
from compgen_sk.app.compare import (
    COLUMNS,
    CONCEPT_COLUMNS,
    Comparison,
    format_table,
    load_split,
    run_comparison,
    summarize,
)
from compgen_sk.app.methods import (
    METHODS,
    OCCLUSION,
    RENDERER,
    Method,
    generator,
    with_search,
)
from compgen_sk.app.settings import (
    DATASETS,
    GPU_COMMANDS,
    SLOT_DIMS,
    Settings,
    check_settings,
)
from compgen_sk.datasets import make_additive

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
# The numbers that results.csv and concept_scores.csv hold, timings aside.
SCORES = ["id_score", "ood_score", "ood_reconstruction_r2"]


def test_methods_registry_describes_and_fits_every_method():
    assert list(METHODS) == [
        "encoder-autoencoder",
        "encoder-supervised",
        "generative-mlp",
        "generative-encoder",
        "generative-search",
        "replay",
        "replay-search",
    ]
    for method in METHODS.values():
        assert isinstance(method, Method)
        assert method.description and callable(method.fit)
    assert Settings().methods == tuple(METHODS)


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
    assert list(results.columns) == COLUMNS
    assert list(results["method"]) == list(METHODS)
    assert list(results["description"]) == [m.description for m in METHODS.values()]
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


def test_compare_names_its_renderer_unless_generator_params_say_otherwise():
    assert RENDERER == "mlp"
    settings = Settings(
        n_samples=300,
        epochs=1,
        seeds=(0,),
        methods=("generative-encoder",),
        progress=False,
    )
    split = load_split(settings, 0)
    assert not split.exchangeable
    comparison = Comparison(settings, split, 0)
    assert comparison.fitted_generator() is None
    fitted, seconds = generator(comparison)
    assert comparison.fitted_generator() is fitted and seconds >= 0
    assert isinstance(fitted.decoder, AdditiveDecoder)
    assert fitted.decoder.get_params() == AdditiveDecoder("mlp").get_params()
    assert fitted.renderer_ == "mlp" and fitted.renderer_losses_ is None
    assert fitted.consistency_weight == 0.0  # slots of different kinds
    baseline, _ = comparison.estimator("encoder-autoencoder")
    assert isinstance(baseline.decoder, MLPDecoder)
    assert baseline.decoder.renderer == "mlp" and baseline.renderer_ == "mlp"
    mlp, _ = comparison.estimator("generative-mlp")
    assert isinstance(mlp.decoder, MLPDecoder) and mlp.renderer_ == "mlp"
    assert mlp.search.get_params() == GradientSearch(steps=100).get_params()
    own = {"decoder": AdditiveDecoder("broadcast")}
    settings = Settings(n_samples=300, epochs=1, progress=False, generator_params=own)
    fitted, _ = generator(Comparison(settings, split, 0))
    assert fitted.renderer_ == "broadcast"


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


def test_generative_methods_share_one_fit_with_and_without_search():
    settings = Settings(
        dataset="additive",
        n_samples=300,
        epochs=1,
        search_steps=3,
        slot_dim=2,
        seeds=(0,),
        progress=False,
    )
    comparison = Comparison(settings, load_split(settings, 0), 0)
    encoder_only, seconds = comparison.estimator("generative-encoder")
    searching, same_seconds = comparison.estimator("generative-search")
    assert encoder_only.search is None
    assert searching.search.get_params() == GradientSearch(steps=3).get_params()
    assert encoder_only.net_ is searching.net_ is comparison.fitted_generator().net_
    assert seconds == same_seconds
    replay, replay_seconds = comparison.estimator("replay")
    replay_search, _ = comparison.estimator("replay-search")
    assert replay.search is None and replay_search.net_ is replay.net_
    assert replay.generator_ is comparison.fitted_generator()
    # The replay method's time includes the fit of the generator it replays.
    assert replay_seconds >= seconds


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
        (["compare", "--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
        (["compare", "--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
        (["compare", "--dataset", "mnist"], "argument --dataset: invalid choice"),
        (["compare", "--methods", "magic"], "argument --methods: invalid choice"),
        (["compare", "--seeds", "x"], "argument --seeds: invalid int value: 'x'"),
        (["compare", "--probe", "tree"], "argument --probe: invalid choice"),
    ],
)
def test_unparsable_options_exit_with_argparse_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"compgen-sk compare: error: {message}" in err


def _range(name, what, got):
    return f"The '{name}' parameter of Settings must be {what}. Got {got} instead."


INT_FROM_1 = "an int in the range [1, inf)"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n-samples", "0"], _range("n_samples", INT_FROM_1, 0)),
        (["--epochs", "0"], _range("epochs", INT_FROM_1, 0)),
        (["--slot-dim", "0"], _range("slot_dim", INT_FROM_1 + " or None", 0)),
        (["--image-size", "-3"], _range("image_size", INT_FROM_1 + " or None", -3)),
        (
            ["--search-steps", "-1"],
            _range("search_steps", "an int in the range [0, inf)", -1),
        ),
        (
            ["--lr", "0"],
            _range("lr", "a float in the range (0.0, 3.4028234663852886e+38]", "0.0"),
        ),
        (
            ["--lr", "nan"],
            _range("lr", "a float in the range (0.0, 3.4028234663852886e+38]", "nan"),
        ),
        (
            ["--n-jobs", "0"],
            _range(
                "n_jobs",
                "an int in the range [1, inf), an int in the range (-inf, -1] or None",
                0,
            ),
        ),
        (["--seeds", "-1"], "seeds must be integers >= 0; got [-1]."),
        (["--seeds", "1", "1"], "seeds are repeated: [1]; give each once."),
        (["--n-train", "0"], "n_train must be integers >= 1; got [0]."),
    ],
)
def test_out_of_range_options_are_settings_errors(argv, message, capsys, tmp_path):
    out = tmp_path / "never"
    assert main(["compare", *argv, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"compgen-sk compare: error: {message}\n"
    assert captured.out == ""
    # Checked before anything is made: no output folder either.
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "--dataset", "pug"], "needs --data-dir"),
        (
            ["compare", "--dataset", "pug", "--data-dir", "/no/such/folder"],
            "not an existing folder",
        ),
        (["compare", "--device", "quantum", "--dataset", "additive", *FAST], "device"),
        (
            ["compare", "--dataset", "additive", "--image-size", "8"],
            "image_size does not apply to dataset 'additive'",
        ),
    ],
)
def test_library_errors_become_messages_not_tracebacks(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("compgen-sk compare: error: ")
    assert message in err
    assert "Traceback" not in err


def test_cli_runs_seeds_on_every_core_by_default():
    args = build_parser().parse_args(["compare"])
    assert args.n_jobs == -1
    # The Python API runs them one after another unless told otherwise.
    assert Settings().n_jobs is None


def test_python_dash_m_and_help():
    done = subprocess.run(
        [sys.executable, "-m", "compgen_sk", "compare", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--dataset" in done.stdout and "GPU" in done.stdout
    assert "--n-jobs" in done.stdout


def test_python_dash_m_runs_a_comparison(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "compgen_sk",
            "compare",
            "--dataset",
            "additive",
            "--methods",
            "encoder-autoencoder",
            "--n-jobs",
            "1",
            "--out",
            str(out),
            *FAST,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "encoder-autoencoder" in done.stdout
    assert list(pd.read_csv(out / "results.csv")["method"]) == ["encoder-autoencoder"]


def test_python_dash_m_reports_errors_with_exit_status_2():
    done = subprocess.run(
        [sys.executable, "-m", "compgen_sk", "compare", "--epochs", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "compgen-sk compare: error: " + _range("epochs", INT_FROM_1, 0) + "\n"
    )


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


def test_seeds_side_by_side_give_the_same_scores_as_one_after_another(tmp_path):
    argv = [*SEEDED, "--methods", "encoder-autoencoder", "generative-search"]
    argv += ["--seeds", "0", "1"]
    tables = {}
    for n_jobs in ("1", "2"):
        out = tmp_path / f"n_jobs_{n_jobs}"
        assert main([*argv, "--n-jobs", n_jobs, "--out", str(out)]) == 0
        tables[n_jobs] = (
            pd.read_csv(out / "results.csv"),
            pd.read_csv(out / "concept_scores.csv"),
        )
    (results_1, concepts_1), (results_2, concepts_2) = tables["1"], tables["2"]
    assert len(results_1) == 4
    assert results_1["method"].tolist() == results_2["method"].tolist()
    assert results_1["seed"].tolist() == results_2["seed"].tolist() == [0, 0, 1, 1]
    # Bit for bit: each fit runs on one core in either case.
    pd.testing.assert_frame_equal(results_1[SCORES], results_2[SCORES], rtol=0, atol=0)
    pd.testing.assert_frame_equal(concepts_1, concepts_2, rtol=0, atol=0)


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


def test_summary_pools_seeds_whose_training_sets_differ_in_size():
    """Each seed draws its own data, so the ID training set of a plain run can
    differ in size between seeds: the summary is still one row per method."""
    results = pd.DataFrame(
        {
            "method": ["a", "a", "a", "b", "b", "b"],
            "description": ["A"] * 3 + ["B"] * 3,
            "seed": [0, 1, 2, 0, 1, 2],
            "n_train": [3588, 3641, 3625, 3588, 3641, 3625],
            "id_score": [0.5, 0.6, 0.7, 0.1, 0.2, 0.3],
            "ood_score": [0.1, 0.2, 0.3, 0.0, 0.0, 0.3],
            "ood_reconstruction_r2": [0.8] * 6,
            "fit_seconds": [10.0] * 6,
            "transform_ms_per_image": [1.0] * 6,
        }
    )
    summary = summarize(results)
    assert summary["method"].tolist() == ["a", "b"]
    assert summary["n_seeds"].tolist() == [3, 3]
    assert summary["n_train"].tolist() == [3618, 3618]
    assert summary["id_score"].tolist() == pytest.approx([0.6, 0.2])
    assert "n_train" not in format_table(results).splitlines()[0]


def test_n_train_larger_than_the_training_set_is_an_error(tmp_path, capsys):
    argv = [*SEEDED, "--n-train", "100000", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("compgen-sk compare: error: n_train=100000 exceeds")


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
    assert len(notes) == 1
    assert "fits its own training data poorly: training R²" in notes[0]
    assert not [w for w in recwarn if "ConvergenceWarning" in w.category.__name__]


def test_with_search_copies_instead_of_changing_a_fitted_estimator():
    X, _ = make_additive(60, n_slots=2, return_X_y=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GenerativeInverter(
            n_slots=2,
            slot_dim=2,
            max_epochs=1,
            search=GradientSearch(steps=3),
            random_state=0,
        ).fit(X)
    before = model.transform(X)
    encoder_only = with_search(model, None)
    assert encoder_only is not model
    assert model.search.steps == 3 and encoder_only.search is None
    assert encoder_only.net_ is model.net_
    assert (encoder_only.transform(X) == model.encode(X)).all()
    assert (model.transform(X) == before).all()
    longer = with_search(model, GradientSearch(steps=10))
    assert model.search.steps == 3 and longer.search.steps == 10


@pytest.mark.parametrize(
    "generator_params, message",
    [
        ({"max_epochs": 5}, r"generator_params must not set \['max_epochs'\]"),
        (
            {"search": None, "lr": 0.1},
            r"generator_params must not set \['lr', 'search'\]",
        ),
        ({"n_slot": 3}, r"GenerativeInverter does not take: \['n_slot'\]"),
        ({"interaction_weight": 0.1}, r"does not take: \['interaction_weight'\]"),
        (
            {"consistency_weight": -1},
            r"The 'consistency_weight' parameter of GenerativeInverter must be",
        ),
        (
            {"decoder": "convolutional"},
            r"The 'decoder' parameter of GenerativeInverter must be",
        ),
        (
            {"encoder": "resnet"},
            r"The 'encoder' parameter of GenerativeInverter must be",
        ),
        # Options of a decoder object are checked too, not at its fit.
        (
            {"decoder": AdditiveDecoder(overlap_penalty=-1)},
            r"The 'overlap_penalty' parameter of AdditiveDecoder must be",
        ),
    ],
)
def test_check_settings_rejects_bad_generator_params_before_any_data(
    generator_params, message, monkeypatch
):
    settings = Settings(
        dataset="additive",
        n_samples=300,
        epochs=1,
        seeds=(0,),
        n_jobs=1,
        progress=False,
        generator_params=generator_params,
    )
    with pytest.raises(ValueError, match=message):
        check_settings(settings)

    def no_data(*args):
        raise AssertionError("data were made before the settings were checked")

    monkeypatch.setitem(DATASETS, "additive", no_data)
    with pytest.raises(ValueError, match=message):
        run_comparison(settings, log=None)


def test_valid_generator_params_reach_the_shared_generator():
    settings = Settings(
        dataset="additive",
        n_samples=300,
        epochs=1,
        slot_dim=2,
        seeds=(0,),
        progress=False,
        generator_params={"consistency_weight": 0.5, "consistency_warmup": 0},
    )
    check_settings(settings)
    fitted, _ = generator(Comparison(settings, load_split(settings, 0), 0))
    assert fitted.consistency_weight == 0.5 and fitted.consistency_warmup == 0
    # The comparison's own settings are the generator's too.
    assert fitted.max_epochs == 1 and fitted.slot_dim == 2 and fitted.random_state == 0


def test_settings_are_not_changed_by_a_run():
    settings = Settings(
        dataset="additive",
        n_samples=300,
        epochs=1,
        slot_dim=2,
        methods=("generative-encoder",),
        seeds=(0,),
        progress=False,
        generator_params={"consistency_weight": 0.5},
    )
    before = copy.deepcopy(settings)
    run_comparison(settings, log=None)
    assert settings == before


def test_sprites_comparison_matches_objects_per_sample():
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
    assert split.exchangeable and not split.background
    assert not load_split(Settings(dataset="additive", n_samples=200), 0).exchangeable
    fitted, _ = generator(Comparison(settings, split, 0))
    assert fitted.decoder.get_params() == (
        AdditiveDecoder("mlp", shared=True).get_params()
    )
    assert fitted.recombination_ == "pool"
    assert fitted.slot_dim == 6  # the dataset's default, as Wiedemer et al.
    assert fitted.consistency_weight == 1.0
    assert fitted.consistency_warmup == 0  # a third of one epoch
    assert set(SLOT_DIMS) == set(DATASETS)
    lines = []
    results = run_comparison(
        settings, methods=("generative-encoder",), log=lines.append
    )
    assert any("matched to objects per sample" in line for line in lines)
    assert any("--image-size 64" in line for line in lines)
    assert len(results) == 1


def test_object_scenes_comparison_draws_the_background_apart():
    settings = Settings(
        dataset="objects", n_samples=240, image_size=16, epochs=1, seeds=(0,),
        search_steps=2, progress=False,
    )  # fmt: skip
    lines = []
    results = run_comparison(
        settings, methods=("generative-encoder", "replay-search"), log=lines.append
    )
    gpu = [line for line in lines if line.startswith("At 64 px on a GPU")]
    assert gpu == [f"At 64 px on a GPU: {GPU_COMMANDS['objects']}"]
    assert "--dataset objects --image-size 64" in gpu[0]
    assert not any("matched to objects per sample" in line for line in lines)
    assert sum("draws the background from slot 0" in line for line in lines) == 1
    assert len(results) == 2 and results["ood_score"].notna().all()
    # The generator is the occlusion recipe, unless generator_params say otherwise.
    split = load_split(settings, 0)
    assert split.background and not split.exchangeable
    comparison = Comparison(settings, split, 0)
    fitted, _ = generator(comparison)
    assert fitted.decoder.get_params() == OCCLUSION["decoder"].get_params()
    assert fitted.decoder is not OCCLUSION["decoder"]  # the registry's stays unfitted
    assert fitted.kl_weight == OCCLUSION["kl_weight"]
    assert len(fitted.init_losses_) == OCCLUSION["n_init"] > 1
    assert fitted.init_losses_[fitted.best_init_] == min(fitted.init_losses_)
    assert not fitted.decoder.exchangeable_slots
    own = Settings(**{**vars(settings), "generator_params": {"kl_weight": 0.1}})
    fitted, _ = generator(Comparison(own, load_split(own, 0), 0))
    assert fitted.kl_weight == 0.1 and fitted.decoder.background == "mlp"
