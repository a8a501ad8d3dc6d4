"""Benchmark: the rig audit of the humanoid rig (`avatar audit`), and its parts.

Prints the audit's wall time (median of repeats: these machines are shared),
how much of it is spent in rig.vertices / rig.textures on the perturbed rows
(the floor: the same rows evaluated once more; only sliders with effects are
evaluated for the mesh and only the texture's sliders for the texture), the time to draw the figures
and write the report, and the machine's load while measuring. The target is
"well under a minute" for the 83-slider rig at the default settings.

    python benchmarks/bench_audit.py [--samples 32] [--texture-size 128] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import avatar  # noqa: F401 - before numpy: it may choose OpenBLAS's kernel (avatar/__init__.py)
import numpy as np

from avatar.compare import audit as A
from avatar.compare.audit_page import write_audit
from timing import median_time  # benchmarks/timing.py


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--texture-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    rig = avatar.load_rig()
    A.audit_rig(rig, samples=2, texture_size=args.texture_size)   # warm caches (texel map, masks)
    load0 = os.getloadavg()[0]
    audit = None

    def run():
        nonlocal audit
        audit = A.audit_rig(rig, samples=args.samples, texture_size=args.texture_size)

    total = median_time(run, args.repeats)
    # the floor: the same perturbed rows through the rig, nothing else
    S = rig.sample(args.samples, 0)
    blocks = A.perturbations(rig.spec, S)
    geo = np.concatenate([A._rows(S, j, v) for j, v, _ in blocks if A.moves_mesh(rig.sliders[j])])
    pnt = np.concatenate([A._rows(S, j, v) for j, v, _ in blocks if A.paints(rig.sliders[j])])
    verts = median_time(lambda: [rig.vertices(geo[i:i + 512]) for i in range(0, len(geo), 512)], args.repeats)
    tex = median_time(lambda: [rig.textures(pnt[i:i + 512], args.texture_size)
                               for i in range(0, len(pnt), 512)], args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_audit(audit, tmp)
        report = time.perf_counter() - t
    load1 = os.getloadavg()[0]
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"sliders: {len(rig.sliders)}, random avatars: {args.samples}, perturbed rows: {len(geo)} for the "
          f"mesh, {len(pnt)} for the texture ({args.texture_size}^2)")
    print(f"audit_rig            : {total:6.2f} s  (median of {args.repeats})")
    print(f"  rig.vertices (rows): {verts:6.2f} s  ({len(geo) / verts:,.0f} rows/s)")
    print(f"  rig.textures (rows): {tex:6.2f} s")
    print(f"  the rest (stats)   : {max(total - verts - tex, 0):6.2f} s")
    print(f"figures + report     : {report:6.2f} s")
    print(f"total `avatar audit` : {total + report:6.2f} s   (target: well under 60 s)")
    print(f"peak memory          : {peak_gib:.2f} GiB; load average {load0:.1f} -> {load1:.1f} "
          f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
