"""Benchmark: fitting the rig to meshes it made (issue 15), known answers and speed.

Same topology: ``fit_body`` on the vertices of ``--n`` avatars from the priors (at rest, and posed
with ``--posed``): fits/s, mean vertex error, and the worst error of a slider the fit does not flag
as unidentifiable, as a % of its range (the ethnic sliders compared as shares). Scans: ``--scans``
of the same avatars decimated to 30% of their faces (meshoptimizer) and moved by a random rigid
transform: fits/s, mean surface distance (scan vertices to the fitted body), rotation and
translation errors of the recovered transform.

Measurements: every measurement of 10,000 avatars (``bench_measure`` in benchmarks/bench_measure.py), in
the same run.

    python benchmarks/bench_fit.py [--n 50] [--posed 10] [--scans 10] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

import avatar  # noqa: F401 - before numpy: it may choose OpenBLAS's kernel (avatar/__init__.py)
import numpy as np

from avatar.threads import one_blas_thread

RACES = ("body.african", "body.asian", "body.caucasian")


def truth(rig, S):
    """The known answers as fits report them: ethnic sliders as shares summing to 100."""
    S = np.array(S, np.float64, copy=True)
    j = [rig.slider_names.index(n) for n in RACES]
    S[:, j] = 100 * S[:, j] / S[:, j].sum(axis=1, keepdims=True)
    return S


def worst_slider(rig, fit, s_true):
    """(name, error as a fraction of the range) of the worst fitted slider not flagged unidentifiable."""
    names = np.array(rig.slider_names)
    judged = np.isin(names, fit.free) & ~np.isin(names, fit.unidentifiable)
    err = np.where(judged, np.abs(fit.values - s_true) / (rig.spec.highs() - rig.spec.lows()), 0.0)
    j = int(np.argmax(err))
    return names[j], float(err[j])


def bench_same_topology(rig, n: int, seed: int, posed: bool) -> dict:
    S = rig.sample(n, seed=seed, pose=posed)
    V = rig.vertices(S, posed=posed)
    T = truth(rig, S)
    errs, worst, names, flagged, its = [], [], [], [], []
    t0 = time.perf_counter()
    for i in range(n):
        fit = avatar.fit_body(V[i], rig, posed=posed)
        errs.append(fit.vertex_error_mm)
        name, w = worst_slider(rig, fit, T[i])
        worst.append(w)
        names.append(name)
        flagged.append(len(fit.unidentifiable))
        its.append(fit.iterations)
        print(f"  {i + 1}/{n}: {fit.vertex_error_mm:.4f} mm, worst slider {100 * w:.3f}% ({name}), "
              f"{fit.iterations} iterations", flush=True)
    dt = time.perf_counter() - t0
    k = int(np.argmax(worst))
    return {"fits_per_s": n / dt, "seconds_per_fit": dt / n, "iterations_median": float(np.median(its)),
            "iterations_range": (int(np.min(its)), int(np.max(its))), "mean_vertex_error_mm": float(np.mean(errs)),
            "max_vertex_error_mm": float(np.max(errs)),
            "worst_slider_pct": 100 * worst[k], "worst_slider": names[k], "over_2pct": int(np.sum(np.array(worst) > 0.02)),
            "unidentifiable_median": float(np.median(flagged))}


def bench_scans(rig, n: int, seed: int) -> dict:
    import trimesh

    from avatar.fit.geometry import decimate
    from avatar.fit.solver import rotation

    rng = np.random.default_rng(seed)
    S = rig.sample(n, seed=seed)
    V = rig.vertices(S, posed=False)
    surf, rot, trans = [], [], []
    elapsed = 0.0
    for i in range(n):
        v, f = decimate(V[i], rig.faces)
        R, t = rotation(rng.normal(size=3)), rng.normal(size=3)
        scan = trimesh.Trimesh(v @ R.T + t, f, process=False)
        t0 = time.perf_counter()
        fit = avatar.fit_body(scan, rig, posed=False)
        elapsed += time.perf_counter() - t0
        Rf, tf = fit.transform[:3, :3], fit.transform[:3, 3]
        surf.append(fit.surface_error_mm)
        rot.append(np.degrees(np.arccos(np.clip((np.trace(Rf.T @ R) - 1) / 2, -1, 1))))
        trans.append(1e3 * np.linalg.norm(tf - t))
        print(f"  scan {i + 1}/{n}: {surf[-1]:.3f} mm, {rot[-1]:.3f} deg, {trans[-1]:.2f} mm", flush=True)
    return {"fits_per_s": n / elapsed, "mean_surface_mm": float(np.mean(surf)), "max_surface_mm": float(np.max(surf)),
            "max_rotation_deg": float(np.max(rot)), "max_translation_mm": float(np.max(trans))}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50, help="avatars at rest")
    p.add_argument("--posed", type=int, default=10, help="posed avatars")
    p.add_argument("--scans", type=int, default=10, help="decimated, moved avatars")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rig = avatar.load_rig()
    from avatar.fit.linear import local_basis

    t0 = time.perf_counter()
    local_basis(rig)
    print(f"local Jacobian built in {time.perf_counter() - t0:.2f} s (once per rig)", flush=True)
    with one_blas_thread():
        for label, n, posed in (("rest", args.n, False), ("posed", args.posed, True)):
            if n:
                r = bench_same_topology(rig, n, args.seed, posed)
                a, b = r["iterations_range"]
                print(f"same topology, {label}, {n} avatars: {r['fits_per_s']:.3f} fits/s ({r['seconds_per_fit']:.1f} s a "
                      f"fit; median {r['iterations_median']:g} iterations, {a}-{b}); mean vertex error "
                      f"{r['mean_vertex_error_mm']:.4f} mm (worst avatar {r['max_vertex_error_mm']:.4f} mm); worst "
                      f"pinned-down slider {r['worst_slider_pct']:.3f}% of its range ({r['worst_slider']}), "
                      f"{r['over_2pct']} avatars over 2%; {r['unidentifiable_median']:.0f} sliders flagged (median)",
                      flush=True)
        if args.scans:
            r = bench_scans(rig, args.scans, args.seed)
            print(f"scans (30% decimation, random rigid transform), {args.scans} avatars: {r['fits_per_s']:.3f} fits/s; "
                  f"mean surface distance {r['mean_surface_mm']:.3f} mm (worst {r['max_surface_mm']:.3f} mm); "
                  f"transform error at most {r['max_rotation_deg']:.3f} deg, {r['max_translation_mm']:.2f} mm")
    from bench_measure import bench_measure  # benchmarks/bench_measure.py

    m = bench_measure(rig, 10000, 3)
    print(f"measurements: {m['n']:,} avatars x {len(rig.ruler.names)} in {m['seconds']:.2f} s, {m['per_s']:,.0f} "
          f"avatars/s (aim: {m['n']:,} in under 5 s)")


if __name__ == "__main__":
    main()
