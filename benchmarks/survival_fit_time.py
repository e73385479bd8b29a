"""SDPM's fit (and predict) time per fold next to scikit-survival's baselines, in one run, as ratios.

Every model is fitted on the same training folds of one data set (stratified K-fold on the event), behind a
``StandardScaler``; the time of ``fit`` and of scoring the test fold (``predict`` + ``predict_survival_function``,
through :func:`diffbook.survival.score_model`) is measured with ``time.perf_counter``. Reports the median
seconds per fold and the ratio SDPM / baseline (above 1: SDPM is slower). Absolute times on a shared CPU mean
little; the ratios, measured side by side, are the result. Run from the repository root:

    python benchmarks/survival_fit_time.py [--data whas500] [--folds 4] [--preset small]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from diffbook import scale
from diffbook.data import survival as data
from diffbook.survival import SDPM, baseline_models, score_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="whas500", choices=sorted(data.LOADERS))
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--rows", type=int, default=None, help="subsample this many rows (default: all)")
    ap.add_argument("--preset", default=None, choices=scale.PRESETS, help="SDPM and forest sizes (default: DIFFBOOK_SCALE)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.preset:
        os.environ[scale.ENV_VAR] = args.preset
    trees = scale.by_scale(tiny=30, small=200, full=500)
    sdpm_kw = scale.by_scale(
        tiny=dict(hidden=32, depth=2, batch_size=32, max_epochs=60, min_epochs=10, patience=10, n_samples=64),
        small=dict(hidden=128, depth=3, batch_size=64, max_epochs=300, min_epochs=20, patience=20, n_samples=256),
        full=dict(hidden=256, depth=4, batch_size=64, max_epochs=1000, min_epochs=100, patience=20, n_samples=2048),
    )
    d = data.LOADERS[args.data]().subsample(args.rows)
    models = {**baseline_models(n_trees=trees), "SDPM": make_pipeline(StandardScaler(), SDPM(**sdpm_kw))}
    fit_s: dict[str, list[float]] = {m: [] for m in models}
    score_s: dict[str, list[float]] = {m: [] for m in models}
    c_index: dict[str, list[float]] = {m: [] for m in models}
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=0).split(d.X, d.event)
    for tr, te in folds:
        for name, proto in models.items():
            model = clone(proto)
            t0 = time.perf_counter()
            model.fit(d.X[tr], d.y[tr])
            t1 = time.perf_counter()
            scores = score_model(model, d.X[tr], d.y[tr], d.X[te], d.y[te])
            t2 = time.perf_counter()
            fit_s[name].append(t1 - t0)
            score_s[name].append(t2 - t1)
            c_index[name].append(scores["harrell_c"])
    med = {m: statistics.median(v) for m, v in fit_s.items()}
    med_score = {m: statistics.median(v) for m, v in score_s.items()}
    print(f"{d.name}: {len(d.y)} rows, {args.folds} folds, preset {scale.current()}, torch {torch.__version__}, 1 thread")
    print(f"{'model':8s} {'fit s/fold':>11s} {'SDPM/model':>11s} {'score s/fold':>13s} {'Harrell C':>10s}")
    for m in models:
        ratio = med["SDPM"] / med[m] if med[m] > 0 else float("inf")
        print(f"{m:8s} {med[m]:11.3f} {ratio:10.0f}× {med_score[m]:13.3f} {np.mean(c_index[m]):10.3f}")


if __name__ == "__main__":
    main()
