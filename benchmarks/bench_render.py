"""Benchmark: avatar.render frames/s next to a bare pyrender loop on the same mesh.

``avatar.render`` does the whole job for a batch: slider values -> vertices,
textures, normals, one upload per avatar, the camera framed and moved for
each view, and every frame read back. The bare loop is the floor pyrender
itself sets: one scene, one mesh node (the first avatar, textured, uploaded
once), the same three lights, and N frames rendered while only the camera
moves through the same five views. Both use the process's one
OffscreenRenderer and render the same number of frames, interleaved. Prints
frames/s for both and their ratio (aim >= 0.8) at each size; medians over
repeats, since these machines are shared and noisy.

    python benchmarks/bench_render.py [--n 8] [--sizes 128,512] [--repeats 3]

``--scene`` measures the image-dataset path instead: 64x64 renders per second of
``avatar.dataset.generate`` with the scene sliders varied (the ``camera`` view,
``vary: [scene.*]``), on 2 worker processes, for 400 avatars; the figure counts
everything a dataset task does (sliders, vertices, textures, the render, zarr
writes and checksums) and the workers' start-up.

    python benchmarks/bench_render.py --scene [--n 400] [--workers 2] [--size 64]
"""
from __future__ import annotations

import argparse
import math
import time

import avatar  # noqa: F401 - before numpy: it may choose OpenBLAS's kernel (avatar/__init__.py)
import numpy as np

from avatar.rendering import core as rendering

VIEWS = ("front", "three_quarter", "side", "back", "face")


def median_times(fns, repeats: int) -> list[float]:
    """Median seconds of each function, the functions interleaved so they share the noise."""
    for fn in fns:
        fn()  # warm up: shaders, first upload
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t_list in zip(fns, times):
            t = time.perf_counter()
            fn()
            t_list.append(time.perf_counter() - t)
    return [float(np.median(t)) for t in times]


def bare_loop(rig, values: np.ndarray, size: int, frames: int):
    """A function rendering ``frames`` frames of one uploaded mesh, moving only the camera."""
    import pyrender

    renderer = rendering._renderer(size, size, None)   # the process's one OffscreenRenderer
    tmpl = rig.template
    v = rig.vertices(values).astype(np.float32)
    normals = rendering._geometry(tmpl).normals(v)
    e = tmpl.export_index
    tex = pyrender.Texture(source=rig.textures(values, size=rendering.default_texture_size(size, size)), source_channels="RGB")
    material = pyrender.MetallicRoughnessMaterial(baseColorTexture=tex, metallicFactor=0.0,
                                                  roughnessFactor=0.75)
    prim = pyrender.Primitive(positions=v[e], normals=normals[e], texcoord_0=tmpl.export_uv,
                              indices=tmpl.export_faces, material=material)
    scene = pyrender.Scene(bg_color=(0.93, 0.93, 0.95, 1.0), ambient_light=np.full(3, rendering.AMBIENT))
    scene.add(pyrender.Mesh([prim]))
    cam = scene.add(pyrender.PerspectiveCamera(yfov=math.radians(30), aspectRatio=1.0), pose=np.eye(4))
    for _, u, c, i in rendering.LIGHTS:
        pose = np.eye(4)
        pose[:3, :3] = rendering._light_basis(u)
        scene.add(pyrender.DirectionalLight(color=np.array(c), intensity=i), pose=pose)
    # the same camera placements avatar.render uses for this avatar, cycled
    body = v.T.astype(np.float64)
    head = np.ascontiguousarray(body[:, rendering._geometry(tmpl).head])
    poses = [rendering._frame(rendering.VIEWS[name], body, head, perspective=True, frame="auto", aspect=1.0,
                              tan_half=math.tan(math.radians(15)), world_height=2.2).pose for name in VIEWS]

    def run():
        for k in range(frames):
            scene.set_pose(cam, poses[k % len(poses)])
            renderer.render(scene)

    return run


def scene_dataset_rate(n: int = 400, workers: int = 2, size: int = 64) -> tuple[float, float]:
    """(renders per second, seconds) of generating n avatars' ``camera`` renders, the scene varied."""
    import tempfile

    import yaml

    from avatar.dataset import config_from_text, generate

    with tempfile.TemporaryDirectory() as tmp:
        text = yaml.safe_dump({"name": "bench-scene", "n": n, "seed": 0, "sampler": "prior",
                               "vary": ["body.*", "scene.*"], "shard": 64,
                               "outputs": {"renders": {"views": ["camera"], "size": size}}})
        config = config_from_text(text, "<bench>", store=f"{tmp}/bench.zarr")
        summary = generate(config, workers=workers, progress=False)
    return n / summary.seconds, summary.seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, help="avatars per batch (each rendered in 5 views; default 8), or with "
                                          "--scene avatars generated (default 400)")
    ap.add_argument("--sizes", default="128,512")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backend", choices=rendering.BACKENDS)
    ap.add_argument("--scene", action="store_true", help="the image-dataset path: 64^2 camera renders/s, scene varied")
    ap.add_argument("--workers", type=int, default=2, help="--scene: worker processes")
    ap.add_argument("--size", type=int, default=64, help="--scene: image pixels")
    args = ap.parse_args()
    if args.scene:
        n = args.n or 400
        rate, seconds = scene_dataset_rate(n, args.workers, args.size)
        _, twice = scene_dataset_rate(2 * n, args.workers, args.size)
        print(f"{n} avatars, the scene varied (vary: [body.*, scene.*], the camera view), {args.size}^2 renders on "
              f"{args.workers} workers: {seconds:.1f} s, {rate:.1f} renders/s (start-up and writes included); "
              f"{2 * n} avatars: {twice:.1f} s, so {n / max(twice - seconds, 1e-9):.1f} renders/s once started")
        return
    args.n = args.n or 8

    rig = avatar.load_rig()
    S = rig.sample(args.n, seed=0)
    backend = rendering.choose_backend(args.backend)
    frames = args.n * len(VIEWS)
    textured = hasattr(rig, "textures")
    print(f"backend {backend}; {args.n} avatars x {len(VIEWS)} views = {frames} frames per run; "
          f"{len(rig.template.export_faces)} faces, {'textured' if textured else 'flat colour'}; "
          f"median of {args.repeats}")
    print(f"{'size':>6} {'avatar.render':>15} {'bare pyrender':>15} {'ratio':>7}")
    for size in (int(s) for s in args.sizes.split(",")):
        ours, bare = median_times([lambda: avatar.render(rig, S, views=VIEWS, size=size, backend=args.backend),
                                   bare_loop(rig, S[0], size, frames)], args.repeats)
        print(f"{size:>4}^2 {frames / ours:>11.1f} f/s {frames / bare:>11.1f} f/s {bare / ours:>7.2f}")


if __name__ == "__main__":
    main()
