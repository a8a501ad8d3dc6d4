"""Benchmark: rig.vertices against a dense target blend and against anny's own model, in one run.

Three figures, medians of repeats (these machines are shared and noisy: read the ratios):

1. ``rig.vertices`` on MakeHuman's body: meshes/s at batch sizes 2048 and 256.
2. The dense blend ``T + W @ D`` a naive implementation would run: one float32
   matrix product over as many targets as the rig blends (its 564 macro targets
   and every local field), on the same number of vertices, at the same batch.
3. ``anny.Anny(...)`` forward (torch, CPU, 2 threads, no grad) at batch 256, when
   anny and torch import. Its first build caches its own data (about a minute).

Aims (issue 12): at least 3x the dense blend and at least 20x anny.

    python benchmarks/bench_rig.py [--repeats 5] [--no-anny]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import avatar
from timing import median_time  # benchmarks/timing.py


def dense_blend(rig, n: int):
    """A callable running ``T + W @ D`` with the rig's target count and vertex count (random values)."""
    k = rig._n_targets
    cols = 3 * len(rig._blend)
    rng = np.random.default_rng(0)
    D = rng.standard_normal((k, cols), dtype=np.float32) * 1e-3
    W = rng.random((n, k), dtype=np.float32)
    T = rng.standard_normal(cols, dtype=np.float32)
    return k, lambda: T + W @ D


def anny_forward(n: int, threads: int = 2):
    """A callable running anny's own model forward at batch ``n``, or None when anny/torch are missing."""
    try:
        import torch
        import anny
    except ImportError:
        return None, "anny or torch does not import"
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model = anny.Anny(local_changes="default").to(dtype=torch.float32)
    build = time.perf_counter() - t0
    inputs = {
        "pose_parameters": torch.eye(4)[None, None].expand(n, model.bone_count, 4, 4).clone(),
        "phenotype_kwargs": torch.full((n, len(model.phenotype_labels)), 0.5),
        "local_changes_kwargs": torch.zeros((n, len(model.local_change_labels))),
    }

    def run():
        with torch.no_grad():
            model(**inputs)

    info = (f"{len(model.template_vertices)} vertices, {len(model.phenotype_labels)} phenotypes, "
            f"{len(model.local_change_labels)} local changes, {model.bone_count} bones (LBS), "
            f"built in {build:.0f} s")
    return run, info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-anny", action="store_true")
    args = ap.parse_args()

    rig = avatar.load_rig()
    rig.vertices(rig.sample(8, seed=1))  # warm-up: the target cache, BLAS
    print(f"rig: {len(rig.sliders)} sliders, {rig.n_vertices} vertices "
          f"({len(rig._blend)} blended), {rig._n_targets} targets and fields")
    ours = {}
    for n in (2048, 256):
        S = rig.sample(n, seed=0)
        ours[n] = n / median_time(lambda: rig.vertices(S), args.repeats)
        print(f"rig.vertices  batch {n:5d}: {ours[n]:8.0f} meshes/s")
    k, dense = dense_blend(rig, 2048)
    dense_rate = 2048 / median_time(dense, args.repeats)
    print(f"dense T + W @ D batch  2048: {dense_rate:8.0f} meshes/s  ({k} targets)")
    print(f"ratio rig / dense (2048)   : {ours[2048] / dense_rate:8.2f}  (aim >= 3)")
    if args.no_anny:
        return
    run, info = anny_forward(256)
    if run is None:
        print(f"anny: skipped ({info})")
        return
    run()  # warm-up
    anny_rate = 256 / median_time(run, args.repeats)
    print(f"anny forward  batch   256: {anny_rate:8.0f} meshes/s  ({info})")
    print(f"ratio rig / anny (256)     : {ours[256] / anny_rate:8.2f}  (aim >= 20)")
    print(f"ratio rig (2048) / anny    : {ours[2048] / anny_rate:8.2f}")


if __name__ == "__main__":
    main()
