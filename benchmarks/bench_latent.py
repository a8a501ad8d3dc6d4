"""Benchmark: PCA with 64 components over 10,000 avatars' vertices, in memory and streamed.

1. In memory: rig.vertices of n sampled avatars (n x 74,976 float32), then
   avatar.latent.PCA(64) (randomized solver). Aim: under 30 s.
2. Streamed: avatar.latent.IncrementalPCA(64, batch_size) fed from a dataset
   store (vertices only) through the feature transform, never holding more than
   one batch. Aim: peak RSS below 2 GB.

Each part runs in its own process, so each peak RSS (ru_maxrss) is its own.
The store is generated first (vertices only, in a temporary folder unless
--store names an existing one or --keep a folder to keep it in). Prints
seconds (wall and CPU: these machines are shared, and CPU seconds show the
work when the wall clock is stretched by other jobs), peak RSS, and how far the
streamed basis is from the in-memory one (explained variance of both).

    python benchmarks/bench_latent.py [--n 10000] [--components 64] [--batch 512] [--store DIR.zarr] [--keep DIR]
                                      [--blas-threads 1]
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


_THREADS: list[str] = []


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def part_memory(n: int, k: int) -> dict:
    import numpy as np

    import avatar
    import avatar.latent as L

    rig = avatar.load_rig()
    t = time.perf_counter()
    V = rig.vertices(rig.sample(n, seed=0))
    make = time.perf_counter() - t
    X = V.reshape(n, -1)
    del V
    rss_data = _peak_mb()
    t, c = time.perf_counter(), time.process_time()
    m = L.PCA(n_components=k, random_state=0).fit(X)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {"make_s": make, "fit_s": wall, "fit_cpu_s": cpu, "peak_mb": _peak_mb(),
            "data_mb": X.nbytes / 2**20, "rss_after_data_mb": rss_data,
            "explained": float(np.sum(m.explained_variance_ratio_)),
            "ev": [float(x) for x in m.explained_variance_[:5]]}


def part_stream(store: str, k: int, batch: int) -> dict:
    import numpy as np

    import avatar.dataset as dataset
    import avatar.latent as L
    from avatar.latent.features import FeatureTransform, iter_features

    ds = dataset.open(store)
    rows = np.arange(len(ds))
    t, c = time.perf_counter(), time.process_time()
    ft = FeatureTransform(["vertices"]).fit_store(ds, rows, batch)     # pass 1: the mean shape
    t_ft = time.perf_counter() - t
    m = L.IncrementalPCA(n_components=k, batch_size=batch)
    m.fit_batches(B for _, B in iter_features(ds, ft, rows, batch))      # pass 2: the basis
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {"features_s": t_ft, "fit_s": wall, "fit_cpu_s": cpu, "peak_mb": _peak_mb(),
            "explained": float(np.sum(m.explained_variance_ratio_)),
            "ev": [float(x) for x in m.explained_variance_[:5]]}


def _child(*args) -> dict:
    out = subprocess.run([sys.executable, __file__, *args, *_THREADS], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"benchmark part {args[:2]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--components", type=int, default=64)
    ap.add_argument("--batch", type=int, default=512, help="IncrementalPCA batch size (rows)")
    ap.add_argument("--store", help="an existing dataset store with vertices (default: generate one)")
    ap.add_argument("--keep", help="generate the store under this folder and keep it")
    ap.add_argument("--workers", type=int, default=2, help="processes generating the store")
    ap.add_argument("--blas-threads", type=int, help="limit BLAS threads (threadpoolctl; default: the library's)")
    ap.add_argument("--part", choices=("memory", "stream"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")
    if args.part == "memory":
        print(json.dumps(part_memory(args.n, args.components)))
        return
    if args.part == "stream":
        print(json.dumps(part_stream(args.store, args.components, args.batch)))
        return

    import avatar

    if args.blas_threads:
        _THREADS.extend(["--blas-threads", str(args.blas_threads)])
    n, k = args.n, args.components
    print(f"avatar {avatar.__version__}: PCA with {k} components over {n:,} avatars' vertices (74,976 floats each)")
    mem = _child("--part", "memory", "--n", str(n), "--components", str(k))
    print(f"  in memory   : fit {mem['fit_s']:6.1f} s wall, {mem['fit_cpu_s']:6.1f} s CPU (aim < 30 s); "
          f"peak RSS {mem['peak_mb'] / 1024:.2f} GiB with the {mem['data_mb'] / 1024:.2f} GiB matrix "
          f"(+{(mem['peak_mb'] - mem['rss_after_data_mb']) / 1024:.2f} GiB for the fit); making the vertices took "
          f"{mem['make_s']:.1f} s")

    root = None
    store = args.store
    try:
        if store is None:
            root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_latent_"))
            root.mkdir(parents=True, exist_ok=True)
            store = str(root / f"vertices-{n}.zarr")
            from avatar.dataset import config_from_text, generate

            text = (f"n: {n}\nseed: 0\nsampler: prior\nvary: ['*']\noutputs: {{vertices: {{dtype: float32}}}}\n"
                    f"store: {store}\nshard: 512\n")
            t = time.perf_counter()
            generate(config_from_text(text, "<bench>"), workers=args.workers, progress=sys.stderr.isatty())
            print(f"  (generated the store {store} in {time.perf_counter() - t:.1f} s)")
        st = _child("--part", "stream", "--store", store, "--components", str(k), "--batch", str(args.batch))
        print(f"  streamed    : fit {st['fit_s']:6.1f} s wall, {st['fit_cpu_s']:6.1f} s CPU (two passes over the "
              f"store; the mean shape took {st['features_s']:.1f} s); peak RSS {st['peak_mb'] / 1024:.2f} GiB "
              f"(aim < 2 GB), batch {args.batch}")
        print(f"  explained variance of {k} components: in memory {mem['explained']:.6f}, "
              f"streamed {st['explained']:.6f}")
        print(f"  leading variances (m^2): memory {', '.join(f'{x:.3g}' for x in mem['ev'][:3])}; "
              f"streamed {', '.join(f'{x:.3g}' for x in st['ev'][:3])}")
    finally:
        if root is not None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
