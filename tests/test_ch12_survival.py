"""Chapter 12 (SDPM): Kaplan–Meier, the sampler, the estimator's scikit-survival contract, the chapter's claims
at `tiny` size, the data loaders (and the FLCHAIN leak), bad input, and the exercise checkers."""

import math

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_validate, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sksurv.functions import StepFunction
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import brier_score, concordance_index_censored
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.util import Surv

from diffbook import samplers
from diffbook import schedules as S
from diffbook.data import survival as data
from diffbook.survival import (
    SDPM,
    KaplanMeierBaseline,
    LogTimeTarget,
    distance_to_truth,
    evaluation_times,
    kaplan_meier,
    sample_outcomes,
    score_model,
    sdpm_alphas_cumprod,
    survival_on_grid,
)

f64 = torch.float64
TINY = dict(hidden=32, depth=2, max_epochs=80, min_epochs=10, patience=10, n_samples=64, batch_size=64)


def tiny_sdpm(**kw):
    return SDPM(**{**TINY, **kw})


@pytest.fixture(scope="module")
def whas():
    return data.load_whas500()


@pytest.fixture(scope="module")
def whas_split(whas):
    tr, te = train_test_split(np.arange(len(whas.y)), test_size=0.3, random_state=0, stratify=whas.y["event"])
    return whas.X[tr], whas.y[tr], whas.X[te], whas.y[te]


@pytest.fixture(scope="module")
def whas_fit(whas_split):
    Xtr, ytr, _, _ = whas_split
    return tiny_sdpm().fit(Xtr, ytr)


# ------------------------------------------------------------------------------------------ Kaplan–Meier


def test_km_on_uncensored_samples_equals_their_empirical_survival_function():
    g = torch.Generator().manual_seed(0)
    times = torch.rand(3, 200, generator=g, dtype=f64) * 10
    grid = torch.linspace(-1, 11, 97, dtype=f64)
    km = kaplan_meier(times, torch.ones_like(times, dtype=torch.bool), grid)
    empirical = (times[:, :, None] > grid[None, None, :]).to(f64).mean(1)
    torch.testing.assert_close(km, empirical, atol=1e-12, rtol=0)


def test_km_handles_censoring_and_ties_on_a_hand_made_example():
    # times 1, 2, 2, 3, 4 with a censoring tied to an event at 2 and a censoring at 4:
    # S(1) = 4/5, S(2) = 4/5 · 3/4 (the censored subject at 2 is still at risk), S(3) = 3/5 · 1/2, flat after
    times = torch.tensor([2.0, 4.0, 1.0, 2.0, 3.0], dtype=f64)
    events = torch.tensor([False, False, True, True, True])
    grid = torch.tensor([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 9.0], dtype=f64)
    expected = torch.tensor([1.0, 0.8, 0.8, 0.6, 0.6, 0.3, 0.3, 0.3, 0.3], dtype=f64)
    torch.testing.assert_close(kaplan_meier(times, events, grid), expected, atol=1e-12, rtol=0)


def test_km_agrees_with_scikit_survival_on_random_censored_data_with_ties():
    rng = np.random.default_rng(1)
    t = rng.integers(1, 30, size=300).astype(float)  # many ties
    e = rng.uniform(size=300) < 0.6
    ref_t, ref_s = kaplan_meier_estimator(e, t)
    ours = kaplan_meier(torch.as_tensor(t), torch.as_tensor(e), torch.as_tensor(ref_t)).numpy()
    np.testing.assert_allclose(ours, ref_s, atol=1e-12)


# --------------------------------------------------------------------------------- schedule, target, sampler


def test_schedule_is_the_cosine_table_with_alpha_bar_positive_at_the_last_step():
    for steps in (10, 20, 30):
        abar = sdpm_alphas_cumprod(steps, 0.008)
        k = torch.arange(steps + 1, dtype=f64)
        f = torch.cos((k / (steps + 1) + 0.008) / 1.008 * math.pi / 2) ** 2
        torch.testing.assert_close(abar, (f / f[0])[1:], atol=1e-12, rtol=0)
        assert float(abar[-1]) > 1e-3  # the first reverse step divides by sqrt(alpha) >= 0.03, not by 0
        assert bool((abar.diff() < 0).all())


def test_target_roundtrip_recovers_time_and_event_and_decodes_positive_times():
    time = torch.tensor([0.5, 3.0, 40.0, 700.0], dtype=f64)
    event = torch.tensor([True, False, True, False])
    tgt = LogTimeTarget.fit(time)
    assert abs(tgt.mu - float(time.log().mean())) < 1e-12
    y0 = tgt.encode(time, event, torch.Generator().manual_seed(0))
    assert abs(float(y0[:, 0].mean())) < 1e-12 and abs(float(y0[:, 0].std(unbiased=False)) - 1) < 1e-12
    t_hat, e_hat = tgt.decode(y0)
    torch.testing.assert_close(t_hat, time, atol=1e-9, rtol=1e-12)
    assert torch.equal(e_hat, event)
    t_far, _ = tgt.decode(torch.tensor([[-50.0, 0.0], [50.0, 0.0]], dtype=f64))
    assert bool((t_far > 0).all()) and bool(torch.isfinite(t_far).all())


def _toy_eps(y, k, x):
    return torch.tanh(0.7 * y + 0.05 * k[:, None]) + 0.3 * x.sum(1, keepdim=True)


def test_sampler_coincides_with_the_engine_ddpm_sampler_for_one_subject():
    steps, K = 12, 16
    abar = sdpm_alphas_cumprod(steps)
    x = torch.tensor([[0.4, -1.0]], dtype=f64)
    ours = sample_outcomes(_toy_eps, x, abar, K, generator=torch.Generator().manual_seed(3))[0]

    betas = 1 - abar / torch.cat([abar.new_ones(1), abar[:-1]])
    sigmas = S.ddpm_sigmas(betas)
    table = torch.sqrt((1 - abar) / abar)

    def denoiser(xbar, sigma):
        k = (table[None, :] - sigma[:, None]).abs().argmin(1) + 1
        a = 1 / (1 + sigma**2)
        eps = _toy_eps(xbar * a.sqrt()[:, None], k.to(f64), x.expand(len(xbar), -1))
        return xbar - sigma[:, None] * eps

    g = torch.Generator().manual_seed(3)
    start = samplers.prior_noise((K, 2), sigmas[0], generator=g, dtype=f64)
    engine = samplers.sample_ddpm(denoiser, start, sigmas, generator=g)
    torch.testing.assert_close(ours, engine, atol=1e-10, rtol=1e-10)


def test_common_random_numbers_make_identical_subjects_get_identical_samples():
    abar = sdpm_alphas_cumprod(10)
    x = torch.tensor([[0.2, 0.1], [0.2, 0.1], [1.0, -2.0]], dtype=f64)
    y = sample_outcomes(_toy_eps, x, abar, 32, generator=torch.Generator().manual_seed(0), batch_size=40)
    torch.testing.assert_close(y[0], y[1], atol=0, rtol=0)
    assert float((y[0] - y[2]).abs().max()) > 0.1


# --------------------------------------------------------------------------- the scikit-survival contract


def test_survival_function_follows_scikit_survival_conventions(whas_fit, whas_split):
    _, ytr, Xte, _ = whas_split
    m = whas_fit
    np.testing.assert_array_equal(m.unique_times_, np.unique(ytr["time"]))
    np.testing.assert_array_equal(m.event_times_, np.unique(ytr["time"][ytr["event"]]))
    fns = m.predict_survival_function(Xte[:5])
    assert len(fns) == 5 and all(isinstance(f, StepFunction) for f in fns)
    arr = m.predict_survival_function(Xte[:5], return_array=True)
    assert arr.shape == (5, len(m.unique_times_))
    np.testing.assert_allclose(fns[2](m.unique_times_), arr[2], atol=0)
    assert (arr >= 0).all() and (arr <= 1).all() and (np.diff(arr, axis=1) <= 1e-12).all()
    chf = m.predict_cumulative_hazard_function(Xte[:5], return_array=True)
    np.testing.assert_allclose(chf, -np.log(np.maximum(arr, 0.5 / m.n_samples)), atol=1e-12)
    # predict is -RMST of the same curve
    grid = m.unique_times_
    rmst = grid[0] + (arr[:, :-1] * np.diff(grid)).sum(1)
    np.testing.assert_allclose(m.predict(Xte[:5]), -rmst, rtol=1e-12)


def test_a_subjects_prediction_does_not_depend_on_the_other_subjects_in_the_batch(whas_fit, whas_split):
    _, _, Xte, _ = whas_split
    alone = whas_fit.predict_survival_function(Xte[3:4], return_array=True)
    together = whas_fit.predict_survival_function(Xte[:10], return_array=True)[3:4]
    np.testing.assert_array_equal(alone, together)


def test_same_seed_gives_the_same_predictions_and_another_seed_other_ones(whas_split):
    Xtr, ytr, Xte, _ = whas_split
    a = tiny_sdpm(max_epochs=15, random_state=5).fit(Xtr, ytr).predict(Xte)
    b = tiny_sdpm(max_epochs=15, random_state=5).fit(Xtr, ytr).predict(Xte)
    c = tiny_sdpm(max_epochs=15, random_state=6).fit(Xtr, ytr).predict(Xte)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1.0  # days of RMST


def test_cross_validate_gridsearch_and_pipeline_run_with_sdpm(whas):
    sub = whas.subsample(240, seed=0)
    pipe = make_pipeline(StandardScaler(), tiny_sdpm(max_epochs=100, batch_size=32, n_samples=32))
    res = cross_validate(pipe, sub.X, sub.y, cv=KFold(2, shuffle=True, random_state=0))
    assert res["test_score"].shape == (2,) and (res["test_score"] > 0.55).all()
    grid = GridSearchCV(tiny_sdpm(max_epochs=10, n_samples=32), {"steps": [10, 20]}, cv=2).fit(sub.X, sub.y)
    assert grid.best_params_["steps"] in (10, 20) and grid.best_estimator_.steps == grid.best_params_["steps"]
    assert grid.best_estimator_.abar_.shape == (grid.best_params_["steps"],)


def test_every_scikit_survival_metric_accepts_sdpm_predictions(whas_fit, whas_split):
    Xtr, ytr, Xte, yte = whas_split
    scores = score_model(whas_fit, Xtr, ytr, Xte, yte)
    assert 0.6 < scores["harrell_c"] < 0.9 and 0.6 < scores["uno_c"] < 0.9 and 0.6 < scores["auc"] < 0.95
    assert 0.05 < scores["ibs"] < 0.25
    times = evaluation_times(ytr, yte)[::10]
    inside = yte["time"] < ytr["time"].max()
    _, bs = brier_score(ytr, yte[inside], survival_on_grid(whas_fit, Xte[inside], times), times)
    assert bs.shape == times.shape and (bs >= 0).all() and (bs < 0.3).all()


# ------------------------------------------------------------------------------ the chapter's claims at tiny


def test_sdpm_beats_kaplan_meier_integrated_brier_score_on_whas500(whas_fit, whas_split):
    Xtr, ytr, Xte, yte = whas_split
    km = KaplanMeierBaseline().fit(Xtr, ytr)
    ibs_km = score_model(km, Xtr, ytr, Xte, yte)["ibs"]
    ibs_sdpm = score_model(whas_fit, Xtr, ytr, Xte, yte)["ibs"]
    assert ibs_sdpm < ibs_km - 0.015, (ibs_sdpm, ibs_km)


def test_sdpm_is_closer_to_the_true_survival_than_plain_kaplan_meier_on_cox_weibull():
    syn = data.make_cox_weibull(event_fraction=0.5, seed=0)
    tr, te = train_test_split(np.arange(len(syn.y)), test_size=0.3, random_state=0, stratify=syn.y["event"])
    Xtr, ytr, Xte, yte = syn.X[tr], syn.y[tr], syn.X[te], syn.y[te]
    times = evaluation_times(ytr, yte)
    truth = syn.survival_truth(times, Xte)
    d_sdpm = distance_to_truth(survival_on_grid(tiny_sdpm().fit(Xtr, ytr), Xte, times), truth, times)
    d_km = distance_to_truth(survival_on_grid(KaplanMeierBaseline().fit(Xtr, ytr), Xte, times), truth, times)
    assert d_sdpm["sup"] < d_km["sup"] - 0.05, (d_sdpm, d_km)
    assert d_sdpm["ise"] < 0.8 * d_km["ise"], (d_sdpm, d_km)


def test_distance_to_truth_measures_sup_norm_and_integrated_square():
    times = np.array([0.0, 1.0, 3.0])
    truth = np.array([[1.0, 0.5, 0.2]])
    est = np.array([[1.0, 0.7, 0.2]])
    d = distance_to_truth(est, truth, times)
    assert abs(d["sup"] - 0.2) < 1e-12 and abs(d["ise"] - 0.04 * 2.0) < 1e-12


# -------------------------------------------------------------------------------------------------- data


def test_cox_weibull_truth_averages_to_the_kaplan_meier_curve_of_the_data():
    syn = data.make_cox_weibull(event_fraction=0.5, seed=1)
    assert abs(syn.event_fraction - 0.5) < 0.01
    km_t, km_s = kaplan_meier_estimator(syn.y["event"], syn.y["time"])
    grid = np.quantile(syn.y["time"], [0.1, 0.3, 0.5, 0.7])
    marginal = syn.survival_truth(grid, syn.X).mean(0)  # independent censoring: pooled KM -> mean of S(t|x)
    np.testing.assert_allclose(StepFunction(km_t, km_s)(grid), marginal, atol=0.05)


def test_loaders_ship_offline_with_the_expected_shapes_and_flchain_without_chapter():
    whas, gbsg, flc = data.load_whas500(), data.load_gbsg2(), data.load_flchain()
    assert whas.X.shape == (500, 14) and abs(whas.event_fraction - 0.43) < 1e-12
    assert gbsg.X.shape[0] == 686 and flc.X.shape[0] > 7800
    assert not any(n.startswith("chapter") for n in flc.feature_names)
    assert (flc.y["time"] > 0).all() and np.isfinite(flc.X).all()
    flc_leak = data.load_flchain(keep_chapter=True)
    assert sum(n.startswith("chapter") for n in flc_leak.feature_names) >= 10


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")  # the leak separates the classes
def test_flchain_chapter_column_leaks_the_outcome():
    leak = data.load_flchain(keep_chapter=True).subsample(1500, seed=0)
    clean = data.load_flchain().subsample(1500, seed=0)
    none_col = leak.feature_names.index("chapter=none")
    np.testing.assert_array_equal(leak.X[:, none_col] == 1, ~leak.y["event"])  # "no cause of death" = alive

    def c_index(d):
        tr, te = train_test_split(np.arange(len(d.y)), test_size=0.3, random_state=0, stratify=d.y["event"])
        m = make_pipeline(StandardScaler(), CoxPHSurvivalAnalysis(alpha=1.0)).fit(d.X[tr], d.y[tr])
        return concordance_index_censored(d.y["event"][te], d.y["time"][te], m.predict(d.X[te]))[0]

    assert c_index(leak) > c_index(clean) + 0.08


# --------------------------------------------------------------------------------------------- bad input


def _y(n=20, event=True):
    rng = np.random.default_rng(0)
    ev = (np.arange(n) % 2 == 0) if event else np.zeros(n, bool)
    return Surv.from_arrays(event=ev, time=rng.uniform(1, 10, n))


BAD_FIT = [
    ("nan covariates", lambda X, y: (np.where(np.eye(20, 3) > 0, np.nan, X), y), ValueError, "NaN or infinite"),
    ("inf covariates", lambda X, y: (np.where(np.eye(20, 3) > 0, np.inf, X), y), ValueError, "NaN or infinite"),
    ("string covariates", lambda X, y: (np.full((20, 3), "a"), y), TypeError, "numeric"),
    ("zero time", lambda X, y: (X, Surv.from_arrays(y["event"], np.r_[0.0, y["time"][1:]])), ValueError, "positive"),
    ("negative time", lambda X, y: (X, Surv.from_arrays(y["event"], -y["time"])), ValueError, "positive"),
    ("nan time", lambda X, y: (X, Surv.from_arrays(y["event"], np.r_[np.nan, y["time"][1:]])), ValueError, "finite"),
    ("all censored", lambda X, y: (X, _y(event=False)), ValueError, "no observed event"),
    ("plain array y", lambda X, y: (X, y["time"]), TypeError, "structured array"),
    ("tuple y", lambda X, y: (X, (y["event"], y["time"])), TypeError, "structured array"),
    ("fields swapped", lambda X, y: (X, np.rec.fromarrays([y["time"], y["event"]], names="t,e")), TypeError,
     "boolean event"),
    ("length mismatch", lambda X, y: (X[:-1], y), ValueError, "same length"),
    ("1-D X", lambda X, y: (X[:, 0], y), ValueError, "shape"),
]


@pytest.mark.parametrize("case", BAD_FIT, ids=[c[0] for c in BAD_FIT])
def test_bad_fit_input_raises_a_clear_error_naming_the_argument(case):
    _, make, err, words = case
    X = np.random.default_rng(0).normal(size=(20, 3))
    Xb, yb = make(X, _y())
    with pytest.raises(err, match=words):
        tiny_sdpm(max_epochs=2).fit(Xb, yb)
    with pytest.raises(err, match=words):
        KaplanMeierBaseline().fit(Xb, yb)


def test_predict_before_fit_raises_not_fitted_and_wrong_feature_count_raises_value_error():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(NotFittedError):
        tiny_sdpm().predict(X)
    with pytest.raises(NotFittedError):
        tiny_sdpm().predict_survival_function(X)
    m = tiny_sdpm(max_epochs=2, min_epochs=0).fit(X, _y())
    with pytest.raises(ValueError, match="X has 4 features, but SDPM was fitted with 3"):
        m.predict(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        m.predict(np.full((2, 3), np.nan))


@pytest.mark.parametrize("param,value", [("steps", 1), ("steps", 2.5), ("n_samples", 0), ("lr", -1.0),
                                         ("validation_fraction", 1.0), ("hidden", True), ("s", float("nan"))])
def test_bad_hyperparameters_raise_at_fit_naming_the_parameter(param, value):
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match=param):
        tiny_sdpm(**{param: value}).fit(X, _y())


# ------------------------------------------------------------------------------------------ exercise checkers

from diffbook.exercises import ch12 as ex  # noqa: E402


def km_ok(times, events, grid):
    return kaplan_meier(times, events, grid)


def rmst_ok(grid, surv):
    return grid[0] + (surv[:, :-1] * grid.diff()).sum(1)


def c_ok(time, event, risk):
    return concordance_index_censored(event.numpy(), time.numpy(), risk.numpy())[0]


def cw_ok(t, risk, lam, nu):
    return torch.exp(-lam * risk.exp()[:, None] * t[None, :] ** nu)


def decode_ok(y, mu, sigma):
    return torch.exp(sigma * y[:, 0] + mu), y[:, 1] > 0


def leak_ok(X, event, names, threshold=0.9):
    return [n for j, n in enumerate(names) if abs(np.corrcoef(X[:, j], event.astype(float))[0, 1]) > threshold]


CHECKS = [
    # checker, right answer, (listed mistake, words), unlisted wrong answer
    (ex.check_kaplan_meier, km_ok,
     (lambda t, e, g: kaplan_meier(t, torch.ones_like(e), g), "counted every time as an event"),
     lambda t, e, g: 0.9 * kaplan_meier(t, e, g)),
    (ex.check_rmst, rmst_ok, (lambda g, s: (s[:, :-1] * g.diff()).sum(1), "left out"),
     lambda g, s: 1.1 * rmst_ok(g, s)),
    (ex.check_harrell_c, c_ok, (lambda t, e, r: 1 - c_ok(t, e, r), "1 − C"), lambda t, e, r: 0.61),
    (ex.check_cox_weibull_survival, cw_ok, (lambda t, r, lam, nu: cw_ok(t, r, lam, 1 / nu), "t^(1/ν)"),
     lambda t, r, lam, nu: cw_ok(t, r, 2 * lam, nu)),
    (ex.check_decode, decode_ok, (lambda y, mu, s: (torch.exp(s * y[:, 0] + mu), y[:, 1] < 0), "swapped"),
     lambda y, mu, s: (torch.exp(s * y[:, 0] + mu + 0.1), y[:, 1] > 0)),
    (ex.check_leaky_columns, leak_ok, (lambda X, e, n, threshold=0.9: [m for m in leak_ok(X, e, n) if m != "alive_at_end"],
                                       "positive correlations"),
     lambda X, e, n, threshold=0.9: ["age"]),
]
IDS = [c[0].__name__ for c in CHECKS]


@pytest.mark.parametrize("check,right,mistake,wrong", CHECKS, ids=IDS)
def test_checker_accepts_the_right_answer_and_names_the_listed_mistake(check, right, mistake, wrong):
    assert check(right).passed, check(right).message
    verdict = check(mistake[0])
    assert not verdict.passed and mistake[1] in verdict.message, verdict.message
    unlisted = check(wrong)
    assert not unlisted.passed and "raised" not in unlisted.message and len(unlisted.message) > 20, unlisted.message


@pytest.mark.parametrize("check", [c[0] for c in CHECKS], ids=IDS)
@pytest.mark.parametrize("bad", [None, "text", 3, lambda *a: None, lambda *a: 1 / 0, lambda *a: "x", lambda *a: True,
                                 lambda *a: 1 + 2j], ids=["none", "string", "number", "returns-none", "raises",
                                                           "returns-string", "returns-bool", "returns-complex"])
def test_checker_gives_a_failing_verdict_and_never_crashes_on_malformed_answers(check, bad):
    verdict = check(bad)
    assert not verdict.passed and verdict.message


@pytest.mark.parametrize("check,right", [(c[0], c[1]) for c in CHECKS], ids=IDS)
def test_checker_rejects_an_answer_that_zeroes_its_inputs_and_returns_zeros(check, right):
    def vandal(*args):
        out = right(*args)
        for a in args:
            if isinstance(a, (torch.Tensor, np.ndarray)):
                a[...] = 0
        return torch.zeros_like(torch.as_tensor(out, dtype=f64)) if not isinstance(out, (list, tuple)) else []
    assert not check(vandal).passed
    assert check(right).passed  # the checker's reference was not touched


# --------------------------------------------------------------------------------------------- misconceptions


def test_misconception_censored_rows_can_be_dropped_or_counted_as_events():
    rng = np.random.default_rng(1)
    T = 2.0 * rng.weibull(1.5, 20000)
    C = rng.exponential(3.0, 20000)
    t, d = np.minimum(T, C), T <= C
    grid = np.linspace(0.01, np.quantile(t, 0.9), 200)
    truth = np.exp(-((grid / 2.0) ** 1.5))

    def sup(tt, dd):
        return np.abs(kaplan_meier(torch.as_tensor(tt), torch.as_tensor(dd), torch.as_tensor(grid)).numpy() - truth).max()

    km, dropped, as_events = sup(t, d), sup(t[d], d[d]), sup(t, np.ones_like(d))
    assert km < 0.02 and dropped > 0.1 and as_events > 0.15, (km, dropped, as_events)


def test_misconception_high_c_index_means_good_survival_model():
    leak = data.load_flchain(keep_chapter=True).subsample(1500, seed=0)
    col = leak.X[:, leak.feature_names.index("chapter=none")]
    # one column, recorded after death, ranks the outcome almost perfectly: useless for a new patient
    c_leak = concordance_index_censored(leak.y["event"], leak.y["time"], -col)[0]
    assert c_leak > 0.9, c_leak
    # and a model with C = 0.5 exactly can still have the better-calibrated curve than a miscalibrated ranker
    whas = data.load_whas500()
    tr, te = train_test_split(np.arange(500), test_size=0.3, random_state=0, stratify=whas.y["event"])
    km = KaplanMeierBaseline().fit(whas.X[tr], whas.y[tr])
    cox = make_pipeline(StandardScaler(), CoxPHSurvivalAnalysis(alpha=1e-2)).fit(whas.X[tr], whas.y[tr])
    times = evaluation_times(whas.y[tr], whas.y[te])
    inside = whas.y["time"][te] < whas.y["time"][tr].max()
    from sksurv.metrics import integrated_brier_score

    s_cox = survival_on_grid(cox, whas.X[te][inside], times)
    s_km = survival_on_grid(km, whas.X[te][inside], times)
    miscalibrated = s_cox**4  # same ranking as Cox at every time, curves pushed down
    ibs = {k: integrated_brier_score(whas.y[tr], whas.y[te][inside], s, times)
           for k, s in (("km", s_km), ("cox", s_cox), ("miscal", miscalibrated))}
    assert ibs["cox"] < ibs["km"] < ibs["miscal"], ibs


def test_misconception_diffusion_must_end_at_pure_noise():
    steps = 20
    abar = sdpm_alphas_cumprod(steps)
    # the last used level is not pure noise, yet the N(0, I) start is nearly its marginal for a standardised
    # 2-D target (tau: variance 1; z: ±1 with spread 0.25, second moment ~1.06)
    var_last = abar[-1] * 1.0625 + (1 - abar[-1])
    assert 0 < float(abar[-1]) < 0.01 and abs(float(var_last) - 1) < 1e-3
    # the full cosine table ends at alpha_bar ~ 0 and its last step would divide by sqrt(1 - 0.999)
    full = S.alphas_cumprod(S.cosine_betas(steps + 1))
    first_step_full = 1 / math.sqrt(float(full[-1] / full[-2]))
    first_step_ours = 1 / math.sqrt(float(abar[-1] / abar[-2]))
    assert first_step_full > 30 and first_step_ours < 3, (first_step_full, first_step_ours)


def test_compare_models_scores_every_model_on_the_same_folds_and_km_has_c_one_half():
    from diffbook.survival import baseline_models, compare_models

    syn = data.make_cox_weibull(seed=2).subsample(200, seed=0)
    rows = compare_models(baseline_models(n_trees=10), syn.X, syn.y, n_splits=2, n_repeats=2, seed=0,
                          truth=syn.survival_truth)
    assert len(rows) == 4 * 2 * 2 and {r["model"] for r in rows} == {"KM", "CoxPH", "RSF", "GBSA"}
    km = [r for r in rows if r["model"] == "KM"]
    assert all(r["harrell_c"] == 0.5 and abs(r["auc"] - 0.5) < 1e-12 for r in km)
    cox = [r for r in rows if r["model"] == "CoxPH"]
    # the correctly specified model is far closer to the truth than the null model, fold by fold
    assert all(c["sup"] < 0.7 * k["sup"] and c["ibs"] < k["ibs"] for c, k in zip(cox, km))


def test_sdpm_score_is_harrell_c_of_its_risk_and_a_fitted_pipeline_exposes_curves(whas_fit, whas_split):
    _, _, Xte, yte = whas_split
    expected = concordance_index_censored(yte["event"], yte["time"], whas_fit.predict(Xte))[0]
    assert abs(whas_fit.score(Xte, yte) - expected) < 1e-12
    chf = whas_fit.predict_cumulative_hazard_function(Xte[:2])
    assert all(isinstance(f, StepFunction) for f in chf) and (np.diff(chf[0].y) >= 0).all()


def test_scikit_survival_scorer_wrappers_work_with_sdpm_in_cross_validation(whas):
    from sksurv.metrics import (as_concordance_index_ipcw_scorer, as_cumulative_dynamic_auc_scorer,
                                as_integrated_brier_score_scorer)

    sub = whas.subsample(240, seed=1)
    times = np.quantile(sub.y["time"][sub.y["event"]], [0.2, 0.4, 0.6])
    base = tiny_sdpm(max_epochs=40, batch_size=32, n_samples=32)
    # IPCW weights need every test time below the longest training time: the longest times go to training
    longest = set(np.argsort(sub.y["time"])[-2:].tolist())
    cv = [(np.array(sorted(set(tr) | (set(te) & longest)), dtype=int), np.array(sorted(set(te) - longest), dtype=int))
          for tr, te in KFold(2, shuffle=True, random_state=0).split(sub.X)]
    for wrapper, kw in [(as_integrated_brier_score_scorer, {"times": times}),
                        (as_cumulative_dynamic_auc_scorer, {"times": times}),
                        (as_concordance_index_ipcw_scorer, {"tau": times[-1]})]:
        res = cross_validate(wrapper(base, **kw), sub.X, sub.y, cv=cv)
        assert res["test_score"].shape == (2,) and np.isfinite(res["test_score"]).all(), wrapper.__name__
        assert 0.0 < abs(res["test_score"]).max() < 1.0
