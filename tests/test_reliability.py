"""Reliability: bad inputs and faults give clear errors, never silent wrong answers.

Each case names the error type and a phrase that its message must contain,
grouped by what the user got wrong: X, y and concept tables, parameters,
estimator state, persistence, the command line, data sets and splitters
(parameters include the decoder, encoder and search specification objects and
their nested options, and the parameters the redesign removed). Then correct
answers where a silent wrong one was possible, the traps a new user met (a
wrong y in a Pipeline, one sample, strings, misspelt options, 2-D y, integer
positions, continuous groups, interrupted or diverged fits), safe persistence,
and the guarantees that hold for every call: nothing a user passes is modified
and no global random generator is touched.
"""

from __future__ import annotations

import functools
import os
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import torch
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import r2_score
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback, Checkpoint, EarlyStopping, ProgressBar

from compgen_sk import (
    AdditiveDecoder,
    ConvEncoder,
    EncoderBaseline,
    GenerativeInverter,
    GradientSearch,
    HeldOutCombinations,
    MLPDecoder,
    MLPEncoder,
    ReplayEncoder,
    SlotProbe,
    TransformerDecoder,
    load,
    save,
    train_test_split_combinations,
)
from compgen_sk.app.cli import main
from compgen_sk.app.compare import run_comparison
from compgen_sk.datasets import (
    load_pug,
    make_additive,
    make_digit_compositions,
    make_sprites,
)
from compgen_sk.metrics import reconstruction_r2, slot_identifiability_score

TINY = dict(n_slots=2, slot_dim=2, max_epochs=1, batch_size=32, random_state=0)


@functools.cache
def vectors():
    X, z = make_additive(60, n_slots=2, return_X_y=True, random_state=0)
    X.setflags(write=False)
    z.setflags(write=False)
    return X, z


@functools.cache
def images():
    bunch = make_sprites(60, image_size=12, random_state=0)
    return bunch.images, bunch.concepts


def quiet(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit()


@functools.cache
def inverter():
    X, _ = vectors()
    return quiet(
        lambda: GenerativeInverter(**TINY, search=GradientSearch(steps=2)).fit(X)
    )


@functools.cache
def supervised():
    X, concepts = images()
    model = EncoderBaseline(**TINY, objective="supervised")
    return quiet(lambda: model.fit(X, concepts))


@functools.cache
def probe():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(90, 2, 1))  # one label per true slot
    slots = np.concatenate(
        [np.eye(3)[labels[:, 0, 0]], np.eye(3)[labels[:, 1, 0]]], axis=1
    )
    fitted = SlotProbe(readout="linear", categorical=True, random_state=0)
    return fitted.fit(slots, labels), slots, labels


def fresh(**params):
    return GenerativeInverter(**{**TINY, "search": GradientSearch(steps=2), **params})


@dataclass
class Case:
    id: str
    call: Callable
    error: type
    match: str


def case(id, call, error, match):
    return pytest.param(Case(id, call, error, match), id=id)


def fit_vectors(**params):
    X, _ = vectors()
    return lambda: fresh(**params).fit(X)


def fit_with_X(X, **params):
    return lambda: fresh(**params).fit(X)


def transform_after(**params):
    X, _ = vectors()
    return lambda: (
        pickle.loads(pickle.dumps(inverter())).set_params(**params).transform(X)
    )


def supervised_score(y):
    X, _ = images()
    return lambda: supervised().score(X[: len(y)], y)


def nan_at(array, index):
    array = np.array(array, dtype=np.float64)
    array[index] = np.nan
    return array


def concepts_with(**changes):
    _, concepts = images()
    frame = concepts.copy()
    for column, values in changes.items():
        frame[column] = values
    return frame


X_CASES = [
    case("X-3d", fit_with_X(np.zeros((10, 3, 4))), ValueError, "vectors"),
    case("X-1d", fit_with_X(np.zeros(10)), ValueError, "vectors"),
    case("X-nan", fit_with_X(nan_at(vectors()[0], (0, 0))), ValueError, "NaN"),
    case(
        "X-inf",
        fit_with_X(np.where(np.eye(60, 64) > 0, np.inf, vectors()[0])),
        ValueError,
        "infinity",
    ),
    case("X-empty", fit_with_X(np.zeros((0, 4))), ValueError, "0 sample"),
    case("X-strings", fit_with_X(np.array([["a", "b"]] * 5)), ValueError, "strings"),
    case(
        "X-strings-of-numbers",
        fit_with_X(np.array([["0.1", "0.2"], ["0.3", "0.4"], ["0.5", "0.6"]])),
        ValueError,
        "X holds strings",
    ),
    case(
        "X-strings-of-numbers-list",
        fit_with_X([["0.1", "0.2"], ["0.3", "0.4"], ["0.5", "0.6"]]),
        ValueError,
        "X holds strings",
    ),
    case(
        "X-bytes-of-numbers",
        fit_with_X(np.array([[b"0.1", b"0.2"], [b"0.3", b"0.4"]])),
        ValueError,
        "X holds strings",
    ),
    case(
        "X-transform-strings",
        lambda: inverter().transform(vectors()[0][:3].astype(str)),
        ValueError,
        "X holds strings",
    ),
    case("X-complex", fit_with_X(np.ones((5, 4), complex)), ValueError, "Complex"),
    case(
        "X-beyond-float32",
        fit_with_X(vectors()[0].astype(np.float64) * 1e300),
        ValueError,
        "float32 range",
    ),
    case(
        "X-sparse",
        fit_with_X(scipy.sparse.random(20, 8, density=0.5, random_state=0)),
        TypeError,
        "dense data is required",
    ),
    case(
        "X-transform-features",
        lambda: inverter().transform(np.zeros((3, 15))),
        ValueError,
        "X has 15 features",
    ),
    case(
        "X-transform-images-on-vectors",
        lambda: inverter().transform(np.zeros((3, 1, 8, 8))),
        ValueError,
        "fitted on samples of shape",
    ),
    case(
        "X-transform-nan",
        lambda: inverter().transform(nan_at(vectors()[0][:3], (1, 2))),
        ValueError,
        "NaN",
    ),
    case(
        "X-column-names-changed",
        lambda: _fit_frame_then_transform(),
        ValueError,
        "feature names",
    ),
    case(
        "X-transform-overflows",
        lambda: inverter().transform(np.full((3, 64), 3e38)),
        ValueError,
        "non-finite slots for 3 of 3",
    ),
    case(
        "Z-wrong-shape",
        lambda: inverter().inverse_transform(np.zeros((3, 5))),
        ValueError,
        "Z must have shape",
    ),
    case(
        "Z-nan",
        lambda: inverter().inverse_transform(nan_at(np.zeros((3, 4)), (0, 0))),
        ValueError,
        "NaN",
    ),
    case(
        "Z-beyond-float32",
        lambda: inverter().inverse_transform(np.full((3, 4), 1e39)),
        ValueError,
        "beyond the float32 range",
    ),
    case(
        "Z-decoder-overflows",
        lambda: inverter().inverse_transform(np.full((3, 4), 3e38)),
        ValueError,
        "rendered non-finite values for 3 of 3",
    ),
    case(
        "render-slots-overflow",
        lambda: inverter().render_slots(np.full((3, 4), 3e38)),
        ValueError,
        "rendered non-finite values for 3 of 3",
    ),
    case(
        "render-slots-mlp-decoder",
        lambda: quiet(fit_vectors(decoder="mlp")).render_slots(np.zeros((2, 4))),
        ValueError,
        "no per-slot renderings",
    ),
]


def _fit_frame_then_transform():
    X, _ = vectors()
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(X.shape[1])])
    model = quiet(lambda: fresh().fit(frame))
    return model.transform(frame.rename(columns={"pixel0": "other"}))


Y_CASES = [
    case(
        "supervised-no-y",
        lambda: EncoderBaseline(**TINY, objective="supervised").fit(vectors()[0]),
        ValueError,
        "requires y",
    ),
    case(
        "supervised-y-slots",
        lambda: EncoderBaseline(**{**TINY, "n_slots": 3}, objective="supervised").fit(
            vectors()[0], vectors()[1][:, :2]
        ),
        ValueError,
        "n_slots=3",
    ),
    case(
        "supervised-y-length",
        lambda: EncoderBaseline(**TINY, objective="supervised").fit(
            vectors()[0], vectors()[1][:10]
        ),
        ValueError,
        "10 samples",
    ),
    case(
        "supervised-y-nan",
        lambda: EncoderBaseline(**TINY, objective="supervised").fit(
            vectors()[0], nan_at(vectors()[1], (0, 0, 0))
        ),
        ValueError,
        "NaN",
    ),
    case(
        "supervised-table-missing",
        lambda: EncoderBaseline(**TINY, objective="supervised").fit(
            images()[0], concepts_with(slot0_x=np.nan)
        ),
        ValueError,
        "missing values",
    ),
    case(
        "supervised-y-strings",
        lambda: EncoderBaseline(**TINY, objective="supervised").fit(
            vectors()[0], np.full((60, 2, 1), "a")
        ),
        ValueError,
        "must hold numbers",
    ),
    case(
        "supervised-y-4d",
        lambda: EncoderBaseline(**TINY, objective="supervised").fit(
            vectors()[0], np.zeros((60, 2, 1, 1))
        ),
        ValueError,
        "must be latents",
    ),
    case(
        "supervised-y-columns-indivisible",
        lambda: EncoderBaseline(**TINY, objective="supervised").fit(
            vectors()[0], np.zeros((60, 3))
        ),
        ValueError,
        "does not divide",
    ),
    case(
        "supervised-score-unseen-category",
        supervised_score(concepts_with(slot0_shape="heart")),
        ValueError,
        "not seen at fit",
    ),
    case(
        "supervised-score-other-columns",
        supervised_score(concepts_with().drop(columns="slot1_hue")),
        ValueError,
        "concept columns",
    ),
    case(
        "supervised-score-array-for-table",
        supervised_score(np.zeros((60, 2, 5))),
        ValueError,
        "fitted on a concept table",
    ),
    case(
        "supervised-score-strings-for-continuous",
        supervised_score(concepts_with(slot0_x="left")),
        ValueError,
        "continuous at fit",
    ),
    case(
        "probe-no-y",
        lambda: SlotProbe().fit(np.zeros((10, 4)), None),
        ValueError,
        "requires y",
    ),
    case(
        "probe-y-length",
        lambda: SlotProbe().fit(np.zeros((10, 4)), np.zeros((9, 2, 1))),
        ValueError,
        "9 samples",
    ),
    case(
        "probe-too-few-slots-per-sample",
        lambda: SlotProbe(n_slots=1, matching="per_sample").fit(
            np.zeros((10, 4)), np.zeros((10, 2, 1))
        ),
        ValueError,
        "at least as many inferred slots as objects",
    ),
    case(
        "probe-y-2d-columns",
        lambda: SlotProbe().fit(np.zeros((10, 4)), np.zeros((10, 2))),
        ValueError,
        "y[:, :, None]",
    ),
    case(
        "probe-y-2d-columns-reshape",
        lambda: SlotProbe().fit(np.zeros((10, 4)), np.zeros((10, 6))),
        ValueError,
        "y.reshape(10, K, m)",
    ),
    case(
        "probe-score-y-2d-columns",
        lambda: _continuous_probe().score(np.zeros((20, 4)), np.zeros((20, 2))),
        ValueError,
        "y[:, :, None]",
    ),
    case(
        "identifiability-latents-2d-columns",
        lambda: slot_identifiability_score(np.zeros((10, 2)), np.zeros((10, 2, 2))),
        ValueError,
        "y[:, :, None]",
    ),
    case(
        "identifiability-latents-2d-columns-reshape",
        lambda: slot_identifiability_score(np.zeros((10, 6)), np.zeros((10, 2, 2))),
        ValueError,
        "y.reshape(10, K, m)",
    ),
    case(
        "probe-matching-auto",
        lambda: SlotProbe(matching="auto").fit(np.zeros((10, 4)), np.zeros((10, 2, 1))),
        InvalidParameterError,
        "matching",
    ),
    case(
        "probe-categorical-auto",
        lambda: SlotProbe(categorical="auto").fit(
            np.zeros((10, 4)), np.zeros((10, 2, 1))
        ),
        InvalidParameterError,
        "categorical",
    ),
    case(
        "probe-score-other-concepts",
        lambda: probe()[0].score(probe()[1], probe()[2][:, :1]),
        ValueError,
        "has concepts",
    ),
    case(
        "probe-score-y-length",
        lambda: probe()[0].score(probe()[1], probe()[2][:50]),
        ValueError,
        "50 samples",
    ),
    case(
        "probe-score-strings-for-continuous",
        lambda: _continuous_probe().score(
            np.zeros((20, 4)), np.full((20, 2, 1), "a", dtype=object)
        ),
        ValueError,
        "continuous at fit",
    ),
    case(
        "probe-categorical-index",
        lambda: SlotProbe(categorical=[5]).fit(np.zeros((10, 4)), np.zeros((10, 2, 1))),
        ValueError,
        "latent indices",
    ),
    case(
        "probe-y-nan",
        lambda: SlotProbe().fit(
            np.zeros((10, 4)), nan_at(np.zeros((10, 2, 1)), (0, 0, 0))
        ),
        ValueError,
        "NaN",
    ),
    case(
        "probe-y-complex",
        lambda: SlotProbe().fit(np.zeros((10, 4)), np.ones((10, 2, 1), complex)),
        ValueError,
        "Complex",
    ),
    case(
        "identifiability-slots-nan",
        lambda: slot_identifiability_score(
            np.zeros((10, 2, 1)), nan_at(np.zeros((10, 2, 2)), (0, 0, 0))
        ),
        ValueError,
        "NaN",
    ),
    case(
        "identifiability-flat-slots",
        lambda: slot_identifiability_score(np.zeros((10, 2, 1)), np.zeros((10, 4))),
        ValueError,
        "pass n_slots",
    ),
    case(
        "identifiability-indivisible",
        lambda: slot_identifiability_score(
            np.zeros((10, 2, 1)), np.zeros((10, 5)), n_slots=2
        ),
        ValueError,
        "does not divide",
    ),
    case(
        "supervised-y-beyond-float32",
        lambda: EncoderBaseline(**TINY, objective="supervised").fit(
            vectors()[0], vectors()[1].astype(np.float64) * 1e300
        ),
        ValueError,
        "float32 range",
    ),
    case(
        "supervised-duplicate-columns",
        lambda: EncoderBaseline(**TINY, objective="supervised").fit(
            images()[0], concepts_with().rename(columns={"slot0_y": "slot0_x"})
        ),
        ValueError,
        "duplicate concept columns",
    ),
    case(
        "supervised-table-for-array",
        lambda: _array_supervised().score(
            vectors()[0], pd.DataFrame(vectors()[1].reshape(60, -1))
        ),
        ValueError,
        "fitted on latents",
    ),
    case(
        "probe-duplicate-columns",
        lambda: SlotProbe().fit(
            np.zeros((60, 4)), concepts_with().rename(columns={"slot0_y": "slot0_x"})
        ),
        ValueError,
        "duplicate concept columns",
    ),
    case(
        "probe-score-shifted-labels",
        lambda: probe()[0].score(probe()[1], probe()[2] + 0.5),
        ValueError,
        "none of the labels seen at fit",
    ),
    case(
        "probe-score-strings-for-codes",
        lambda: probe()[0].score(probe()[1], np.where(probe()[2] > 0, "a", "b")),
        ValueError,
        "none of the labels seen at fit",
    ),
]


def _array_supervised():
    X, z = vectors()
    return quiet(lambda: EncoderBaseline(**TINY, objective="supervised").fit(X, z))


def _timestamp_supervised():
    X, _ = vectors()
    y = pd.DataFrame(
        {
            "a_t": pd.date_range("2020", periods=3).repeat(20),
            "b_v": np.arange(60.0),
        }
    )
    return quiet(lambda: EncoderBaseline(**TINY, objective="supervised").fit(X, y))


def _replay():
    return pickle.loads(pickle.dumps(_fitted_replay()))


@functools.cache
def _fitted_replay():
    X, _ = vectors()
    return quiet(lambda: ReplayEncoder(inverter(), max_epochs=1, random_state=0).fit(X))


def _continuous_probe():
    rng = np.random.default_rng(0)
    return SlotProbe(readout="linear").fit(
        rng.normal(size=(20, 4)), rng.normal(size=(20, 2, 1))
    )


PARAMETER_CASES = [
    case("n_slots-0", fit_vectors(n_slots=0), InvalidParameterError, "n_slots"),
    case(
        "slot_dim-float", fit_vectors(slot_dim=1.5), InvalidParameterError, "slot_dim"
    ),
    case("lr-0", fit_vectors(lr=0), InvalidParameterError, "'lr'"),
    case(
        "batch_size-0", fit_vectors(batch_size=0), InvalidParameterError, "batch_size"
    ),
    case(
        "max_epochs-0", fit_vectors(max_epochs=0), InvalidParameterError, "max_epochs"
    ),
    case(
        "decoder-unknown", fit_vectors(decoder="cnn"), InvalidParameterError, "decoder"
    ),
    case(
        "encoder-unknown", fit_vectors(encoder="vit"), InvalidParameterError, "encoder"
    ),
    case(
        "optimizer-unknown",
        fit_vectors(optimizer="lbfgs"),
        InvalidParameterError,
        "optimizer",
    ),
    case(
        "optimizer-not-optimizer",
        fit_vectors(optimizer=dict),
        ValueError,
        "subclass of torch.optim.Optimizer",
    ),
    case(
        "optimizer_params-unknown",
        fit_vectors(optimizer_params={"momentum_x": 1}),
        ValueError,
        "optimizer_params",
    ),
    case(
        "decoder-misspelt-option",
        lambda: AdditiveDecoder(hiden=(8,)),
        TypeError,
        "unexpected keyword argument 'hiden'",
    ),
    case(
        "decoder-misspelt-nested-option",
        lambda: GenerativeInverter(decoder=AdditiveDecoder()).set_params(
            decoder__hiden=(8,)
        ),
        ValueError,
        "Invalid parameter 'hiden' for estimator AdditiveDecoder",
    ),
    case(
        "decoder-renderer-unknown",
        fit_vectors(decoder=AdditiveDecoder(renderer="ray")),
        InvalidParameterError,
        "'renderer' parameter of AdditiveDecoder",
    ),
    case(
        "decoder-renderer-list-unknown",
        fit_vectors(decoder=AdditiveDecoder(renderer=["mlp", "ray"])),
        ValueError,
        "renderer must be",
    ),
    case(
        "decoder-renderer-list-repeated",
        fit_vectors(decoder=AdditiveDecoder(renderer=["mlp", "mlp"])),
        ValueError,
        "list of distinct",
    ),
    case(
        "decoder-overlap-penalty-negative",
        fit_vectors(decoder=AdditiveDecoder(overlap_penalty=-0.1)),
        InvalidParameterError,
        "'overlap_penalty' parameter of AdditiveDecoder",
    ),
    case(
        "decoder-penalty-epochs-0",
        fit_vectors(decoder=AdditiveDecoder(overlap_penalty=0.1, penalty_epochs=0)),
        InvalidParameterError,
        "'penalty_epochs' parameter of AdditiveDecoder",
    ),
    case(
        "decoder-hidden-int",
        fit_vectors(decoder=AdditiveDecoder(hidden=8)),
        InvalidParameterError,
        "'hidden' parameter of AdditiveDecoder",
    ),
    case(
        "decoder-nested-set-after-construction",
        lambda: quiet(
            lambda: (
                fresh(decoder=AdditiveDecoder())
                .set_params(decoder__renderer="ray")
                .fit(vectors()[0])
            )
        ),
        InvalidParameterError,
        "'renderer' parameter of AdditiveDecoder",
    ),
    case(
        "decoder-transformer-heads",
        fit_vectors(decoder=TransformerDecoder(embed_dim=6, n_heads=4, n_layers=1)),
        ValueError,
        "n_heads=4 must divide embed_dim=6",
    ),
    case(
        "decoder-transformer-penalty-negative",
        fit_vectors(decoder=TransformerDecoder(interaction_penalty=-1.0)),
        InvalidParameterError,
        "'interaction_penalty' parameter of TransformerDecoder",
    ),
    case(
        "decoder-class-not-instance",
        fit_vectors(decoder=AdditiveDecoder),
        InvalidParameterError,
        "'decoder' parameter",
    ),
    case(
        "baseline-decoder-additive",
        lambda: EncoderBaseline(**TINY, decoder=AdditiveDecoder()).fit(vectors()[0]),
        InvalidParameterError,
        "'decoder' parameter of EncoderBaseline",
    ),
    case(
        "encoder-mlp-hidden-int",
        fit_vectors(encoder=MLPEncoder(hidden=8)),
        InvalidParameterError,
        "'hidden' parameter of MLPEncoder",
    ),
    case(
        "encoder-conv-on-vectors",
        fit_vectors(encoder=ConvEncoder()),
        ValueError,
        "ConvEncoder needs images",
    ),
    case(
        "encoder-conv-channels-0",
        lambda: fresh(encoder=ConvEncoder(channels=0)).fit(images()[0]),
        InvalidParameterError,
        "'channels' parameter of ConvEncoder",
    ),
    case("callbacks-int", fit_vectors(callbacks=[42]), ValueError, "skorch callbacks"),
    case(
        "callbacks-string",
        fit_vectors(callbacks=["progress"]),
        ValueError,
        "skorch callbacks",
    ),
    case(
        "callbacks-bad-pair",
        fit_vectors(callbacks=[("progress",)]),
        ValueError,
        "pairs",
    ),
    case(
        "callbacks-not-list",
        fit_vectors(callbacks=ProgressBar()),
        InvalidParameterError,
        "callbacks",
    ),
    case(
        "early-stopping-without-validation",
        fit_vectors(callbacks=[EarlyStopping()]),
        ValueError,
        "validation_fraction",
    ),
    case(
        "checkpoint-without-validation",
        fit_vectors(callbacks=[Checkpoint(dirname=os.devnull)]),
        ValueError,
        "valid_loss_best",
    ),
    case(
        "replay-early-stopping",
        lambda: ReplayEncoder(inverter(), callbacks=[EarlyStopping()]).fit(
            vectors()[0]
        ),
        ValueError,
        "holds out no validation data",
    ),
    case(
        "validation_fraction-1.5",
        fit_vectors(validation_fraction=1.5),
        InvalidParameterError,
        "validation_fraction",
    ),
    case(
        "device-unknown", fit_vectors(device="gpu0"), ValueError, "not a torch device"
    ),
    case(
        "device-cuda-missing",
        fit_vectors(device="cuda"),
        ValueError,
        "CUDA is not available",
    ),
    case("n_init-0", fit_vectors(n_init=0), InvalidParameterError, "n_init"),
    case("tol-negative", fit_vectors(tol=-1.0), InvalidParameterError, "tol"),
    case(
        "kl_weight-string",
        fit_vectors(kl_weight="yes"),
        InvalidParameterError,
        "kl_weight",
    ),
    case(
        "kl_weight-negative",
        fit_vectors(kl_weight=-1.0),
        InvalidParameterError,
        "kl_weight",
    ),
    case(
        "removed-parameter-vae",
        lambda: GenerativeInverter(vae=True),
        TypeError,
        "vae",
    ),
    case(
        "removed-parameter-search_steps",
        lambda: GenerativeInverter(search_steps=5),
        TypeError,
        "search_steps",
    ),
    case(
        "removed-parameter-decoder_params",
        lambda: GenerativeInverter(decoder_params={"hidden": (8,)}),
        TypeError,
        "decoder_params",
    ),
    case(
        "removed-parameter-replay_epochs",
        lambda: ReplayEncoder(replay_epochs=1),
        TypeError,
        "replay_epochs",
    ),
    case(
        "removed-parameter-sampler",
        lambda: ReplayEncoder(sampler="pool"),
        TypeError,
        "sampler",
    ),
    case("search-unknown", fit_vectors(search="beam"), InvalidParameterError, "search"),
    case(
        "search-class-not-instance",
        fit_vectors(search=GradientSearch),
        InvalidParameterError,
        "search",
    ),
    case(
        "search-steps-negative-at-fit",
        fit_vectors(search=GradientSearch(steps=-1)),
        InvalidParameterError,
        "'steps' parameter of GradientSearch",
    ),
    case(
        "replay-search-lr-0-after-fit",
        lambda: (
            _replay().set_params(search=GradientSearch(lr=0)).transform(vectors()[0])
        ),
        InvalidParameterError,
        "'lr' parameter of GradientSearch",
    ),
    case(
        "replay-max_epochs-0",
        lambda: ReplayEncoder(inverter(), max_epochs=0).fit(vectors()[0]),
        InvalidParameterError,
        "max_epochs",
    ),
    case(
        "replay-y-length",
        lambda: ReplayEncoder(inverter(), max_epochs=1).fit(
            vectors()[0], vectors()[1][:10]
        ),
        ValueError,
        "y has 10 samples but X has 60",
    ),
    case(
        "inverter-y-length",
        lambda: fresh().fit(vectors()[0], np.zeros(59)),
        ValueError,
        "y has 59 samples but X has 60",
    ),
    case(
        "one-sample-inverter",
        lambda: fresh().fit(vectors()[0][:1]),
        ValueError,
        "minimum of 2 is required",
    ),
    case(
        "one-sample-baseline",
        lambda: EncoderBaseline(**TINY).fit(vectors()[0][:1]),
        ValueError,
        "minimum of 2 is required",
    ),
    case(
        "one-sample-supervised",
        lambda: EncoderBaseline(**TINY, objective="supervised").fit(
            vectors()[0][:1], vectors()[1][:1]
        ),
        ValueError,
        "minimum of 2 is required",
    ),
    case(
        "one-sample-replay",
        lambda: ReplayEncoder(inverter(), max_epochs=1).fit(vectors()[0][:1]),
        ValueError,
        "minimum of 2 is required",
    ),
    case(
        "random_state-string",
        fit_vectors(random_state="seed"),
        InvalidParameterError,
        "random_state",
    ),
    case(
        "lr-huge-diverges",
        fit_vectors(lr=1e6, max_epochs=3),
        ValueError,
        "diverged",
    ),
    case(
        "user-encoder-wrong-input",
        fit_vectors(encoder=torch.nn.Linear(7, 5)),
        ValueError,
        "does not accept samples of shape (64,)",
    ),
    case(
        "user-encoder-3d-output",
        fit_vectors(encoder=torch.nn.Unflatten(1, (8, 8))),
        ValueError,
        "to features (n, n_features)",
    ),
    case(
        "replay-generator-wrong-type",
        lambda: ReplayEncoder(EncoderBaseline()).fit(vectors()[0]),
        InvalidParameterError,
        "generator",
    ),
    case(
        "replay-generator-other-shape",
        lambda: ReplayEncoder(inverter()).fit(np.zeros((10, 8))),
        ValueError,
        "fitted generator expects",
    ),
    case(
        "search-steps-negative-after-fit",
        transform_after(search=GradientSearch(steps=-1)),
        InvalidParameterError,
        "'steps' parameter of GradientSearch",
    ),
    case(
        "search-steps-float-after-fit",
        transform_after(search__steps=2.5),
        InvalidParameterError,
        "'steps' parameter of GradientSearch",
    ),
    case(
        "search-lr-negative-after-fit",
        transform_after(search__lr=-1),
        InvalidParameterError,
        "'lr' parameter of GradientSearch",
    ),
    case(
        "search-batch_size-0-after-fit",
        transform_after(search__batch_size=0),
        InvalidParameterError,
        "'batch_size' parameter of GradientSearch",
    ),
    case(
        "search-tol-negative-after-fit",
        transform_after(search__tol=-1.0),
        InvalidParameterError,
        "'tol' parameter of GradientSearch",
    ),
    case(
        "search-restarts-0-after-fit",
        transform_after(search__restarts=0),
        InvalidParameterError,
        "'restarts' parameter of GradientSearch",
    ),
    case(
        "search-unknown-after-fit",
        transform_after(search="beam"),
        ValueError,
        "search",
    ),
    case(
        "search-int-after-fit",
        transform_after(search=5),
        ValueError,
        "search",
    ),
    case(
        "search-misspelt-nested-option",
        transform_after(search__step=5),
        ValueError,
        "Invalid parameter 'step' for estimator GradientSearch",
    ),
    case("lr-beyond-float32", fit_vectors(lr=1e39), InvalidParameterError, "'lr'"),
    case(
        "callback-class-without-validation",
        fit_vectors(callbacks=[EarlyStopping]),
        ValueError,
        "EarlyStopping monitors 'valid_loss'",
    ),
]

STATE_CASES = [
    case(
        "transform-unfitted",
        lambda: GenerativeInverter().transform(np.zeros((2, 4))),
        NotFittedError,
        "not fitted",
    ),
    case(
        "inverse-transform-unfitted",
        lambda: GenerativeInverter().inverse_transform(np.zeros((2, 4))),
        NotFittedError,
        "not fitted",
    ),
    case(
        "score-unfitted",
        lambda: EncoderBaseline().score(np.zeros((2, 4))),
        NotFittedError,
        "not fitted",
    ),
    case(
        "feature-names-unfitted",
        lambda: ReplayEncoder().get_feature_names_out(),
        NotFittedError,
        "not fitted",
    ),
    case(
        "render-slots-unfitted",
        lambda: GenerativeInverter().render_slots(np.zeros((2, 8))),
        NotFittedError,
        "not fitted",
    ),
    case(
        "probe-predict-unfitted",
        lambda: SlotProbe().predict(np.zeros((2, 4))),
        NotFittedError,
        "not fitted",
    ),
    case(
        "supervised-has-no-decoder",
        lambda: supervised().inverse_transform(np.zeros((2, 4))),
        AttributeError,
        "inverse_transform",
    ),
    case(
        "reconstruction-r2-supervised",
        lambda: reconstruction_r2(supervised(), images()[0]),
        ValueError,
        "decoder",
    ),
]


def _saved(tmp, model=None):
    path = os.path.join(tmp, "model.pt")
    save(model or inverter(), path)
    return path


def _write(tmp, name, data):
    path = os.path.join(tmp, name)
    with open(path, "wb") as file:
        file.write(data)
    return path


def _truncated(tmp):
    data = open(_saved(tmp), "rb").read()
    return _write(tmp, "cut.pt", data[: len(data) // 2])


def _flipped(tmp):
    data = bytearray(open(_saved(tmp), "rb").read())
    middle = len(data) // 2
    data[middle] ^= 0xFF
    return _write(tmp, "flipped.pt", bytes(data))


def _retouched(tmp):
    content = torch.load(_saved(tmp), weights_only=True)
    content["estimator"]["state_dict"]["encoder.mean.bias"] += 1.0
    path = os.path.join(tmp, "retouched.pt")
    torch.save(content, path)
    return path


class _Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def _malicious(tmp):
    path = os.path.join(tmp, "payload.pt")
    torch.save({"format": "compgen-sk estimator", "x": _Payload()}, path)
    return path


def _foreign(tmp):
    path = os.path.join(tmp, "other.pt")
    torch.save({"weights": torch.zeros(3)}, path)
    return path


PERSISTENCE_CASES = [
    case(
        "save-unfitted",
        lambda tmp: save(GenerativeInverter(), f"{tmp}/a.pt"),
        ValueError,
        "not fitted",
    ),
    case(
        "save-probe", lambda tmp: save(probe()[0], f"{tmp}/a.pt"), TypeError, "pickle"
    ),
    case(
        "save-user-module",
        lambda tmp: save(quiet(fit_vectors(encoder=torch.nn.Flatten())), f"{tmp}/a.pt"),
        ValueError,
        "user-defined module",
    ),
    case(
        "load-missing", lambda tmp: load(f"{tmp}/none.pt"), FileNotFoundError, "No file"
    ),
    case(
        "load-empty",
        lambda tmp: load(_write(tmp, "e.pt", b"")),
        ValueError,
        "truncated",
    ),
    case("load-truncated", lambda tmp: load(_truncated(tmp)), ValueError, "truncated"),
    case("load-byte-flipped", lambda tmp: load(_flipped(tmp)), ValueError, "corrupted"),
    case("load-retouched", lambda tmp: load(_retouched(tmp)), ValueError, "SHA-256"),
    case("load-code", lambda tmp: load(_malicious(tmp)), ValueError, "Refused"),
    case(
        "load-foreign",
        lambda tmp: load(_foreign(tmp)),
        ValueError,
        "not a file written by compgen_sk.save",
    ),
    case(
        "load-bad-device",
        lambda tmp: load(_saved(tmp), device="gpu0"),
        ValueError,
        "not a torch device",
    ),
    case(
        "save-after-set-params",
        lambda tmp: save(
            pickle.loads(pickle.dumps(inverter())).set_params(slot_dim=3),
            f"{tmp}/a.pt",
        ),
        ValueError,
        "no longer describe its fitted networks",
    ),
    case(
        "save-after-set-params-decoder",
        lambda tmp: save(
            pickle.loads(pickle.dumps(inverter())).set_params(
                decoder=AdditiveDecoder(hidden=(4,))
            ),
            f"{tmp}/a.pt",
        ),
        ValueError,
        "no longer describe its fitted networks",
    ),
    case(
        "save-after-set-params-kl_weight",
        lambda tmp: save(
            pickle.loads(pickle.dumps(inverter())).set_params(kl_weight=1.0),
            f"{tmp}/a.pt",
        ),
        ValueError,
        "no longer describe its fitted networks",
    ),
    case("save-to-folder", lambda tmp: save(inverter(), tmp), ValueError, "folder"),
    case(
        "load-text-file",
        lambda tmp: load(_write(tmp, "t.pt", b"hello world\n" * 10)),
        ValueError,
        "not a file written by compgen_sk.save",
    ),
    case(
        "save-timestamp-categories",
        lambda tmp: save(_timestamp_supervised(), f"{tmp}/a.pt"),
        ValueError,
        "plain data",
    ),
]

FAST = [
    "--n-samples",
    "300",
    "--epochs",
    "1",
    "--seeds",
    "0",
    "--no-progress",
    "--methods",
    "encoder-autoencoder",
]


LR_ERROR = (
    "compgen-sk compare: error: The 'lr' parameter of Settings must be a float in "
    "the range (0.0, 3.4028234663852886e+38]. "
)


def cli(*argv):
    """The command line as a call that raises SystemExit on any failure."""

    def run(tmp):
        status = main(["compare", "--out", str(tmp), *FAST, *argv])
        if status:
            raise SystemExit(status)

    return run


CLI_CASES = [
    case("cli-lr-0", cli("--lr", "0"), SystemExit, LR_ERROR + "Got 0.0 instead."),
    case("cli-lr-nan", cli("--lr", "nan"), SystemExit, LR_ERROR + "Got nan instead."),
    case(
        "cli-epochs-0",
        cli("--epochs", "0"),
        SystemExit,
        "compgen-sk compare: error: The 'epochs' parameter of Settings must be an "
        "int in the range [1, inf). Got 0 instead.",
    ),
    case(
        "cli-n-jobs-0",
        cli("--n-jobs", "0"),
        SystemExit,
        "compgen-sk compare: error: The 'n_jobs' parameter of Settings",
    ),
    case(
        "cli-seed-negative",
        cli("--seeds", "-1"),
        SystemExit,
        "compgen-sk compare: error: seeds must be integers >= 0; got [-1].",
    ),
    case("cli-method-unknown", cli("--methods", "magic"), SystemExit, "--methods"),
    case(
        "cli-image-size-0",
        cli("--image-size", "0"),
        SystemExit,
        "compgen-sk compare: error: The 'image_size' parameter of Settings",
    ),
    case("cli-dataset-unknown", cli("--dataset", "mnist"), SystemExit, "--dataset"),
    case("cli-lr-not-a-number", cli("--lr", "fast"), SystemExit, "--lr"),
    case(
        "api-lr-nan",
        lambda tmp: run_comparison(lr=float("nan"), out=None, log=print),
        ValueError,
        "The 'lr' parameter of Settings must be a float in the range",
    ),
    case(
        "api-no-seeds",
        lambda tmp: run_comparison(seeds=(), out=None, log=print),
        ValueError,
        "seeds",
    ),
    case(
        "api-probe-unknown",
        lambda tmp: run_comparison(probe="svm", out=None, log=print),
        ValueError,
        "probe",
    ),
    case(
        "api-out-is-file",
        lambda tmp: run_comparison(
            out=_write(tmp, "file.txt", b"x"), log=print, epochs=1
        ),
        ValueError,
        "is an existing file",
    ),
    case(
        "api-n-train-too-large",
        lambda tmp: run_comparison(
            dataset="additive",
            n_samples=100,
            n_train=(5000,),
            log=None,
            methods=("encoder-autoencoder",),
            progress=False,
        ),
        ValueError,
        "exceeds",
    ),
    case(
        "cli-lr-beyond-float32",
        cli("--lr", "1e39"),
        SystemExit,
        LR_ERROR + "Got 1e+39 instead.",
    ),
    case(
        "cli-repeated-seeds",
        cli("--seeds", "0", "0"),
        SystemExit,
        "seeds are repeated",
    ),
    case(
        "cli-results-file-is-a-folder",
        lambda tmp: (tmp / "results.csv").mkdir() or cli()(tmp),
        SystemExit,
        "Cannot write",
    ),
    case(
        "api-data-dir-for-digits",
        lambda tmp: run_comparison(data_dir=str(tmp), out=None, log=print),
        ValueError,
        "data_dir applies to dataset 'pug' only",
    ),
    case(
        "api-image-size-for-additive",
        lambda tmp: run_comparison(dataset="additive", image_size=8, log=print),
        ValueError,
        "does not apply",
    ),
    case(
        "api-generator-params-unknown",
        lambda tmp: run_comparison(generator_params={"vae": True}, log=print),
        ValueError,
        "does not take: ['vae']",
    ),
    case(
        "api-generator-params-clash",
        lambda tmp: run_comparison(generator_params={"max_epochs": 3}, log=print),
        ValueError,
        "must not set ['max_epochs']",
    ),
    case(
        "api-generator-params-invalid",
        lambda tmp: run_comparison(generator_params={"batch_size": 0}, log=print),
        ValueError,
        "batch_size",
    ),
    case(
        "api-empty-out",
        lambda tmp: run_comparison(out="", log=print),
        ValueError,
        "empty",
    ),
    case(
        "api-generator-params-search",
        lambda tmp: run_comparison(generator_params={"search": None}, log=print),
        ValueError,
        "must not set ['search']",
    ),
    case(
        "api-generator-params-decoder-unknown",
        lambda tmp: run_comparison(generator_params={"decoder": "cnn"}, log=print),
        InvalidParameterError,
        "The 'decoder' parameter of GenerativeInverter",
    ),
    case(
        "api-generator-params-decoder-option",
        # Training the first method would come before the generator's fit.
        lambda tmp: run_comparison(
            dataset="additive",
            n_samples=200,
            epochs=1,
            search_steps=1,
            seeds=(0,),
            methods=("encoder-autoencoder", "generative-search"),
            progress=False,
            generator_params={"decoder": AdditiveDecoder(renderer="ray")},
            log=print,
        ),
        ValueError,
        "renderer",
    ),
    case(
        "api-generator-params-kl-weight-negative",
        lambda tmp: run_comparison(generator_params={"kl_weight": -1.0}, log=print),
        InvalidParameterError,
        "kl_weight",
    ),
    case(
        "api-settings-extra-removed",
        lambda tmp: run_comparison(extra={"consistency_weight": 0.1}, log=print),
        TypeError,
        "extra",
    ),
]

DATASET_CASES = [
    case("additive-0-samples", lambda: make_additive(0), ValueError, "n_samples"),
    case(
        "additive-0-slots", lambda: make_additive(10, n_slots=0), ValueError, "n_slots"
    ),
    case(
        "sprites-too-small",
        lambda: make_sprites(10, image_size=4),
        ValueError,
        "too small",
    ),
    case(
        "sprites-support",
        lambda: make_sprites(10, support="ring"),
        ValueError,
        "support",
    ),
    case(
        "digits-negative", lambda: make_digit_compositions(-1), ValueError, "n_samples"
    ),
    case(
        "pug-missing",
        lambda: load_pug("/no/such/folder"),
        FileNotFoundError,
        "not an existing folder",
    ),
]

GRID = np.array([[a, b] for a in range(2) for b in range(2)] * 5)


def splits(cv, groups, n=None):
    return lambda: list(cv.split(np.zeros((n or len(GRID), 1)), groups=groups))


SPLITTER_CASES = [
    case(
        "cv-no-groups", splits(HeldOutCombinations(), None), ValueError, "needs groups"
    ),
    case(
        "cv-one-column",
        splits(HeldOutCombinations(), GRID[:, :1]),
        ValueError,
        "at least 2",
    ),
    case(
        "cv-nan-groups",
        splits(HeldOutCombinations(), nan_at(GRID, (0, 0))),
        ValueError,
        "missing values",
    ),
    case(
        "cv-length",
        splits(HeldOutCombinations(), GRID, n=7),
        ValueError,
        "rows but X has",
    ),
    case(
        "cv-3d-groups",
        splits(HeldOutCombinations(), GRID[:, :, None]),
        ValueError,
        "concept table",
    ),
    case(
        "cv-repeated-folds",
        splits(HeldOutCombinations(n_splits=10), GRID),
        ValueError,
        "distinct",
    ),
    case(
        "cv-0-splits",
        splits(HeldOutCombinations(n_splits=0), GRID),
        InvalidParameterError,
        "n_splits",
    ),
    case(
        "cv-test-size",
        splits(HeldOutCombinations(test_size=1.5), GRID),
        InvalidParameterError,
        "test_size",
    ),
    case(
        "split-no-arrays",
        lambda: train_test_split_combinations(concepts=GRID),
        ValueError,
        "At least one array",
    ),
    case(
        "split-impossible",
        lambda: train_test_split_combinations(GRID[:2], concepts=np.eye(2)),
        ValueError,
        "No valid",
    ),
]


def _check(case_, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(case_.error) as info:
            case_.call(*args)
    return info


@pytest.mark.parametrize(
    "case_",
    X_CASES + Y_CASES + PARAMETER_CASES + STATE_CASES + DATASET_CASES + SPLITTER_CASES,
)
def test_bad_input_gives_a_clear_error(case_):
    info = _check(case_)
    assert case_.match in str(info.value)


@pytest.mark.parametrize("case_", PERSISTENCE_CASES)
def test_persistence_faults_give_a_clear_error(case_, tmp_path):
    info = _check(case_, str(tmp_path))
    assert case_.match in str(info.value)


@pytest.mark.parametrize("case_", CLI_CASES)
def test_command_line_faults_give_a_clear_error_before_training(
    case_, tmp_path, capsys
):
    info = _check(case_, tmp_path)
    captured = capsys.readouterr()
    if case_.error is SystemExit:
        assert info.value.code == 2
        message = captured.err
    else:
        message = str(info.value)
    assert case_.match in message
    assert "[seed" not in captured.out  # nothing was trained
    assert not (tmp_path / "results.csv").is_file()


def test_divergence_in_the_command_line_exits_with_a_message(tmp_path, capsys):
    assert main(["compare", "--out", str(tmp_path), *FAST, "--lr", "1e6"]) == 2
    assert "diverged" in capsys.readouterr().err
    assert not (tmp_path / "results.csv").exists()


def test_an_output_folder_that_cannot_be_made_fails_first(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    out = blocker / "results"
    assert main(["compare", "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert "Cannot write to the output folder" in err
    assert "[seed" not in err


def test_non_finite_scores_never_reach_results(monkeypatch, tmp_path):
    from compgen_sk.app import compare

    monkeypatch.setattr(
        compare.SlotProbe,
        "concept_scores",
        lambda *args, **kw: pd.Series([np.inf, 0.5], index=["a", "b"]),
    )
    with pytest.raises(ValueError, match="non-finite results"):
        run_comparison(
            dataset="additive",
            n_samples=200,
            epochs=1,
            seeds=(0,),
            methods=("encoder-autoencoder",),
            progress=False,
            log=None,
            out=tmp_path,
        )
    assert not (tmp_path / "results.csv").exists()


def test_the_suite_is_large_enough():
    cases = (
        X_CASES
        + Y_CASES
        + PARAMETER_CASES
        + STATE_CASES
        + PERSISTENCE_CASES
        + CLI_CASES
        + DATASET_CASES
        + SPLITTER_CASES
    )
    assert len(cases) >= 60
    assert len({c.values[0].id for c in cases}) == len(cases)


# ----------------------------------------------------------------------------------
# Correct answers where a silent wrong one was possible
# ----------------------------------------------------------------------------------


def test_probe_scores_categories_by_accuracy_whatever_the_dtype_at_score():
    fitted, slots, labels = probe()
    assert fitted.categorical_.all()
    as_int = fitted.score(slots, labels)
    assert fitted.score(slots, labels.astype(float)) == as_int
    # A category never seen at fit counts as an error, as accuracy counts it.
    unseen = labels.copy()
    unseen[:30, 0, 0] = 7
    assert fitted.score(slots, unseen) < as_int


def test_supervised_score_encodes_a_fold_as_at_fit():
    X, concepts = images()
    model = supervised()
    one_shape = concepts["slot0_shape"] == concepts["slot0_shape"].iloc[0]
    fold_X, fold_y = X[one_shape.to_numpy()], concepts[one_shape]
    # One category in this fold: still one column per category seen at fit.
    score = model.score(fold_X, fold_y)
    assert np.isfinite(score)
    assert len(model.concept_categories_["slot0_shape"]) == 2


def test_bool_concepts_are_categorical():
    rng = np.random.default_rng(0)
    flags = rng.random((80, 2)) > 0.5
    slots = np.concatenate([flags[:, :1], flags[:, 1:]], axis=1) + 0.01 * rng.normal(
        size=(80, 2)
    )
    y = pd.DataFrame({"a_on": flags[:, 0], "b_on": flags[:, 1]})
    fitted = SlotProbe(n_slots=2, random_state=0).fit(slots, y)
    assert fitted.categorical_.tolist() == [True, True]
    assert fitted.score(slots, y) == 1.0


def test_channels_last_images_warn():
    X = np.random.default_rng(0).random((20, 8, 8, 3)).astype(np.float32)
    with pytest.warns(UserWarning, match=r"transpose\(0, 3, 1, 2\)"):
        quiet_convergence(lambda: fresh(search=None).fit(X))


def quiet_convergence(fit):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(training|max_epochs).*")
        return fit()


def test_held_out_combination_folds_are_distinct():
    cv = HeldOutCombinations(n_splits=4, random_state=0)
    folds = [tuple(test) for _, test in cv.split(GRID, groups=GRID)]
    assert len(set(folds)) == 4


def test_probe_with_fewer_slots_than_objects_scores_the_unheld_one_zero():
    # Global matching with fewer inferred slots than true slots is allowed: the
    # true slot that no inferred slot holds reads -1 and scores 0.
    rng = np.random.default_rng(0)
    z = rng.normal(size=(120, 2, 1))
    slots = z[:, 1] + 0.01 * rng.normal(size=(120, 1))  # holds true slot 1 only
    fitted = SlotProbe(n_slots=1, random_state=0).fit(slots, z)
    assert fitted.matching_.tolist() == [-1, 0]
    scores = fitted.concept_scores(slots, z)
    assert scores.iloc[0] == 0.0
    assert scores.iloc[1] > 0.99
    assert fitted.score(slots, z) == pytest.approx(scores.mean())
    assert fitted.predict(slots).shape == z.shape


# ----------------------------------------------------------------------------------
# Traps a new user met
# ----------------------------------------------------------------------------------


class EpochRecorder(Callback):
    """Records every epoch of every fit it is given to: the estimators copy
    their callbacks, so the record is kept on the class."""

    epochs: ClassVar[list] = []

    def on_epoch_end(self, net, **kwargs):
        type(self).epochs.append(len(net.history))


SLOT_ESTIMATORS = {
    "inverter": lambda callbacks: fresh(callbacks=callbacks),
    "encoder": lambda callbacks: EncoderBaseline(**TINY, callbacks=callbacks),
    "replay": lambda callbacks: ReplayEncoder(
        fresh(callbacks=callbacks), max_epochs=1, callbacks=callbacks
    ),
}


@pytest.mark.parametrize("kind", list(SLOT_ESTIMATORS))
def test_a_pipeline_with_a_wrong_y_fails_before_training(kind):
    X, z = vectors()
    EpochRecorder.epochs.clear()
    pipe = Pipeline(
        [
            (
                "slots",
                SLOT_ESTIMATORS[kind]([EpochRecorder()]).set_params(max_epochs=500),
            ),
            ("probe", SlotProbe(random_state=0)),
        ]
    )
    with pytest.raises(ValueError, match="y has 59 samples but X has 60"):
        pipe.fit(X, z[:59])
    assert EpochRecorder.epochs == []  # not one epoch ran: it failed at once
    # The recorder does see the epochs of a fit with the right y.
    quiet(lambda: pipe.set_params(slots__max_epochs=1).fit(X, z))
    assert EpochRecorder.epochs
    assert np.isfinite(pipe.score(X, z))


def test_an_interrupted_fit_reraises_and_leaves_the_estimator_unfitted():
    class Interrupt(Callback):
        def on_epoch_end(self, net, **kwargs):
            raise KeyboardInterrupt

    X, _ = vectors()
    model = fresh(max_epochs=3, callbacks=[Interrupt()])
    with pytest.raises(
        KeyboardInterrupt, match=r"GenerativeInverter\.fit was interrupted\."
    ):
        model.fit(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(model)
    with pytest.raises(NotFittedError):
        model.transform(X)


def test_a_diverged_fit_leaves_the_estimator_unfitted():
    X, _ = vectors()
    model = fresh(lr=1e6, max_epochs=3)
    with pytest.raises(ValueError, match="diverged"):
        quiet(lambda: model.fit(X))
    with pytest.raises(NotFittedError):
        model.transform(X)


def test_misspelt_decoder_options_are_named():
    with pytest.raises(TypeError, match="hiden"):
        AdditiveDecoder(hiden=(8,))
    model = GenerativeInverter(decoder=AdditiveDecoder())
    with pytest.raises(ValueError, match="'hiden'"):
        model.set_params(decoder__hiden=(8,))
    # The spelling that exists is a nested parameter.
    model.set_params(decoder__hidden=(8,))
    assert model.decoder.hidden == (8,)


def test_a_string_array_X_is_refused_by_every_estimator():
    X = np.array([["0.1", "0.2"], ["0.3", "0.4"], ["0.5", "0.6"]])
    for model in (
        fresh(),
        EncoderBaseline(**TINY),
        EncoderBaseline(**TINY, objective="supervised"),
        ReplayEncoder(fresh(), max_epochs=1),
    ):
        with pytest.raises(ValueError, match="X holds strings"):
            model.fit(X, np.zeros((3, 2, 1)))


def test_integer_positions_are_continuous_in_the_probe_and_the_metric():
    rng = np.random.default_rng(0)
    positions = rng.integers(0, 8, size=(200, 2, 2))  # (x, y) on a grid per object
    slots = positions[:, ::-1].reshape(200, -1) + 0.5 * rng.normal(size=(200, 4))
    fit = np.arange(200) < 120
    fitted = SlotProbe(random_state=0).fit(slots[fit], positions[fit])
    assert not fitted.categorical_.any()
    assert fitted.matching_.tolist() == [1, 0]
    by_probe = fitted.score(slots[~fit], positions[~fit])
    # R² of each position, not the accuracy of rounding to grid points.
    predicted = fitted.predict(slots[~fit])
    r2 = r2_score(
        positions[~fit].reshape(80, -1),
        predicted.reshape(80, -1),
        multioutput="raw_values",
    )
    assert by_probe == pytest.approx(r2.mean(), abs=1e-12)
    assert 0.5 < by_probe < 1.0  # accuracy of grid points would be near 0
    by_metric, details = slot_identifiability_score(
        positions, slots, n_slots=2, fit_mask=fit, return_details=True, random_state=0
    )
    assert not details["categorical"].any()
    assert details["inferred_slot"].tolist() == [1, 1, 0, 0]
    # The same probe on the same split; the mean over true slots of their
    # concepts' mean is the mean over concepts (two per slot), to rounding.
    assert by_metric == pytest.approx(by_probe, rel=1e-12)
    # Categorical only when asked.
    as_labels = SlotProbe(categorical=True, random_state=0).fit(
        slots[fit], positions[fit]
    )
    assert as_labels.categorical_.all()


def test_held_out_combinations_warn_on_continuous_concept_values():
    rng = np.random.default_rng(0)
    concepts = pd.DataFrame(
        {"a_x": rng.uniform(size=100), "b_x": rng.uniform(size=100)}
    )
    X = np.zeros((100, 1))
    cv = HeldOutCombinations(n_splits=2, random_state=0)
    # Every sample is a combination of its own: no split keeps each value in
    # training, and the warning says why.
    with pytest.warns(UserWarning, match="distinct combinations"):
        with pytest.raises(ValueError, match="No valid"):
            list(cv.split(X, groups=concepts))
    with pytest.warns(UserWarning, match="distinct combinations"):
        with pytest.raises(ValueError, match="No valid"):
            train_test_split_combinations(X, concepts=concepts, random_state=0)
    # Finely graded values split, with the warning.
    graded = pd.DataFrame(rng.integers(0, 20, size=(100, 2)), columns=["a_x", "b_x"])
    with pytest.warns(UserWarning, match="100 samples"):
        assert len(list(cv.split(X, groups=graded))) == 2
    # Binned, they split without one.
    binned = concepts.apply(lambda column: pd.cut(column, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folds = list(cv.split(X, groups=binned))
        train, test = train_test_split_combinations(X, concepts=binned, random_state=0)
    assert len(folds) == 2
    assert len(train) + len(test) == 100


# ----------------------------------------------------------------------------------
# Safe persistence
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["inverter", "replay", "supervised", "frame", "auto", "broadcast"]
)
def test_saved_estimator_transforms_bit_for_bit(kind, tmp_path):
    X, concepts = images()
    if kind == "inverter":
        model, data = inverter(), vectors()[0]
    elif kind in ("auto", "broadcast"):  # images: both renderers, or a named one
        params = {"decoder": AdditiveDecoder("broadcast")} if kind != "auto" else {}
        model, data = quiet(lambda: fresh(**params).fit(X)), X
    elif kind == "replay":
        model = quiet(
            lambda: ReplayEncoder(
                inverter(), max_epochs=1, search=GradientSearch(steps=2)
            ).fit(vectors()[0])
        )
        data = vectors()[0]
    elif kind == "supervised":
        model, data = supervised(), X
    else:
        data = pd.DataFrame(vectors()[0]).add_prefix("pixel")
        model = quiet(
            lambda: fresh(
                decoder=AdditiveDecoder(hidden=(16, 16)),
                kl_weight=0.5,
                optimizer=torch.optim.Adam,
            ).fit(data)
        )
    path = tmp_path / "model.pt"
    save(model, path)
    loaded = load(path)
    assert type(loaded) is type(model)
    assert loaded.get_params(deep=False).keys() == model.get_params(deep=False).keys()
    np.testing.assert_array_equal(loaded.transform(data), model.transform(data))
    assert loaded.loss_curve_ == model.loss_curve_
    assert loaded.input_shape_ == model.input_shape_
    if kind in ("auto", "broadcast"):
        assert loaded.renderer_ == model.renderer_
        assert loaded.renderer_losses_ == model.renderer_losses_
        assert (model.renderer_losses_ is None) == (kind == "broadcast")
    if kind in ("inverter", "replay"):
        assert type(loaded.search) is GradientSearch
        assert loaded.search.get_params() == model.search.get_params()
    if kind == "replay":
        assert loaded.generator is loaded.generator_
    if kind == "supervised":
        assert loaded.score(X, concepts) == model.score(X, concepts)
        assert loaded.concept_categories_ == model.concept_categories_
    if kind == "frame":
        np.testing.assert_array_equal(loaded.feature_names_in_, model.feature_names_in_)
        assert type(loaded.decoder) is AdditiveDecoder
        assert loaded.decoder.get_params() == model.decoder.get_params()
        assert loaded.get_params()["decoder__hidden"] == (16, 16)
        assert loaded.kl_weight == 0.5
        assert loaded.optimizer is torch.optim.Adam


def test_model_saved_for_a_gpu_loads_on_the_cpu(tmp_path):
    model = pickle.loads(pickle.dumps(inverter())).set_params(device="cuda")
    save(model, tmp_path / "gpu.pt")
    loaded = load(tmp_path / "gpu.pt")
    assert loaded.device == "cpu"
    X = vectors()[0]
    np.testing.assert_array_equal(loaded.transform(X), inverter().transform(X))


def test_saving_callbacks_warns_and_the_loaded_model_refits(tmp_path):
    model = pickle.loads(pickle.dumps(inverter())).set_params(callbacks=[ProgressBar()])
    with pytest.warns(UserWarning, match="not saved"):
        save(model, tmp_path / "m.pt")
    loaded = load(tmp_path / "m.pt")
    assert loaded.callbacks is None
    refit = quiet(lambda: loaded.fit(vectors()[0]))
    np.testing.assert_array_equal(
        refit.transform(vectors()[0]), inverter().transform(vectors()[0])
    )


# ----------------------------------------------------------------------------------
# Nothing a user passes is modified; no global random generator is touched
# ----------------------------------------------------------------------------------


def _global_states():
    import random

    return (
        pickle.dumps(np.random.get_state()),  # noqa: NPY002 (the legacy global)
        torch.get_rng_state().clone(),
        random.getstate(),
    )


def _same(before, after):
    return (
        before[0] == after[0]
        and torch.equal(before[1], after[1])
        and before[2] == after[2]
    )


def test_no_global_random_generator_is_touched(tmp_path):
    before = _global_states()
    X, z = vectors()
    model = quiet(lambda: fresh(n_init=2).fit(X))
    model.transform(X)
    model.score(X)
    replay = ReplayEncoder(model, max_epochs=1, random_state=0)
    quiet(lambda: replay.fit(X)).transform(X)
    quiet(lambda: EncoderBaseline(**TINY, objective="supervised").fit(X, z)).score(X, z)
    slots = model.transform(X)
    SlotProbe(random_state=0).fit(slots, z).score(slots, z)
    slot_identifiability_score(z, slots, n_slots=2, random_state=0)
    make_additive(20, random_state=0)
    make_sprites(20, image_size=12, random_state=0)
    make_digit_compositions(20, random_state=0)
    list(HeldOutCombinations(n_splits=2, random_state=0).split(GRID, groups=GRID))
    save(model, tmp_path / "m.pt")
    load(tmp_path / "m.pt").transform(X)
    assert _same(before, _global_states())


def test_unseeded_fits_draw_from_numpy_only():
    # random_state=None takes its seed from NumPy's global generator, as
    # scikit-learn does; torch's and Python's generators stay untouched.
    before = _global_states()
    quiet(lambda: fresh(random_state=None).fit(vectors()[0]))
    after = _global_states()
    assert torch.equal(before[1], after[1]) and before[2] == after[2]


def test_nothing_a_user_passes_is_modified():
    X = np.array(vectors()[0])
    z = np.array(vectors()[1])
    images_X, concepts = images()
    images_X, concepts = images_X.copy(), concepts.copy()
    copies = (X.copy(), z.copy(), images_X.copy(), concepts.copy())
    hidden = [16, 16]
    decoder = MLPDecoder(hidden=hidden)
    search = GradientSearch(steps=2)
    callbacks = [ProgressBar()]
    optimizer_params = {"weight_decay": 0.0}
    model = quiet(
        lambda: fresh(
            decoder=decoder,
            search=search,
            optimizer_params=optimizer_params,
            callbacks=callbacks,
            verbose=0,
        ).fit(X)
    )
    model.transform(X)
    model.inverse_transform(model.transform(X))
    quiet(lambda: EncoderBaseline(**TINY, objective="supervised").fit(X, z)).score(X, z)
    quiet(
        lambda: EncoderBaseline(**TINY, objective="supervised").fit(images_X, concepts)
    ).score(images_X, concepts)
    slots = model.transform(X)
    slots_copy = slots.copy()
    SlotProbe(random_state=0).fit(slots, concepts.iloc[:60, :2].reset_index(drop=True))
    list(HeldOutCombinations(n_splits=2, random_state=0).split(GRID, groups=GRID))
    np.testing.assert_array_equal(X, copies[0])
    np.testing.assert_array_equal(z, copies[1])
    np.testing.assert_array_equal(images_X, copies[2])
    pd.testing.assert_frame_equal(concepts, copies[3])
    np.testing.assert_array_equal(slots, slots_copy)
    assert model.decoder is decoder and decoder.hidden is hidden
    assert hidden == [16, 16]
    assert decoder.get_params() == MLPDecoder(hidden=[16, 16]).get_params()
    assert model.search is search
    assert search.get_params() == GradientSearch(steps=2).get_params()
    assert optimizer_params == {"weight_decay": 0.0}
    assert len(callbacks) == 1 and isinstance(callbacks[0], ProgressBar)
    assert not hasattr(callbacks[0], "pbar_") or callbacks[0].pbar_ is None


@pytest.mark.parametrize("n_init", [1, 2])
def test_warnings_point_at_the_users_call(n_init):
    X = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    with pytest.warns(ConvergenceWarning) as record:
        GenerativeInverter(**{**TINY, "n_init": n_init}).fit(X)
    assert {w.filename for w in record} == {__file__}
    images = np.random.default_rng(0).random((16, 8, 5, 3)).astype(np.float32)
    with pytest.warns(UserWarning, match="channels-last") as record:
        EncoderBaseline(**TINY).fit(images)
    assert record[0].filename == __file__
