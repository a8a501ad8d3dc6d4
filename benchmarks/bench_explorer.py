"""Benchmark: the explorer's server side of one update for one avatar (aim < 30 ms).

Each row is the median over ``--repeats`` edits, each to a new value:

  state edit   designer shape slider -> vertices + latent codes (+ reconstruction error)
               latent slider         -> decoded vertices + implied designer bars
               skin / tattoo slider  -> texture at --texture-size
  wire packing textured GLB, geometry only (texture image reused)
               textured GLB after a texture change (image re-encoded, JPEG)
               positions only (the untextured mesh's vertex update)
  end to end   state edit + packing + handing the message to viser (a running server,
               no browser), for the textured page and the untextured one

The latent model is the explorer's quick PCA (``--n-components`` of
``--n-avatars`` random avatars; fitted once and cached, like ``avatar explore``).

    python benchmarks/bench_explorer.py [--repeats 50] [--texture-size 512] [--cache-dir DIR]
"""
from __future__ import annotations

import argparse
import itertools

import avatar  # noqa: F401 - before numpy: it may choose OpenBLAS's kernel (avatar/__init__.py)
import numpy as np

from timing import median_time  # benchmarks/timing.py


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--texture-size", type=int, default=512)
    ap.add_argument("--n-components", type=int, default=16)
    ap.add_argument("--n-avatars", type=int, default=1000)
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()

    from avatar.explorer import Explorer, build_state
    from avatar.explorer.display import DisplayMesh, encode_image
    from avatar.threads import one_blas_thread

    rig = avatar.load_rig()
    state = build_state(rig, n_components=args.n_components, n_avatars=args.n_avatars, cache_dir=args.cache_dir,
                        texture_size=args.texture_size)
    r = args.repeats
    weights = itertools.cycle(np.linspace(5.0, 95.0, 37))
    codes = itertools.cycle(np.linspace(-2.5, 2.5, 41))
    tones = itertools.cycle(np.linspace(5.0, 95.0, 37))
    rows = []

    def row(label, fn):
        fn()  # warm caches (texel maps, BLAS)
        ms = median_time(fn, r) * 1e3
        rows.append((label, ms))
        print(f"{label:58s} {ms:7.2f} ms")
        return ms

    print(f"explorer update, one avatar ({rig.n_vertices} vertices, {args.n_components}-component PCA, "
          f"texture {args.texture_size}^2), median of {r}")
    print("-- state edit (avatar.explorer.state)")
    row("designer slider -> vertices + codes", lambda: state.set_slider("body.weight", float(next(weights))))
    row("latent slider -> vertices + implied bars", lambda: state.set_code(0, float(next(codes))))
    row("texture slider -> texture", lambda: state.set_slider("skin.tone", float(next(tones))))

    print("-- packing for the browser (avatar.explorer.display)")
    d = DisplayMesh(rig.template)
    image = encode_image(state.texture)
    with one_blas_thread():
        row("textured GLB, geometry only", lambda: d.glb(state.vertices, image))
        row("textured GLB + re-encoded texture", lambda: d.glb(state.vertices, encode_image(state.texture)))
        row("positions only (untextured mesh update)", lambda: np.asarray(state.vertices, np.float32).copy())
    print(f"   GLB size {len(d.glb(state.vertices, image)) / 1e6:.2f} MB (texture {len(image[0]) / 1e3:.0f} kB); "
          f"positions {state.vertices.astype(np.float32).nbytes / 1e6:.2f} MB")

    print("-- end to end on a running server (no browser attached)")
    ex = Explorer(state, port=8097)
    try:
        def designer_push():
            ex._push(texture_changed=bool(state.set_slider("body.weight", float(next(weights))).texture))

        def latent_push():
            ex._push(texture_changed=bool(state.set_code(0, float(next(codes))).texture))

        def texture_push():
            ex._push(texture_changed=bool(state.set_slider("skin.tone", float(next(tones))).texture))

        a = row("textured page: designer slider", designer_push)
        b = row("textured page: latent slider", latent_push)
        c = row("textured page: texture slider", texture_push)
        ex.textured = False
        ex._push()
        e = row("untextured page: designer slider (positions only)", designer_push)
        f = row("untextured page: latent slider (positions only)", latent_push)
    finally:
        ex.stop()
    worst = max(a, b, c)
    print(f"worst textured update {worst:.1f} ms ({'within' if worst < 30 else 'OVER'} the 30 ms aim); "
          f"untextured {max(e, f):.1f} ms")


if __name__ == "__main__":
    main()
