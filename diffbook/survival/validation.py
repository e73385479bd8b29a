"""Input checks for survival estimators: covariates and the structured ``(event, time)`` outcome array.

Errors name the argument, say what was expected and what was given; they are raised once per call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_covariates", "check_outcome"]


def check_covariates(X: Any, name: str = "X") -> np.ndarray:
    """``X`` (array-like, e.g. a NumPy array or a numeric DataFrame) as a finite float64 array ``(n, p)``.

    Raises:
        TypeError: non-numeric, boolean-free conversion fails, or a structured array.
        ValueError: not 2-D, empty, or containing NaN/inf.
    """
    if isinstance(X, np.ndarray) and X.dtype.names is not None:
        raise TypeError(f"{name} must be a numeric array of shape (n_samples, n_features), got a structured array")
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be numeric array-like of shape (n_samples, n_features) (one-hot encode categorical "
            f"columns first), got {type(X).__name__}: {err}"
        ) from None
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n_samples, n_features) with both >= 1, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(1))
        raise ValueError(
            f"{name} contains NaN or infinite values in {len(rows)} rows (first: row {rows[0]}); "
            f"impute or drop them before fitting"
        )
    return arr


def check_outcome(y: Any, name: str = "y", *, n_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split a structured outcome array (``sksurv.util.Surv.from_arrays``) into ``event`` (bool) and ``time``
    (float64), each of shape ``(n,)``.

    Raises:
        TypeError: not a structured array with a boolean field and a numeric field.
        ValueError: wrong length, non-finite or non-positive times, or no observed event.
    """
    if not isinstance(y, np.ndarray) or y.dtype.names is None or len(y.dtype.names) != 2:
        got = f"array of dtype {y.dtype}" if isinstance(y, np.ndarray) else type(y).__name__
        raise TypeError(
            f"{name} must be a structured array with two fields (event indicator, time), as "
            f"sksurv.util.Surv.from_arrays(event, time) makes; got {got}"
        )
    ev_field, t_field = y.dtype.names
    if y.dtype[ev_field] != np.bool_:
        raise TypeError(f"{name}'s first field {ev_field!r} must be the boolean event indicator, got {y.dtype[ev_field]}")
    if not np.issubdtype(y.dtype[t_field], np.number) or np.issubdtype(y.dtype[t_field], np.complexfloating):
        raise TypeError(f"{name}'s second field {t_field!r} must be the numeric time, got {y.dtype[t_field]}")
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one outcome per row), got shape {y.shape}")
    if n_rows is not None and len(y) != n_rows:
        raise ValueError(f"X has {n_rows} rows but {name} has {len(y)}: they must have the same length")
    event = np.array(y[ev_field], dtype=bool)  # contiguous copies of the two fields
    time = np.array(y[t_field], dtype=np.float64)
    if not np.isfinite(time).all():
        raise ValueError(f"{name}'s times must be finite, got {int((~np.isfinite(time)).sum())} non-finite")
    if (time <= 0).any():
        raise ValueError(
            f"{name}'s times must be positive (SDPM models log time), got {int((time <= 0).sum())} times <= 0 "
            f"(smallest {time.min()})"
        )
    if not event.any():
        raise ValueError(f"{name} has no observed event (every time is censored): survival cannot be estimated")
    return event, time
