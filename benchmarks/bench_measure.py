"""Benchmark: body measurements of 10,000 avatars, and sliders solved from measurement targets.

Prints, medians over repeats:
- measurements/s of ``rig.ruler`` on 10,000 avatars' rest vertices (every measurement: 24), against
  the cost of computing those vertices (``rig.vertices``) in the same run. Aim: 10,000 in under 5 s.
- one avatar solved for stature and waist (``rig.solve``), in seconds. Aim: under 0.5 s.
- a batch of 256 avatars solved for a stature distribution, in avatars/s.

    python benchmarks/bench_measure.py [--n 10000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import avatar  # noqa: F401 - before numpy: it may choose OpenBLAS's kernel (avatar/__init__.py)
import numpy as np

from timing import median_time  # benchmarks/timing.py


def bench_measure(rig, n: int = 10000, repeats: int = 3) -> dict:
    """{"n", "seconds", "per_s", "vertices_per_s"}: every measurement of ``n`` prior avatars."""
    S = rig.sample(n, seed=0)
    V = rig.vertices(S, posed=False)
    rig.ruler(V[:4])  # numba compiles (or loads its cache) once per process
    seconds = median_time(lambda: rig.ruler(V), repeats)
    blend = median_time(lambda: rig.vertices(S[:2048], posed=False), 1)
    return {"n": n, "seconds": seconds, "per_s": n / seconds, "vertices_per_s": 2048 / blend}


def bench_solve(rig, repeats: int = 5) -> dict:
    """{"one_s", "batch_per_s"}: one man to 182 cm / 84 cm waist; 256 adults to statures ~ N(170, 8) cm."""
    x = rig.defaults()
    x[rig.slider_names.index("body.gender")] = 100
    rig.solve(x, {"stature": 182.0})
    one = median_time(lambda: rig.solve(x, {"stature": 182.0, "waist": 84.0}), repeats)
    S = rig.sample(256, seed=1)
    S[:, rig.slider_names.index("body.age")] = 30.0  # adults: a child cannot reach an adult's stature
    goal = np.random.default_rng(0).normal(170.0, 8.0, 256).clip(150, 195)
    t = time.perf_counter()
    for target in np.unique(np.round(goal)):  # one batch per whole centimetre
        rows = np.flatnonzero(np.round(goal) == target)
        rig.solve(S[rows], {"stature": float(target)})
    return {"one_s": one, "batch_per_s": 256 / (time.perf_counter() - t)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rig = avatar.load_rig()
    m = bench_measure(rig, args.n, args.repeats)
    print(f"rig.measure  {m['n']:,} avatars x {len(rig.ruler.names)} measurements: {m['seconds']:.2f} s, "
          f"{m['per_s']:,.0f} avatars/s  (aim: {m['n']:,} in under 5 s)")
    print(f"rig.vertices (rest) in the same run            : {m['vertices_per_s']:,.0f} avatars/s "
          f"(measuring costs {m['vertices_per_s'] / m['per_s']:.2f}x making the vertices)")
    s = bench_solve(rig)
    print(f"rig.solve    one avatar, stature + waist       : {s['one_s']:.2f} s  (aim: under 0.5 s)")
    print(f"rig.solve    256 adults to a stature spread    : {s['batch_per_s']:.1f} avatars/s")


if __name__ == "__main__":
    main()
