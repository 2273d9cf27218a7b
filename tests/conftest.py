import os

import pytest
import torch

# Two cores on CI: keep torch from oversubscribing them when pytest-xdist runs workers.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_grad_leak():
    """Every test starts with gradients enabled, whatever the previous one did."""
    torch.set_grad_enabled(True)
    yield
