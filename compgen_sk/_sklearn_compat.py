"""The private scikit-learn names that compgen-sk relies on, in one place.

scikit-learn has no public equivalent of these (their modules or names start
with ``_``), so they may move between its releases: this module is the one
place to adapt. ``pyproject.toml`` caps scikit-learn below its next major
version; the test suite runs against the version installed.

- ``_fit_context``: validates an estimator's ``_parameter_constraints`` once
  per ``fit``, as scikit-learn's own estimators do.
- ``Interval``, ``StrOptions``, ``HasMethods``, ``validate_params``,
  ``validate_parameter_constraints``: declarative parameter validation, with
  scikit-learn's error messages (:class:`InvalidParameterError`).
- ``GroupsConsumerMixin``: makes a splitter request ``groups`` under metadata
  routing.
- ``check_sample_weight`` and ``safe_indexing``: sample weights checked like
  scikit-learn's, and row indexing of arrays, DataFrames and lists.
"""

from sklearn.base import _fit_context
from sklearn.model_selection._split import GroupsConsumerMixin
from sklearn.utils import _safe_indexing as safe_indexing
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
    validate_params,
)
from sklearn.utils.validation import _check_sample_weight as check_sample_weight

__all__ = [
    "GroupsConsumerMixin",
    "HasMethods",
    "Interval",
    "InvalidParameterError",
    "StrOptions",
    "_fit_context",
    "check_sample_weight",
    "safe_indexing",
    "validate_parameter_constraints",
    "validate_params",
]
