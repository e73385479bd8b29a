"""The baselines SDPM is compared with, all from scikit-survival, and a Kaplan–Meier "null model" estimator.

:class:`KaplanMeierBaseline` ignores the covariates: every subject gets the population Kaplan–Meier curve and
the same risk score, so its C-index is exactly 0.5. It is the floor every model must beat in IBS.
:func:`baseline_models` builds CoxPH, random survival forest and gradient boosting with the settings of the
chapter (sizes as arguments, so presets can shrink them).

Reference: Kaplan & Meier (1958); Cox (1972); Ishwaran et al. (2008), random survival forests; Hothorn et al.
(2006), gradient boosting for survival; Pölsterl (2020), scikit-survival.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted
from sksurv.base import SurvivalAnalysisMixin
from sksurv.ensemble import GradientBoostingSurvivalAnalysis, RandomSurvivalForest
from sksurv.functions import StepFunction
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.nonparametric import kaplan_meier_estimator

from diffbook.survival.validation import check_covariates, check_outcome

__all__ = ["KaplanMeierBaseline", "baseline_models"]


class KaplanMeierBaseline(SurvivalAnalysisMixin, BaseEstimator):
    """The population Kaplan–Meier curve for every subject (covariates ignored); risk score 0 for all."""

    def fit(self, X: Any, y: Any) -> KaplanMeierBaseline:
        """Fit on ``X`` of shape ``(n, p)`` (only checked) and a structured ``(event, time)`` array ``y``."""
        Xa = check_covariates(X, "X")
        event, time = check_outcome(y, "y", n_rows=Xa.shape[0])
        self.n_features_in_ = Xa.shape[1]
        self.unique_times_ = np.unique(time)
        self.event_times_ = np.unique(time[event])
        km_t, km_s = kaplan_meier_estimator(event, time)
        self.survival_ = StepFunction(km_t, km_s)(self.unique_times_)
        return self

    def _rows(self, X: Any) -> int:
        check_is_fitted(self, "survival_")
        Xa = check_covariates(X, "X")
        if Xa.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {Xa.shape[1]} features, but the model was fitted with {self.n_features_in_}")
        return Xa.shape[0]

    def predict(self, X: Any) -> np.ndarray:
        """Zeros, shape ``(n,)``: no subject is riskier than another."""
        return np.zeros(self._rows(X))

    def predict_survival_function(self, X: Any, return_array: bool = False) -> np.ndarray:
        """The population curve for every row: ``(n, len(unique_times_))`` or ``n`` StepFunctions."""
        surv = np.tile(self.survival_, (self._rows(X), 1))
        return surv if return_array else np.array([StepFunction(self.unique_times_, r) for r in surv])

    def predict_cumulative_hazard_function(self, X: Any, return_array: bool = False) -> np.ndarray:
        """``-log`` of the population curve (floored at 1e-12), shaped as :meth:`predict_survival_function`."""
        chf = -np.log(np.maximum(self.predict_survival_function(X, return_array=True), 1e-12))
        return chf if return_array else np.array([StepFunction(self.unique_times_, r) for r in chf])


def baseline_models(*, n_trees: int = 200, random_state: int = 0) -> dict[str, Any]:
    """Fresh, unfitted baselines, each behind a ``StandardScaler``: KM, CoxPH (ridge ``alpha = 0.01``),
    RSF (``n_trees`` trees, ``min_samples_leaf = 8``) and gradient boosting (``n_trees`` stages, learning rate
    0.05, depth 2)."""
    return {
        "KM": make_pipeline(StandardScaler(), KaplanMeierBaseline()),
        "CoxPH": make_pipeline(StandardScaler(), CoxPHSurvivalAnalysis(alpha=1e-2)),
        "RSF": make_pipeline(StandardScaler(), RandomSurvivalForest(
            n_estimators=n_trees, min_samples_leaf=8, random_state=random_state, n_jobs=1)),
        "GBSA": make_pipeline(StandardScaler(), GradientBoostingSurvivalAnalysis(
            n_estimators=n_trees, learning_rate=0.05, max_depth=2, random_state=random_state)),
    }
