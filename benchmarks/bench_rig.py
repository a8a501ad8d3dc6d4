"""Benchmark: rig.vertices against a dense target blend and against anny's own model, in one run.

Four figures, medians of repeats (these machines are shared and noisy: read the ratios):

1. ``rig.vertices`` on MakeHuman's body: meshes/s at batch sizes 2048 and 256 (prior avatars),
   and at 256 with three sliders varied and the rest at their defaults, as a dataset varies them.
2. The dense blend ``T + W @ D`` a naive implementation would run: one float32
   matrix product over as many targets as the rig blends (the distinct displacements
   of MakeHuman's macro files, each repeated file once, and every local field), on the
   same number of vertices, at the same batch.
3. ``anny.Anny(...)`` forward (torch, CPU, 2 threads, no grad) at batch 256, when
   anny and torch import. Its first build caches its own data (about a minute).
4. The same avatars posed (every pose slider from its prior) against unposed, and posed
   against anny's forward (which always runs its linear blend skinning).

Each ratio compares figures timed in alternation (one repeat of each in turn), so
that both see the same load. A last pair of lines times turns of three calls each: the rig's first
call after anny's turn runs 1.1-1.2x slower than the next two here (its 15 ms feel the caches anny's
turn left cold; anny's 300 ms do not), so it prints the sustained ratio beside the first-call one.
anny's own figure moves with what ran before it (580-960 meshes/s in one session), so both ratios
move with it. It also prints the local fields' block-sparse layout:
the (feature x vertex) pairs its products compute against those the fields have.

Aims: at least 3x the dense blend and at least 20x anny (issue 12); posing at most 2x the
unposed time and posed output at least 5x anny (issue 14).

    python benchmarks/bench_rig.py [--repeats 5] [--no-anny]
"""
from __future__ import annotations

import argparse
import time

import avatar  # noqa: F401 - before numpy: it may choose OpenBLAS's kernel (avatar/__init__.py)
import numpy as np
from avatar.body._blend_kernel import PANEL




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


def few_varied(rig, n: int) -> np.ndarray:
    """``n`` avatars at the defaults but for three sliders drawn uniformly (nose width, age, ear flap)."""
    S = np.repeat(rig.defaults()[None], n, axis=0)
    rng = np.random.default_rng(0)
    for name in ("nose.width1", "body.age", "ears.l_flap"):
        s = rig.sliders[rig.spec.index(name)]
        S[:, rig.spec.index(name)] = rng.uniform(s.min, s.max, n)
    return S


def interleaved(fns: dict, repeats: int, calls: int = 1) -> dict:
    """Median seconds of each callable, timed in turn ``repeats`` times, ``calls`` calls a turn.

    With ``calls`` > 1 the result is a list, the median of each call of a turn: the first call after
    another's turn pays for cold caches and clocks, which a call of 20 ms (the rig at 256) feels and
    one of 300 ms (anny's forward) does not."""
    times: dict = {name: [[] for _ in range(calls)] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            for c in range(calls):
                t = time.perf_counter()
                fn()
                times[name][c].append(time.perf_counter() - t)
    med = {name: [float(np.median(ts)) for ts in by_call] for name, by_call in times.items()}
    return {name: m[0] for name, m in med.items()} if calls == 1 else med


def panel_pairs(rig) -> tuple[int, int, int]:
    """(panels, (field x panel) pairs the blend computes, non-zero field coordinates) of the local fields."""
    pan = rig._panels
    return len(pan.fptr) - 1, len(pan.feats), len(pan.coo[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-anny", action="store_true")
    args = ap.parse_args()

    rig = avatar.load_rig()
    rig.vertices(rig.sample(8, seed=1))  # warm-up: the target cache, BLAS
    print(f"rig: {len(rig.sliders)} sliders, {rig.n_vertices} vertices "
          f"({len(rig._blend)} blended), {rig._n_targets} targets and fields")
    panels, pairs, true = panel_pairs(rig)
    print(f"local fields: {panels} panels of {PANEL} coordinates, {pairs:,} (field x panel) pairs: "
          f"{pairs * PANEL:,} products for {true:,} non-zero coordinates ({pairs * PANEL / true:.2f}x)")
    S = {n: rig.sample(n, seed=0) for n in (2048, 256)}
    k, dense = dense_blend(rig, 2048)
    t = interleaved({2048: lambda: rig.vertices(S[2048]), 256: lambda: rig.vertices(S[256]), "dense": dense},
                    args.repeats)
    ours = {n: n / t[n] for n in (2048, 256)}
    for n in (2048, 256):
        print(f"rig.vertices  batch {n:5d}: {ours[n]:8.0f} meshes/s")
    few = few_varied(rig, 256)
    t_few = interleaved({"few": lambda: rig.vertices(few), 256: lambda: rig.vertices(S[256])}, args.repeats)
    print(f"rig.vertices  batch   256: {256 / t_few['few']:8.0f} meshes/s with 3 sliders varied, the rest at their "
          f"defaults (a dataset's; {256 / t_few[256]:.0f} for prior avatars in turn)")
    dense_rate = 2048 / t["dense"]
    print(f"dense T + W @ D batch  2048: {dense_rate:8.0f} meshes/s  ({k} targets)")
    print(f"ratio rig / dense (2048)   : {ours[2048] / dense_rate:8.2f}  (aim >= 3)")
    # posed (issue 14): the same avatars with every pose slider drawn from its prior
    P = {n: rig.sample(n, seed=0, pose=True) for n in (2048, 256)}
    rig.vertices(P[256][:8])  # warm-up: the skinning kernel's compile (cached on disk after the first run)
    t = interleaved({("posed", n): (lambda n=n: rig.vertices(P[n])) for n in (2048, 256)}
                    | {("rest", n): (lambda n=n: rig.vertices(S[n])) for n in (2048, 256)}, args.repeats)
    posed = {n: n / t[("posed", n)] for n in (2048, 256)}
    for n in (2048, 256):
        print(f"rig.vertices  batch {n:5d}: {posed[n]:8.0f} meshes/s posed, {n / t[('rest', n)]:6.0f} unposed: "
              f"posing costs {t[('posed', n)] / t[('rest', n)]:.2f}x (aim <= 2)")
    if args.no_anny:
        return
    run, info = anny_forward(256)
    if run is None:
        print(f"anny: skipped ({info})")
        return
    run()  # warm-up
    t = interleaved({"anny": run, 256: lambda: rig.vertices(S[256]), "posed": lambda: rig.vertices(P[256])},
                    args.repeats)  # the same load for all
    anny_rate, ours_now, posed_now = 256 / t["anny"], 256 / t[256], 256 / t["posed"]
    print(f"anny forward  batch   256: {anny_rate:8.0f} meshes/s  ({info})")
    print(f"rig.vertices  batch   256: {ours_now:8.0f} meshes/s  (timed in turn with anny)")
    print(f"ratio rig / anny (256)     : {ours_now / anny_rate:8.2f}  (aim >= 20)")
    print(f"ratio rig (2048) / anny    : {ours[2048] / anny_rate:8.2f}")
    print(f"posed rig / anny (256)     : {posed_now / anny_rate:8.2f}  (aim >= 5; anny's forward always skins)")
    t = interleaved({"anny": run, 256: lambda: rig.vertices(S[256])}, args.repeats, calls=3)
    first, later = 256 / t[256][0], 256 / float(np.median(t[256][1:]))
    print(f"in turns of 3 calls        : rig {first:.0f} meshes/s on the first call of a turn, {later:.0f} on the "
          f"next two; anny {256 / t['anny'][0]:.0f} and {256 / float(np.median(t['anny'][1:])):.0f}")
    print(f"ratio rig / anny, sustained: {later / (256 / float(np.median(t['anny'][1:]))):8.2f}  (the calls after "
          f"the first of each turn)")


if __name__ == "__main__":
    main()
