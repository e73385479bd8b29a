"""Survival data sets that ship inside scikit-survival, and a synthetic Cox–Weibull set with a known S(t|x).

Nothing is downloaded: WHAS500, GBSG2 and FLCHAIN are the ARFF files bundled in the ``scikit-survival`` wheel.
Every loader returns a :class:`SurvivalData`: a float64 design matrix (categorical columns one-hot encoded with
the first level dropped, numeric columns left in their units — put a scaler in the pipeline), the structured
``(event, time)`` array that :func:`sksurv.util.Surv.from_arrays` makes, and the column names.

* :func:`load_whas500` — Worcester Heart Attack Study, 500 patients, 14 columns (Hosmer et al. 2008).
* :func:`load_gbsg2` — German Breast Cancer Study Group 2, 686 patients, 8 columns (Schumacher et al. 1994).
* :func:`load_flchain` — serum free light chain, 7874 subjects less the few with follow-up 0 days
  (Dispenzieri et al. 2012). Its ``chapter``
  column (the ICD chapter of the cause of death) is known only *after* death and is missing exactly for the
  censored subjects: it leaks the outcome. It is dropped unless ``keep_chapter=True`` (the leakage lesson).
* :func:`make_cox_weibull` — WHAS500's covariates (standardised) with Cox–Weibull event times
  ``T = (-log U / (λ exp(βᵀx)))^{1/ν}`` and uniform censoring, so ``S(t|x) = exp(-λ exp(βᵀx) t^ν)`` is known.

Reference: Kirpichenko, Konstantinov & Utkin (2026), SDPM, the synthetic Cox–Weibull experiment; Bender,
Augustin & Blettner (2005), *Generating survival times to simulate Cox proportional hazards models*, eq. 9.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SurvivalData", "load_whas500", "load_gbsg2", "load_flchain", "make_cox_weibull", "LOADERS"]


@dataclass(frozen=True)
class SurvivalData:
    """A survival data set.

    Attributes:
        name: a short name ("whas500", ...).
        X: covariates, float64 array of shape ``(n, p)``.
        y: structured array of shape ``(n,)`` with fields ``("event", "time")`` (bool, float64), as
            :func:`sksurv.util.Surv.from_arrays` makes it.
        feature_names: the ``p`` column names.
        survival_truth: for synthetic data, ``S(times, X) -> (n, m)`` the true survival function of each row of
            ``X`` (shape ``(n, p)``) at ``times`` (shape ``(m,)``); ``None`` for real data.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    survival_truth: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    @property
    def time(self) -> np.ndarray:
        """The observed times, a contiguous float64 copy of shape ``(n,)``."""
        return np.array(self.y["time"], dtype=np.float64)

    @property
    def event(self) -> np.ndarray:
        """The event indicators, a contiguous bool copy of shape ``(n,)``."""
        return np.array(self.y["event"], dtype=bool)

    @property
    def event_fraction(self) -> float:
        """The fraction of rows whose event was observed."""
        return float(self.y["event"].mean())

    def subsample(self, n: int | None, seed: int = 0) -> SurvivalData:
        """``n`` rows drawn without replacement, stratified on the event indicator (all rows if ``n`` is None
        or at least the size of the set)."""
        if n is None or n >= len(self.y):
            return self
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ValueError(f"n must be an int >= 2 or None, got {n!r}")
        rng = np.random.default_rng(seed)
        event = self.y["event"]
        keep = []
        for flag in (True, False):
            rows = np.flatnonzero(event == flag)
            take = int(round(n * len(rows) / len(event)))
            keep.append(rng.choice(rows, size=min(take, len(rows)), replace=False))
        idx = np.sort(np.concatenate(keep))
        return SurvivalData(self.name, self.X[idx], self.y[idx], self.feature_names, self.survival_truth)


def _surv(event: np.ndarray, time: np.ndarray) -> np.ndarray:
    from sksurv.util import Surv

    return Surv.from_arrays(event=np.asarray(event, dtype=bool), time=np.asarray(time, dtype=np.float64))


def _encode(frame) -> tuple[np.ndarray, tuple[str, ...]]:
    from sksurv.column import encode_categorical

    encoded = encode_categorical(frame)
    return encoded.to_numpy(dtype=np.float64), tuple(str(c) for c in encoded.columns)


def load_whas500() -> SurvivalData:
    """WHAS500: 500 patients after a heart attack, follow-up time in days, 14 columns (8 binary)."""
    from sksurv.datasets import load_whas500 as _load

    frame, y = _load()
    X, names = _encode(frame)
    return SurvivalData("whas500", X, _surv(y["fstat"], y["lenfol"]), names)


def load_gbsg2() -> SurvivalData:
    """GBSG2: 686 breast-cancer patients, recurrence-free survival in days, 8 columns (tumour grade one-hot)."""
    from sksurv.datasets import load_gbsg2 as _load

    frame, y = _load()
    X, names = _encode(frame)
    return SurvivalData("gbsg2", X, _surv(y["cens"], y["time"]), names)


def load_flchain(*, keep_chapter: bool = False) -> SurvivalData:
    """FLCHAIN: time to death in days; missing creatinine is filled with the median, and the rows with follow-up
    time 0 are dropped (a survival time must be positive).

    Args:
        keep_chapter: keep the ``chapter`` column (cause of death, with a "none" level for the alive). It is
            recorded after death, so it leaks the event indicator; only for the leakage lesson.
    """
    from sksurv.datasets import load_flchain as _load

    frame, y = _load()
    if not isinstance(keep_chapter, bool):
        raise TypeError(f"keep_chapter must be a bool, got {type(keep_chapter).__name__}")
    frame = frame.copy()
    frame["creatinine"] = frame["creatinine"].fillna(frame["creatinine"].median())
    if keep_chapter:
        chapter = frame["chapter"].astype(object).where(frame["chapter"].notna(), "none")
        frame["chapter"] = chapter.astype("category")
    else:
        frame = frame.drop(columns="chapter")
    X, names = _encode(frame)
    keep = y["futime"] > 0  # a few subjects have follow-up 0 days; a survival time must be positive
    name = "flchain" + ("+chapter" if keep_chapter else "")
    return SurvivalData(name, X[keep], _surv(y["death"][keep], y["futime"][keep]), names)


def make_cox_weibull(
    *, event_fraction: float = 0.5, lam: float = 1e-10, nu: float = 4.0, seed: int = 0
) -> SurvivalData:
    """WHAS500's covariates with Cox–Weibull event times and uniform censoring; the true S(t|x) is known.

    ``x`` are WHAS500's 14 columns standardised; ``β ~ U(-1, 1)^14``; ``T = (-log U/(λ e^{βᵀx}))^{1/ν}``
    with ``U ~ U(0, 1)`` (Bender et al. 2005, eq. 9); ``C ~ U(0, c)`` with ``c`` chosen by bisection so that
    the observed event fraction is ``event_fraction``; the data are ``(min(T, C), 1[T ≤ C])``.
    ``survival_truth(times, X) = exp(-λ e^{βᵀx} t^ν)`` (shape ``(n, m)``).

    Reference: Kirpichenko et al. (2026), SDPM, synthetic experiment (λ = 1e-10, ν = 4).
    """
    if isinstance(event_fraction, bool) or not isinstance(event_fraction, (int, float)) or not 0 < event_fraction < 1:
        raise ValueError(f"event_fraction must be a number in (0, 1), got {event_fraction!r}")
    for name, value in (("lam", lam), ("nu", nu)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    base = load_whas500()
    X = (base.X - base.X.mean(0)) / base.X.std(0)
    rng = np.random.default_rng(seed)
    beta = rng.uniform(-1.0, 1.0, size=X.shape[1])
    T = (-np.log(rng.uniform(size=len(X))) / (lam * np.exp(X @ beta))) ** (1.0 / nu)
    u = rng.uniform(size=len(X))
    lo, hi = 1e-12, 1e3 * T.max()
    for _ in range(200):  # the event fraction of C = c·u decreases as c shrinks
        c = math.sqrt(lo * hi)
        lo, hi = (lo, c) if (T <= c * u).mean() > event_fraction else (c, hi)
    C = math.sqrt(lo * hi) * u
    time = np.minimum(T, C)
    event = T <= C

    def survival_truth(times: np.ndarray, X_query: np.ndarray) -> np.ndarray:
        t = np.asarray(times, dtype=np.float64).reshape(1, -1)
        xq = np.asarray(X_query, dtype=np.float64)
        if xq.ndim != 2 or xq.shape[1] != len(beta):
            raise ValueError(f"X must have shape (n, {len(beta)}), got {xq.shape}")
        return np.exp(-lam * np.exp(xq @ beta)[:, None] * np.clip(t, 0.0, None) ** nu)

    return SurvivalData("cox-weibull", X, _surv(event, time), base.feature_names, survival_truth)


LOADERS: dict[str, Callable[[], SurvivalData]] = {
    "whas500": load_whas500,
    "gbsg2": load_gbsg2,
    "flchain": load_flchain,
    "cox-weibull": make_cox_weibull,
}
