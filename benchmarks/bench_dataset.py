"""Benchmark: dataset generation throughput with 1 and 2 local worker processes.

Each avatar gets its vertices (float32), a 256^2 texture and one 128^2 front
render (renders only when avatar.render can start an OpenGL backend; the
script says so otherwise). Every run writes a fresh store in a temporary
folder. Prints avatars/s per worker count, the 2-worker speed-up, the bytes
written and the peak resident memory of the parent and of the largest worker.

    python benchmarks/bench_dataset.py [--n 10000] [--workers 1,2] [--no-renders] [--keep DIR]
    python benchmarks/bench_dataset.py --memory 10000,40000    # peak RSS against N (2 workers)

``--memory`` runs each N in a fresh process (vertices + 64^2 textures, no renders, 2
workers) and prints the peak RSS of the parent and of the largest worker, and the
ratio of the largest N to the smallest (aim: at most 1.10).
"""
from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import avatar
from avatar.dataset import config_from_text, generate


def renders_available() -> tuple[bool, str]:
    try:
        from avatar import render  # noqa: F401
        from avatar.rendering.core import RenderBackendError, choose_backend
    except ImportError as err:
        return False, f"avatar.render is not importable ({err})"
    try:
        return True, f"renders with {choose_backend()}"
    except RenderBackendError as err:
        return False, f"no OpenGL backend ({str(err)[:120]}...)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--shard", type=int, default=256)
    ap.add_argument("--no-renders", action="store_true")
    ap.add_argument("--keep", help="write the stores under this folder and keep them")
    ap.add_argument("--memory", help="comma-separated N: peak RSS of whole runs against N")
    args = ap.parse_args()
    if args.memory:
        return memory([int(x) for x in args.memory.split(",")], args.shard)

    ok, why = (False, "--no-renders") if args.no_renders else renders_available()
    outputs = "  vertices: {dtype: float32}\n  textures: {size: 256}\n"
    if ok:
        outputs += "  renders: {views: [front], size: 128}\n"
    print(f"avatar {avatar.__version__}: {args.n:,} avatars, vertices + 256^2 textures"
          + (" + one 128^2 render each" if ok else f"; no renders: {why}"))
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_dataset_"))
    root.mkdir(parents=True, exist_ok=True)
    rates = {}
    try:
        for w in [int(x) for x in args.workers.split(",")]:
            store = root / f"bench-{w}w.zarr"
            shutil.rmtree(store, ignore_errors=True)
            text = (f"n: {args.n}\nseed: 0\nsampler: prior\nvary: ['*']\noutputs:\n{outputs}"
                    f"store: {store}\nshard: {args.shard}\n")
            cfg = config_from_text(text, "<bench>")
            t = time.perf_counter()
            s = generate(cfg, workers=w, progress=sys.stderr.isatty())
            dt = time.perf_counter() - t
            rates[w] = args.n / dt
            print(f"  {w} worker(s): {rates[w]:8.1f} avatars/s  ({dt:.1f} s, {s.bytes_written / 1e6:,.1f} MB written, "
                  f"{s.bytes_written / args.n / 1e3:.1f} kB/avatar)")
            if not args.keep:
                shutil.rmtree(store, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if 1 in rates and 2 in rates:
        print(f"  2-worker speed-up: {rates[2] / rates[1]:.2f}x")
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"  peak RSS: parent {me:.0f} MB, largest worker {kids:.0f} MB")


_ONE_RUN = """
import resource, sys, tempfile, shutil
from pathlib import Path
from avatar.dataset import config_from_text, generate
n, shard = int(sys.argv[1]), int(sys.argv[2])
root = Path(tempfile.mkdtemp(prefix="bench_memory_"))
try:
    text = (f"n: {n}\\nseed: 0\\nsampler: prior\\nvary: ['*']\\n"
            f"outputs: {{vertices: {{dtype: float32}}, textures: {{size: 64}}}}\\nshard: {shard}\\n")
    generate(config_from_text(text, "<bench>", store=str(root / "m.zarr")), workers=2, progress=False)
finally:
    shutil.rmtree(root, ignore_errors=True)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def memory(ns: list[int], shard: int) -> None:
    """Peak RSS of whole 2-worker runs of each N, each in a fresh process."""
    import subprocess

    peaks = {}
    for n in ns:
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _ONE_RUN, str(n), str(shard)], capture_output=True, text=True,
                             check=True).stdout.split()
        parent, worker = float(out[-2]), float(out[-1])
        peaks[n] = max(parent, worker)
        print(f"  n = {n:>7,}: peak RSS parent {parent:6.0f} MB, largest worker {worker:6.0f} MB "
              f"({time.perf_counter() - t:.0f} s)")
    lo, hi = min(ns), max(ns)
    print(f"  peak RSS at n = {hi:,} / at n = {lo:,}: {peaks[hi] / peaks[lo]:.3f} (aim: at most 1.10)")


if __name__ == "__main__":
    main()
