"""Sphinx configuration of the compgen-sk documentation.

Build from this folder with ``make html`` (runs the examples of the gallery) or
``make html-noplot`` (renders them without running them), that is::

    python -m sphinx -W --keep-going -E -b html . _build/html
    python -m sphinx -W --keep-going -E -b html -D plot_gallery=0 . _build/html

The build needs no network: intersphinx links to Python, NumPy, scikit-learn,
PyTorch and skorch are made only when ``COMPGEN_DOCS_INTERSPHINX=1`` is set.
"""

import inspect
import os
import re
import sys
from pathlib import Path

from docutils.parsers.rst import Directive, directives
from sphinx.util import logging

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import compgen_sk  # noqa: E402

logger = logging.getLogger(__name__)

# -- Project ---------------------------------------------------------------------

project = "compgen-sk"
author = "compgen-sk developers"
copyright = "compgen-sk developers"
release = compgen_sk.__version__
version = ".".join(release.split(".")[:2])

# -- General ---------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb"]
root_doc = "index"
default_role = "literal"
pygments_style = "sphinx"

# -- autodoc / autosummary / numpydoc -----------------------------------------------

autosummary_generate = True
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- intersphinx (opt-in: the default build must work offline) ----------------------

if os.environ.get("COMPGEN_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "pandas": ("https://pandas.pydata.org/docs/", None),
        "sklearn": ("https://scikit-learn.org/stable/", None),
        "torch": ("https://pytorch.org/docs/stable/", None),
        "skorch": ("https://skorch.readthedocs.io/en/stable/", None),
        "joblib": ("https://joblib.readthedocs.io/en/stable/", None),
    }

# -- sphinx-gallery ------------------------------------------------------------------

EXAMPLES = ROOT / "examples"
GALLERY = "auto_examples"

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": GALLERY,
    # Only files named plot_*.py are executed; all are rendered. Building with
    # ``-D plot_gallery=0`` renders the code without running anything.
    "filename_pattern": "/plot_",
    "doc_module": ("compgen_sk",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"compgen_sk": None},
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "matplotlib_animations": False,
}


def _gallery_readme():
    return next(
        (p for p in (EXAMPLES / "README.txt", EXAMPLES / "README.rst") if p.exists()),
        None,
    )


if _gallery_readme() is None:
    # sphinx-gallery refuses an examples folder without a README; keep the rest of
    # the documentation buildable and leave a placeholder where the gallery goes.
    extensions.remove("sphinx_gallery.gen_gallery")
    placeholder = DOCS / GALLERY / "index.rst"
    placeholder.parent.mkdir(exist_ok=True)
    placeholder.write_text(
        "Examples\n========\n\n"
        "The example gallery is built from ``examples/``, which has no "
        "``README.txt`` yet.\n"
    )

# -- Command-line help, captured at build time so that docs/cli.rst cannot rot -------


def _write_cli_help():
    import contextlib
    import io

    from compgen_sk.app.cli import main

    folder = DOCS / "generated" / "cli"
    folder.mkdir(parents=True, exist_ok=True)
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "88"  # argparse wraps to the terminal width
    try:
        pages = {"compgen-sk": ["--help"], "compare": ["compare", "--help"]}
        for name, argv in pages.items():
            text = io.StringIO()
            with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
                main(argv)
            (folder / f"{name}.txt").write_text(text.getvalue())
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


_write_cli_help()

# -- HTML ------------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"compgen-sk {release}"
html_static_path = []
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"install": [], "cli": []}


class _NoMiniGallery(Directive):
    """Stands in for sphinx-gallery's ``minigallery`` when the gallery is off."""

    optional_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec = {
        "add-heading": directives.unchanged,
        "heading-level": directives.unchanged,
    }

    def run(self):
        return []


def _drop_builtin_docstrings(app, what, name, obj, options, lines):
    """Module constants (a tuple, a scorer instance) have no docstring of their
    own; show their value only, not the docstring of their type."""
    if what == "data" and lines:
        own = inspect.cleandoc("\n".join(lines))
        if own == inspect.cleandoc(type(obj).__doc__ or ""):
            lines.clear()


# scikit-learn's metadata-routing plumbing and set_output: documented in scikit-learn's
# own guide, and their docstrings link to labels that exist only there.
_SKLEARN_PLUMBING = re.compile(r"^(get_metadata_routing|set_output|set_\w+_request)$")


def _skip_sklearn_plumbing(app, what, name, obj, skip, options):
    if what == "class" and _SKLEARN_PLUMBING.match(name):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_plumbing)
    # Before numpydoc (priority 500) reformats the docstring.
    app.connect("autodoc-process-docstring", _drop_builtin_docstrings, priority=400)
    if _gallery_readme() is None:
        # Still accept ``-D plot_gallery=0`` and the API pages' mini-galleries.
        app.add_config_value("plot_gallery", "True", "html")
        app.add_directive("minigallery", _NoMiniGallery)
        logger.info(
            "examples/README.txt is missing: the example gallery is replaced by a "
            "placeholder page."
        )
