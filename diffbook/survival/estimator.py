"""SDPM as a scikit-survival estimator: ``fit(X, y)``, risk ``predict``, survival and cumulative hazard curves.

Fit: the observed outcome of every subject becomes a 2-D target ``y₀ = (τ, z)`` (:mod:`.target`); a noise
predictor ``ε_θ(y_k, k, x)`` (:mod:`.network`) is trained with the unweighted ε-MSE on a short cosine table
(:mod:`.schedule`), with early stopping on the ε-MSE of a held-out validation split (fixed noise draws).
Predict: ``K`` outcome pairs per subject by ancestral sampling with common random numbers (:mod:`.sampler`),
decoded to times and event indicators, and ``Ŝ(t|x)`` is their Kaplan–Meier curve (:mod:`.kaplan_meier`) on
the unique training times. The risk score is ``-RMST``, the negative area under ``Ŝ`` up to the last training
time, so that "higher means an earlier event", as :func:`sksurv.metrics.concordance_index_censored` expects.

Why a generative model of the *observed* pair is enough: if ``T ⟂ C | x``, Kaplan–Meier on i.i.d. draws of
``(min(T, C), 1[T ≤ C]) | x`` is consistent for ``S(t|x)`` inside the follow-up (Chapter 12, Theorem 2).

Everything is seeded by ``random_state``: the validation split, the network's initial weights, the training
noise and the sampling noise. Same seed, same data: same predictions.

Reference: Kirpichenko, Konstantinov & Utkin (2026), *SDPM: Survival Diffusion Probabilistic Model for
Continuous-Time Survival Analysis*, arXiv 2605.22776 (method as in the released code).
"""

from __future__ import annotations

import copy
import hashlib
import math
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from sksurv.base import SurvivalAnalysisMixin
from sksurv.functions import StepFunction

from diffbook.losses import eps_mse
from diffbook.survival.kaplan_meier import kaplan_meier
from diffbook.survival.network import NoisePredictor
from diffbook.survival.sampler import sample_outcomes
from diffbook.survival.schedule import sdpm_alphas_cumprod
from diffbook.survival.target import LogTimeTarget
from diffbook.survival.validation import check_covariates, check_outcome
from diffbook.train import train

__all__ = ["SDPM"]


class _EarlyStop(Exception):
    """Raised from the training callback when the validation loss stopped improving."""


def _check_int(value: Any, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _check_float(value: Any, name: str, low: float, high: float, *, low_open: bool = True) -> None:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and value < high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be a number in {bracket}{low}, {high}), got {value!r}")


class SDPM(SurvivalAnalysisMixin, BaseEstimator):
    """Survival Diffusion Probabilistic Model (Kirpichenko et al. 2026), a scikit-survival estimator.

    Args:
        steps: denoising steps ``N - 1`` (the paper: 10, 20 or 30).
        s: cosine schedule offset.
        hidden, depth: width and number of residual blocks of the MLP noise predictor.
        lr, weight_decay: AdamW's learning rate and decoupled weight decay.
        batch_size: minibatch size.
        max_epochs: the most epochs to train.
        min_epochs: epochs before early stopping may stop (the paper's warm-up).
        patience: stop after this many epochs without a better validation loss; the best weights are kept.
        validation_fraction: the share of the fitted rows held out (stratified on the event) for early stopping.
        n_samples: ``K``, generated outcome pairs per subject at prediction.
        z_scale: standard deviation of the soft event indicator ``z ~ N(±1, z_scale²)``.
        random_state: seeds every random choice.
        device: where to train and sample ("cpu", "cuda", ...).

    Attributes (after ``fit``): ``unique_times_`` (the sorted unique training times, the grid of every curve),
    ``event_times_`` (the unique times of observed events), ``n_features_in_``, ``model_`` (the trained
    :class:`~diffbook.survival.network.NoisePredictor`), ``target_`` (the fitted
    :class:`~diffbook.survival.target.LogTimeTarget`), ``n_epochs_``, ``best_epoch_`` and ``val_losses_``.
    """

    def __init__(
        self,
        *,
        steps: int = 20,
        s: float = 0.008,
        hidden: int = 128,
        depth: int = 3,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        batch_size: int = 64,
        max_epochs: int = 300,
        min_epochs: int = 20,
        patience: int = 20,
        validation_fraction: float = 0.25,
        n_samples: int = 256,
        z_scale: float = 0.25,
        random_state: int = 0,
        device: str = "cpu",
    ) -> None:
        self.steps = steps
        self.s = s
        self.hidden = hidden
        self.depth = depth
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.min_epochs = min_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.n_samples = n_samples
        self.z_scale = z_scale
        self.random_state = random_state
        self.device = device

    # ------------------------------------------------------------------------------------------------ fit

    def _check_params(self) -> None:
        _check_int(self.steps, "steps", 2)
        _check_float(self.s, "s", 0.0, 1.0)
        for name in ("hidden", "depth", "batch_size", "max_epochs", "n_samples"):
            _check_int(getattr(self, name), name, 1)
        _check_int(self.min_epochs, "min_epochs", 0)
        _check_int(self.patience, "patience", 1)
        _check_float(self.lr, "lr", 0.0, 1.0)
        _check_float(self.weight_decay, "weight_decay", 0.0, 1.0, low_open=False)
        _check_float(self.validation_fraction, "validation_fraction", 0.0, 1.0)
        _check_float(self.z_scale, "z_scale", 0.0, 1.0)
        _check_int(self.random_state, "random_state", 0)

    def _split(self, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.random_state)
        val = []
        for flag in (True, False):
            rows = rng.permutation(np.flatnonzero(event == flag))
            val.append(rows[: int(round(self.validation_fraction * len(rows)))])
        val_idx = np.sort(np.concatenate(val))
        train_idx = np.setdiff1d(np.arange(len(event)), val_idx)
        if len(val_idx) == 0 or len(train_idx) == 0:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves an empty training or validation split "
                f"of the {len(event)} rows; give more rows or change validation_fraction"
            )
        return train_idx, val_idx

    def fit(self, X: Any, y: Any) -> SDPM:
        """Fit on covariates ``X`` of shape ``(n, p)`` and a structured ``(event, time)`` array ``y`` of shape ``(n,)``.

        Raises:
            TypeError: ``X`` is not numeric, or ``y`` is not a structured ``(bool event, float time)`` array.
            ValueError: non-finite covariates, non-positive or non-finite times, no observed event, ``X`` and
                ``y`` of different lengths, or an invalid hyperparameter.
        """
        self._check_params()
        Xa = check_covariates(X, "X")
        event, time = check_outcome(y, "y", n_rows=Xa.shape[0])
        dev = torch.device(self.device)
        self.n_features_in_ = Xa.shape[1]
        self.x_mean_ = Xa.mean(0)
        self.x_scale_ = np.where(Xa.std(0) > 1e-12, Xa.std(0), 1.0)
        self.unique_times_ = np.unique(time)
        self.event_times_ = np.unique(time[event])
        self.target_ = LogTimeTarget.fit(torch.as_tensor(time), z_scale=float(self.z_scale))
        self.abar_ = sdpm_alphas_cumprod(int(self.steps), float(self.s))

        train_idx, val_idx = self._split(event)
        xs = torch.as_tensor((Xa - self.x_mean_) / self.x_scale_, dtype=torch.float32, device=dev)
        tau = torch.as_tensor((np.log(time) - self.target_.mu) / self.target_.sigma, dtype=torch.float32, device=dev)
        sign = torch.as_tensor(np.where(event, 1.0, -1.0), dtype=torch.float32, device=dev)
        abar = self.abar_.to(device=dev, dtype=torch.float32)
        steps, z_scale = int(self.steps), float(self.z_scale)

        def noisy(x, tau_b, sign_b, gen):
            n = x.shape[0]
            y0 = torch.stack([tau_b, sign_b + z_scale * torch.randn(n, generator=gen, device=dev)], dim=1)
            k = torch.randint(1, steps + 1, (n,), generator=gen, device=dev)
            eps = torch.randn(n, 2, generator=gen, device=dev)
            a = abar[k - 1].unsqueeze(1)
            return a.sqrt() * y0 + (1.0 - a).sqrt() * eps, k, eps

        def loss_fn(model, batch, gen):
            x, tau_b, sign_b = batch
            yk, k, eps = noisy(x, tau_b, sign_b, gen)
            return eps_mse(model(yk, k, x), eps)

        # validation: fixed noise, 8 draws per held-out row, so the criterion is a deterministic function of
        # the weights
        val_gen = torch.Generator(device=dev).manual_seed(self.random_state + 1)
        vi = torch.as_tensor(val_idx, device=dev).repeat(8)
        val_x = xs[vi]
        val_yk, val_k, val_eps = noisy(val_x, tau[vi], sign[vi], val_gen)

        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(self.random_state)
            model = NoisePredictor(self.n_features_in_, steps=steps, hidden=int(self.hidden), depth=int(self.depth))
        model.to(dev)

        tr = torch.as_tensor(train_idx, device=dev)
        batch = min(int(self.batch_size), len(train_idx))
        per_epoch = max(1, len(train_idx) // batch)
        perm_gen = torch.Generator(device=dev).manual_seed(self.random_state + 2)
        order: dict[str, Any] = {"epoch": -1, "perm": tr}

        def batches(step: int):
            epoch, j = divmod(step, per_epoch)
            if epoch != order["epoch"]:
                order["epoch"], order["perm"] = epoch, tr[torch.randperm(len(tr), generator=perm_gen, device=dev)]
            rows = order["perm"][j * batch : (j + 1) * batch]
            return xs[rows], tau[rows], sign[rows]

        state: dict[str, Any] = {"best": math.inf, "best_epoch": 0, "weights": None, "history": []}

        def callback(step: int, loss: torch.Tensor) -> None:
            if (step + 1) % per_epoch:
                return
            epoch = (step + 1) // per_epoch
            with torch.no_grad():
                val = float(eps_mse(model(val_yk, val_k, val_x), val_eps).mean())
            state["history"].append(val)
            if not math.isfinite(val):
                raise _EarlyStop
            if val < state["best"]:
                state.update(best=val, best_epoch=epoch, weights=copy.deepcopy(model.state_dict()))
            elif epoch >= self.min_epochs and epoch - state["best_epoch"] >= self.patience:
                raise _EarlyStop

        try:
            train(model, loss_fn, batches, steps=int(self.max_epochs) * per_epoch, lr=float(self.lr),
                  weight_decay=float(self.weight_decay), ema_decay=None, grad_clip=1.0, seed=self.random_state + 3,
                  device=dev, progress=False, callback=callback)
        except _EarlyStop:
            pass
        if state["weights"] is None:
            raise ValueError("training diverged: the validation loss was never finite; lower lr")
        model.load_state_dict(state["weights"])
        model.eval()
        self._cache = None
        self.model_ = model
        self.n_epochs_ = len(state["history"])
        self.best_epoch_ = state["best_epoch"]
        self.val_losses_ = np.asarray(state["history"])
        return self

    # -------------------------------------------------------------------------------------------- predict

    def _check_predict_X(self, X: Any) -> torch.Tensor:
        check_is_fitted(self, "model_")
        Xa = check_covariates(X, "X")
        if Xa.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {Xa.shape[1]} features, but SDPM was fitted with {self.n_features_in_} features"
            )
        dev = next(self.model_.parameters()).device
        return torch.as_tensor((Xa - self.x_mean_) / self.x_scale_, dtype=torch.float32, device=dev)

    def sample(self, X: Any, n_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Generated outcomes: times and event indicators, each of shape ``(n, K)`` (``K = n_samples``).

        The noise is seeded by ``random_state`` and shared by all subjects (common random numbers), so a
        subject's samples do not depend on which other subjects are in ``X``."""
        xs = self._check_predict_X(X)
        k = int(self.n_samples if n_samples is None else n_samples)
        _check_int(k, "n_samples", 1)
        gen = torch.Generator(device=xs.device).manual_seed(self.random_state + 4)
        y = sample_outcomes(self.model_, xs, self.abar_, k, generator=gen)
        times, events = self.target_.decode(y.double())
        return times.cpu().numpy(), events.cpu().numpy()

    def _survival_matrix(self, X: Any) -> np.ndarray:
        # predictions are a deterministic function of (weights, X), so the last one is kept: scoring a fold
        # calls predict and predict_survival_function on the same X
        key = hashlib.sha1(np.ascontiguousarray(check_covariates(X, "X")).tobytes()).hexdigest()
        cached = getattr(self, "_cache", None)
        if cached is not None and cached[0] == (key, id(self.model_), int(self.n_samples), self.random_state):
            return cached[1].copy()
        times, events = self.sample(X)
        grid = torch.as_tensor(self.unique_times_, dtype=torch.float64)
        surv = kaplan_meier(torch.as_tensor(times), torch.as_tensor(events), grid).numpy()
        self._cache = ((key, id(self.model_), int(self.n_samples), self.random_state), surv)
        return surv.copy()

    def predict_survival_function(self, X: Any, return_array: bool = False) -> np.ndarray:
        """``Ŝ(t|x)``: Kaplan–Meier over ``K`` generated outcomes per subject, on ``unique_times_``.

        Returns:
            ``return_array=True``: a float array of shape ``(n, len(unique_times_))``; otherwise an array of
            ``n`` :class:`sksurv.functions.StepFunction` objects (as scikit-survival's estimators return).
        """
        surv = self._survival_matrix(X)
        if return_array:
            return surv
        return np.array([StepFunction(self.unique_times_, row) for row in surv])

    def predict_cumulative_hazard_function(self, X: Any, return_array: bool = False) -> np.ndarray:
        """``Ĥ(t|x) = -log Ŝ(t|x)``, with ``Ŝ`` floored at ``1/(2K)`` (half a sample) so that ``Ĥ`` stays finite.

        Returns:
            As :meth:`predict_survival_function`, shape ``(n, len(unique_times_))`` or ``n`` StepFunctions.
        """
        surv = self._survival_matrix(X)
        chf = -np.log(np.maximum(surv, 0.5 / int(self.n_samples)))
        if return_array:
            return chf
        return np.array([StepFunction(self.unique_times_, row) for row in chf])

    def predict(self, X: Any) -> np.ndarray:
        """Risk score ``-RMST(x)``, shape ``(n,)``: higher means an earlier event.

        ``RMST = ∫₀^{t_max} Ŝ(t|x) dt = t₁ + Σ_j Ŝ(t_j)(t_{j+1} - t_j)`` over ``unique_times_`` (Ŝ = 1 before
        the first time). Reference: Royston & Parmar (2013), restricted mean survival time.
        """
        surv = self._survival_matrix(X)
        grid = self.unique_times_
        rmst = grid[0] + (surv[:, :-1] * np.diff(grid)).sum(1)
        return -rmst
