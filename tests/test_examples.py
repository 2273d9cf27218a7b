"""Every gallery example runs, in its fast mode, so that the examples cannot rot.

Examples are found by glob: a new ``examples/plot_*.py`` is tested without
touching this file. Each runs in a fresh interpreter, as sphinx-gallery and a
reader would run it, with ``COMPGEN_EXAMPLES_FAST=1`` (tiny data, few epochs) and
a non-interactive matplotlib backend.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("plot_*.py"))
# The examples the gallery promises; more may be added.
MIN_EXAMPLES = 7
# A fast-mode example takes seconds; this only stops a hung one.
TIMEOUT_SECONDS = 300


def _fast_env():
    env = dict(os.environ, COMPGEN_EXAMPLES_FAST="1", MPLBACKEND="Agg")
    # The fast-mode models are tiny: extra torch threads cost more in start-up
    # and contention (e.g. beside pytest-xdist workers) than they save.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _docstring(path):
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=False)


def test_gallery_has_the_promised_examples():
    assert len(EXAMPLES) >= MIN_EXAMPLES, [p.name for p in EXAMPLES]
    header = (EXAMPLES_DIR / "README.txt").read_text(encoding="utf-8").splitlines()
    assert header[0].strip()
    assert set(header[1].strip()) == {"="} and len(header[1].strip()) >= len(
        header[0].strip()
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_has_a_gallery_title_and_a_fast_mode(path):
    docstring = _docstring(path)
    assert docstring, f"{path.name} has no module docstring"
    lines = [line.strip() for line in docstring.strip().splitlines()]
    title, underline = lines[0], lines[1]
    assert title, f"{path.name}: the docstring must start with a title"
    assert set(underline) == {"="} and len(underline) >= len(title), (
        f"{path.name}: the title must be underlined with '=' at least as long"
    )
    assert len(lines) > 3 and any(lines[2:]), f"{path.name}: no explanation"
    source = path.read_text(encoding="utf-8")
    assert 'os.environ.get("COMPGEN_EXAMPLES_FAST") == "1"' in source
    # The backend is the reader's (or the test's) choice, never the script's.
    assert "matplotlib.use(" not in source


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_in_fast_mode(path, tmp_path):
    result = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=_fast_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stdout.strip(), f"{path.name} printed no results"
    # Figures are shown, never written: the gallery saves them itself.
    assert not list(tmp_path.iterdir()), f"{path.name} wrote files"
