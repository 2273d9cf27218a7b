"""Warnings that point at the user's code, wherever the library raises them."""

from __future__ import annotations

import os
import sys

import joblib
import sklearn
import skorch

# Code whose frames a warning skips to point at the user's call.
_LIBRARY_DIRS = tuple(
    os.path.dirname(m.__file__) + os.sep
    for m in (sys.modules[__name__.split(".")[0]], sklearn, skorch, joblib)
)


def user_stacklevel():
    """The ``stacklevel`` that makes a warning point at the user's code: the
    first frame, going up from the caller of ``warnings.warn``, outside
    compgen-sk, scikit-learn, skorch and joblib (their wrappers add frames
    that differ from one call path to another)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        level += 1
        frame = frame.f_back
    return level
