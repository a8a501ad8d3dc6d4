"""Benchmark: rig.vertices for 10,000 avatars vs the dense target blend T + S @ D.

The reference is what MakeHuman-style morph-target blending costs: one dense
float32 matrix product with the same vertex and slider counts (D random).
Prints meshes/s for both, their ratio (aim >= 1.0; < 0.5 is a defect), and the
peak memory. Medians over repeats, since these machines are shared and noisy.

    python benchmarks/bench_rig.py [--n 10000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import resource

import numpy as np

import avatar
from timing import median_time  # benchmarks/timing.py


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    rig = avatar.load_rig()
    n, P, V = args.n, len(rig.slider_names), rig.n_vertices
    S = rig.sample(n, seed=0)
    ours = median_time(lambda: rig.vertices(S), args.repeats)

    rng = np.random.default_rng(0)
    T = rig.template.vertices.reshape(-1).astype(np.float32)
    D = rng.standard_normal((P, 3 * V), dtype=np.float32) * 1e-3
    Sf = rig.spec.normalize(S).astype(np.float32)
    dense = median_time(lambda: T + Sf @ D, args.repeats)

    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"avatars: {n}, sliders: {P}, vertices: {V}")
    print(f"rig.vertices        : {n / ours:9.0f} meshes/s  (median of {args.repeats}: {ours:.2f} s)")
    print(f"dense T + S @ D     : {n / dense:9.0f} meshes/s  (median of {args.repeats}: {dense:.2f} s)")
    print(f"ratio ours / dense  : {dense / ours:9.2f}  (aim >= 1.0)")
    print(f"peak memory         : {peak_gib:9.2f} GiB  (both outputs are {n * V * 12 / 2**30:.2f} GiB)")


if __name__ == "__main__":
    main()
