"""Benchmark: rig.textures for 1,000 avatars at 512^2, against the cost of filling the bytes.

The floor is np.empty + fill of the same number of bytes (what writing the
output costs at all). Prints textures/s for both and their ratio; aim is at
least 200 textures/s on 2 cores. Medians over repeats. Half of the sampled
avatars carry a tattoo (the rig's default pattern weights).

    python benchmarks/bench_texture.py [--n 1000] [--size 512] [--repeats 3]
"""
from __future__ import annotations

import argparse

import avatar  # noqa: F401 - before numpy: it may choose OpenBLAS's kernel (avatar/__init__.py)
import numpy as np

from timing import median_time  # benchmarks/timing.py


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rig = avatar.load_rig()
    S = rig.sample(args.n, seed=0)
    rig.textures(S[:1], args.size)  # the per-size texel map is built once per process
    tattooed = (S[:, rig.slider_names.index("tattoo.pattern")] > 0).mean()
    ours = median_time(lambda: rig.textures(S, args.size), args.repeats)

    def fill():
        out = np.empty((args.n, args.size, args.size, 3), np.uint8)
        out.fill(128)
        return out

    floor = median_time(fill, args.repeats)
    print(f"textures: {args.n} at {args.size}^2 ({tattooed:.0%} with a tattoo)")
    print(f"rig.textures      : {args.n / ours:8.0f} textures/s  (median {ours:.2f} s; aim >= 200)")
    print(f"np.empty + fill   : {args.n / floor:8.0f} textures/s  (median {floor:.3f} s; the floor)")
    print(f"ratio floor/ours  : {ours / floor:8.1f}x slower than writing the bytes")


if __name__ == "__main__":
    main()
