"""Model selection on a real Dask cluster gives the serial scores."""

import warnings

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import Pipeline

from compgen_sk import (
    GenerativeInverter,
    GradientSearch,
    HeldOutCombinations,
    SlotProbe,
)
from compgen_sk.datasets import make_digit_compositions

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """Two worker processes of one thread each, no dashboard."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def problem():
    digits = make_digit_compositions(
        160, digit_size=8, jitter=0, n_classes=3, colored=False, random_state=0
    )
    model = Pipeline(
        [
            (
                "inv",
                # One torch thread, as the cluster's workers have: in a task of
                # the dask backend n_jobs=None would grant the whole cluster's
                # threads (joblib passes its parallel_config on to the tasks).
                GenerativeInverter(
                    n_slots=2,
                    slot_dim=2,
                    max_epochs=2,
                    search=GradientSearch(steps=2),
                    n_jobs=1,
                    random_state=0,
                ),
            ),
            ("probe", SlotProbe(readout="linear", random_state=0)),
        ]
    )
    cv = HeldOutCombinations(n_splits=2, test_size=0.25, random_state=0)
    return digits.images, digits.concepts, model, cv


def _quietly(run):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run()


def test_grid_search_on_a_dask_cluster_equals_the_serial_run(client, problem):
    X, concepts, model, cv = problem
    grid = {"inv__decoder": ["additive", "mlp"]}

    def search(n_jobs):
        found = GridSearchCV(model, grid, cv=cv, n_jobs=n_jobs)
        return found.fit(X, concepts, groups=concepts).cv_results_

    serial = _quietly(lambda: search(None))
    with joblib.parallel_config(backend="dask"):
        on_cluster = _quietly(lambda: search(-1))
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_array_equal(on_cluster[key], serial[key])
    # The work ran on the workers, not in this process.
    assert len(client.scheduler_info()["workers"]) == 2


def test_cross_validate_on_a_dask_cluster_equals_the_serial_run(client, problem):
    X, concepts, model, cv = problem

    def run(n_jobs):
        return cross_validate(
            model, X, concepts, groups=concepts, cv=cv, n_jobs=n_jobs
        )["test_score"]

    serial = _quietly(lambda: run(None))
    with joblib.parallel_config(backend="dask"):
        np.testing.assert_array_equal(_quietly(lambda: run(-1)), serial)
