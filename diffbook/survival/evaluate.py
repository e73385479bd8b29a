"""Scoring survival models the same way on the same folds, with scikit-survival's metrics only.

* :func:`evaluation_times` — the time grid for IBS and AUC, SDPM's recipe: unique test times inside
  ``[min train time, 95th percentile of train times]``, after the first test event, minus the last one.
* :func:`score_model` — Harrell's C (risk = ``predict``), Uno's C (IPCW, ``tau`` = the 95th percentile of the
  training times), the integrated Brier score and the mean cumulative dynamic AUC (risk = ``-log Ŝ(t|x)``).
* :func:`distance_to_truth` — on synthetic data, the sup-norm and the integrated squared distance between a
  model's ``Ŝ(t|x)`` and the true ``S(t|x)``, averaged over subjects.
* :func:`compare_models` — every model on the same (repeated, stratified) folds, one row per model and fold.

Reference: Harrell et al. (1982); Uno et al. (2011), eq. 4; Graf et al. (1999), integrated Brier score;
Lambert & Chevret (2016), cumulative dynamic AUC; Kirpichenko et al. (2026), SDPM (evaluation grid).
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import RepeatedStratifiedKFold
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)

from diffbook.survival.validation import check_outcome

__all__ = ["evaluation_times", "score_model", "distance_to_truth", "survival_on_grid", "compare_models"]


def evaluation_times(y_train: np.ndarray, y_test: np.ndarray) -> np.ndarray:
    """SDPM's grid for IBS and AUC, shape ``(m,)``, strictly inside the test follow-up."""
    _, t_train = check_outcome(y_train, "y_train")
    e_test, t_test = check_outcome(y_test, "y_test")
    lo, hi = t_train.min(), np.percentile(t_train, 95)
    grid = np.unique(t_test[(t_test >= lo) & (t_test <= hi)])[:-1]
    inside = t_test < t_train.max()
    grid = grid[(grid >= t_test[e_test].min()) & (grid < t_test[inside].max())]
    if len(grid) < 2:
        raise ValueError("the test fold has fewer than 2 usable evaluation times; use larger folds")
    return grid


def survival_on_grid(model: Any, X: Any, times: np.ndarray) -> np.ndarray:
    """``Ŝ(t|x)`` of a fitted scikit-survival model (or pipeline) at ``times``: shape ``(n, m)``."""
    fns = model.predict_survival_function(X)
    return np.stack([fn(times) for fn in fns])


def score_model(model: Any, X_train: Any, y_train: np.ndarray, X_test: Any, y_test: np.ndarray) -> dict[str, float]:
    """The four metrics of a *fitted* model on a test fold (``X_train``, ``y_train``: the fold it was fitted on).

    Returns:
        ``{"harrell_c", "uno_c", "ibs", "auc"}`` (floats; C and AUC higher is better, IBS lower is better).
    """
    e_test, t_test = check_outcome(y_test, "y_test")
    _, t_train = check_outcome(y_train, "y_train")
    times = evaluation_times(y_train, y_test)
    risk = np.asarray(model.predict(X_test), dtype=np.float64)
    surv = survival_on_grid(model, X_test, times)
    harrell = concordance_index_censored(e_test, t_test, risk)[0]
    uno = concordance_index_ipcw(y_train, y_test, risk, tau=np.percentile(t_train, 95))[0]
    # the censoring distribution is estimated on the training fold, so IPCW weights exist only for test
    # subjects followed for less than the longest training time: the (rare) others are left out of IBS and AUC
    inside = t_test < t_train.max()
    ibs = integrated_brier_score(y_train, y_test[inside], surv[inside], times)
    _, auc = cumulative_dynamic_auc(y_train, y_test[inside], -np.log(np.clip(surv[inside], 1e-12, None)), times)
    return {"harrell_c": float(harrell), "uno_c": float(uno), "ibs": float(ibs), "auc": float(auc)}


def distance_to_truth(surv: np.ndarray, truth: np.ndarray, times: np.ndarray) -> dict[str, float]:
    """Mean over subjects of ``sup_t |Ŝ - S|`` and of ``∫ (Ŝ - S)² dt`` (left Riemann sum on ``times``).

    Args:
        surv, truth: shape ``(n, m)``, the estimated and the true survival at ``times`` (shape ``(m,)``, increasing).
    """
    surv, truth, times = np.asarray(surv, float), np.asarray(truth, float), np.asarray(times, float)
    if surv.shape != truth.shape or surv.ndim != 2 or surv.shape[1] != len(times):
        raise ValueError(f"surv and truth must both have shape (n, {len(times)}), got {surv.shape} and {truth.shape}")
    if len(times) < 2 or not (np.diff(times) > 0).all():
        raise ValueError("times must be strictly increasing with at least 2 entries")
    diff = surv - truth
    ise = ((diff[:, :-1] ** 2) * np.diff(times)).sum(1)
    return {"sup": float(np.abs(diff).max(1).mean()), "ise": float(ise.mean())}


def compare_models(
    models: Mapping[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_splits: int = 4,
    n_repeats: int = 1,
    seed: int = 0,
    truth: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Fit and score every model on the same stratified folds.

    Args:
        models: name -> unfitted estimator (cloned for every fold).
        X, y: the data, ``(n, p)`` and a structured ``(event, time)`` array.
        n_splits, n_repeats, seed: :class:`sklearn.model_selection.RepeatedStratifiedKFold` on the event.
        truth: ``truth(times, X) -> (n, m)`` the true survival (synthetic data): adds ``sup`` and ``ise``.
        progress: called with a short message after each fit.

    Returns:
        One dict per (model, fold): ``model, repeat, fold, fit_s`` and the metrics of :func:`score_model`.
    """
    event, _ = check_outcome(y, "y", n_rows=len(X))
    folds = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    rows = []
    for i, (tr, te) in enumerate(folds.split(X, event)):
        for name, proto in models.items():
            model = clone(proto)
            start = _time.perf_counter()
            model.fit(X[tr], y[tr])
            fit_s = _time.perf_counter() - start
            row = {"model": name, "repeat": i // n_splits, "fold": i % n_splits, "fit_s": fit_s}
            row.update(score_model(model, X[tr], y[tr], X[te], y[te]))
            if truth is not None:
                times = evaluation_times(y[tr], y[te])
                row.update(distance_to_truth(survival_on_grid(model, X[te], times), truth(times, X[te]), times))
            rows.append(row)
            if progress is not None:
                progress(f"fold {i}: {name} C={row['harrell_c']:.3f} IBS={row['ibs']:.3f} ({fit_s:.1f} s)")
    return rows
