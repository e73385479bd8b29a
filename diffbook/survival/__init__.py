"""SDPM — diffusion for continuous-time survival analysis with censoring (Chapter 12).

- :mod:`~diffbook.survival.target`: the 2-D target (standardised log time, soft event indicator).
- :mod:`~diffbook.survival.schedule`: the short cosine table with ``ᾱ > 0`` at the last step.
- :mod:`~diffbook.survival.network`: the MLP noise predictor on ``[y_k, x]``.
- :mod:`~diffbook.survival.sampler`: ancestral sampling of ``K`` outcomes per subject, common random numbers.
- :mod:`~diffbook.survival.kaplan_meier`: batched Kaplan–Meier over generated samples.
- :mod:`~diffbook.survival.estimator`: :class:`SDPM`, a scikit-survival estimator.
- :mod:`~diffbook.survival.baselines`: a Kaplan–Meier null model and the scikit-survival baselines.
- :mod:`~diffbook.survival.evaluate`: scikit-survival metrics on shared folds, distances to a known truth.
- :mod:`~diffbook.survival.validation`: input checks.

Reference: Kirpichenko, Konstantinov & Utkin (2026), *SDPM: Survival Diffusion Probabilistic Model for
Continuous-Time Survival Analysis*, arXiv 2605.22776.
"""

from diffbook.survival.baselines import KaplanMeierBaseline, baseline_models
from diffbook.survival.estimator import SDPM
from diffbook.survival.evaluate import compare_models, distance_to_truth, evaluation_times, score_model, survival_on_grid
from diffbook.survival.kaplan_meier import kaplan_meier
from diffbook.survival.sampler import sample_outcomes
from diffbook.survival.schedule import sdpm_alphas_cumprod
from diffbook.survival.target import LogTimeTarget

__all__ = [
    "SDPM",
    "KaplanMeierBaseline",
    "baseline_models",
    "compare_models",
    "distance_to_truth",
    "evaluation_times",
    "score_model",
    "survival_on_grid",
    "kaplan_meier",
    "sample_outcomes",
    "sdpm_alphas_cumprod",
    "LogTimeTarget",
]
