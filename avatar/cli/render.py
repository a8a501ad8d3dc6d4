"""The ``avatar`` rendering commands: render, sheet, traverse, turntable.

    avatar render configs/avatars/knight.yaml -o knight.png --views front,three_quarter,side --size 512
    avatar render configs/avatars/knight.yaml -o k.png --views camera --scene camera_yaw=30,framing=bust
    avatar sheet --n 24 --seed 0 -o gallery.png
    avatar traverse nose.scale_horiz --steps 7 -o nose.png [--preset FILE]
    avatar turntable configs/avatars/knight.yaml -o knight.gif

:func:`register` adds them to the main parser (``avatar/cli.py``). When no
OpenGL backend can start, :class:`avatar.rendering.core.RenderBackendError` gives
one message naming the packages to install and the CLI exits 2.
"""
from __future__ import annotations

from avatar.checks import available_memory
from avatar.cli.errors import UsageError, check_output, usage

from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def register(sub, add) -> None:
    """Add the rendering subcommands; ``add(name, func, help_)`` makes a subparser with ``--rig``."""
    sp = add("render", cmd_render, "Render an avatar (a preset YAML, or --seed for a random one) to an "
                                   "image, its views side by side.")
    sp.add_argument("preset", nargs="?", help="preset YAML (omit it and give --seed for a random avatar)")
    sp.add_argument("-o", "--output", required=True, help="image file (.png, .jpg, .webp)")
    sp.add_argument("--views", default="front,three_quarter,side",
                    help="comma-separated: front, three_quarter, side, back, face, profile, camera (the "
                         "camera the scene sliders set, see --scene), or yaw degrees")
    sp.add_argument("--size", type=int, default=512, help="pixels per view (square)")
    sp.add_argument("--seed", type=int, help="render random avatar --index of this seed instead of a preset")
    sp.add_argument("--index", type=int, default=0)
    sp.add_argument("--pose", help="a pose preset (a-pose, t-pose, relaxed, walk, seated, or a YAML file)")
    _options(sp)

    sp = add("sheet", cmd_sheet, "Contact sheet: a grid of random avatars (and presets), each labelled.")
    sp.add_argument("-o", "--output", required=True, help="image file (.png, .jpg, .webp)")
    sp.add_argument("--n", type=int, default=24, help="random avatars")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--presets", nargs="*", default=[], metavar="FILE", help="preset YAMLs shown first")
    sp.add_argument("--view", default="front", help="one view name or yaw angle")
    sp.add_argument("--size", type=int, default=256, help="pixels per cell")
    sp.add_argument("--cols", type=int, help="cells per row (default: near square)")
    _options(sp)

    sp = add("traverse", cmd_traverse, "One slider from min to max, the rest at default (or at --preset).")
    sp.add_argument("slider", help="dotted slider name, e.g. nose.scale_horiz")
    sp.add_argument("-o", "--output", required=True, help="image file (.png, .jpg, .webp)")
    sp.add_argument("--steps", type=int, default=7)
    sp.add_argument("--preset", help="preset YAML holding the other sliders")
    sp.add_argument("--pose", help="a pose preset for the other pose sliders (t-pose, walk, ...)")
    sp.add_argument("--views", help="comma-separated views, one row each (default: face,profile for "
                                    "face sliders, front otherwise)")
    sp.add_argument("--size", type=int, default=256, help="pixels per cell")
    _options(sp, frame_default="auto")

    sp = add("turntable", cmd_turntable, "A looping GIF of the camera circling an avatar; with --pose-sweep, "
                                         "a rigged GLB animating one pose slider instead.")
    sp.add_argument("preset", nargs="?", help="preset YAML (omit it and give --seed for a random avatar; "
                                              "with --pose-sweep, omit both for the default avatar)")
    sp.add_argument("-o", "--output", required=True, help="GIF file (a .glb with --pose-sweep)")
    sp.add_argument("--pose-sweep", metavar="SLIDER",
                    help="write a rigged GLB whose animation sweeps this pose slider min -> max -> min "
                         "(e.g. pose.elbow_l; docs/rigging.md)")
    sp.add_argument("--frames", type=int, help="frames (default: 36; 49 keyframes for --pose-sweep)")
    sp.add_argument("--fps", type=float, help="frames per second (default: 12; 24 for --pose-sweep)")
    sp.add_argument("--texture-size", type=int, default=1024, help="--pose-sweep: texture pixels (0: none)")
    sp.add_argument("--size", type=int, default=384)
    sp.add_argument("--pitch", type=float, default=8.0, help="camera elevation in degrees")
    sp.add_argument("--seed", type=int)
    sp.add_argument("--index", type=int, default=0)
    _options(sp, frame=False)


def _options(sp, frame: bool = True, frame_default: str = "auto") -> None:
    sp.add_argument("--projection", choices=("perspective", "orthographic"), default="perspective")
    sp.add_argument("--background", help="colour name or #rrggbb for every avatar (default: the scene "
                                         "sliders' background, #eceef1 at their defaults)")
    sp.add_argument("--scene", metavar="NAME=VALUE,...",
                    help="scene sliders for every avatar shown, by name or role: camera_yaw=30,framing=bust,"
                         "light_azimuth=-40 (docs/images.md); the `camera` view shows the camera they set")
    sp.add_argument("--backend", choices=("egl", "osmesa"), help="OpenGL platform (default: $AVATAR_GL, "
                                                                 "else EGL, then OSMesa)")
    if frame:
        sp.add_argument("--frame", choices=("auto", "fixed"), default=frame_default,
                        help="auto: fit each avatar; fixed: one scale for all (sizes compare)")



def _check(path: str, suffixes=IMAGE_SUFFIXES) -> Path:
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise usage(f"{out}: unknown image format {out.suffix!r}; use one of {', '.join(suffixes)}")
    return check_output(out, "image")  # unwritable: say so before rendering anything


def check_memory(what: str, images: int, size: int, n_avatars: int, n_sliders: int) -> None:
    """Refuse, with the numbers, a request whose pictures would not fit in memory.

    A sheet or strip holds every rendered image (``images`` of ``size``² RGB) and the picture they
    are laid out in (as many bytes again), plus the slider vectors; half the available memory is the
    most a command may plan to take, leaving room for the renderer and the rig."""
    need = 2 * images * size * size * 3 + n_avatars * n_sliders * 8
    have = available_memory()
    if need > have // 2:
        raise usage(f"{what} would need about {need / 2**30:,.1f} GiB of memory "
                    f"({images:,} images of {size}x{size} and the picture they make); "
                    f"{have / 2**30:,.1f} GiB are available: ask for fewer or smaller images")


def _check_size(size: int) -> None:
    if not 16 <= size <= 4096:
        raise usage(f"--size must be 16 to 4096 pixels, got {size}")


def _views(text: str) -> list:
    from avatar.rendering.core import as_view

    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise usage("no views given")
    try:
        return [as_view(v) for v in names]
    except ValueError as err:
        raise usage(str(err)) from None


def _kw(args) -> dict:
    kw = {"projection": args.projection, "background": args.background, "backend": args.backend}
    if getattr(args, "frame", None):
        kw["frame"] = args.frame
    from avatar.rendering.core import to_rgb, choose_backend

    try:
        if args.background is not None:
            to_rgb(args.background)
    except ValueError as err:
        raise usage(f"--background: {err}") from None
    choose_backend(args.backend)  # no OpenGL: say so before any work is done
    return kw


def _rig(args):
    from avatar.body.rig import load_rig

    return load_rig(args.rig)


def _one_avatar(args, rig) -> tuple[np.ndarray, str]:
    """(P,) values and a name from a preset path or --seed/--index."""
    if args.preset and args.seed is not None:
        raise usage("give a preset or --seed, not both")
    from avatar.spec.pose import with_pose

    pose = getattr(args, "pose", None)
    if args.preset:
        values = rig.preset(args.preset)
        return with_pose(rig.spec, values, pose), Path(args.preset).stem
    if args.seed is None:
        raise usage("give a preset YAML, or --seed (and --index) for a random avatar")
    if args.seed < 0 or args.index < 0:
        raise usage("--seed and --index must be >= 0")
    return with_pose(rig.spec, rig.sample(1, seed=args.seed, start=args.index)[0], pose), f"seed {args.seed} #{args.index}"


def _scene(args, rig, values: np.ndarray) -> np.ndarray:
    """``values`` ((P,) or (n, P)) with ``--scene``'s settings on every row (ConfigError: exit 2)."""
    from avatar.spec.scene import with_scene

    return with_scene(rig.spec, values, getattr(args, "scene", None))


def _save(out: Path, image) -> None:
    from avatar.rendering.pictures import save_image

    save_image(out, image)
    print(f"wrote {out}")


# -- commands ----------------------------------------------------------------
def cmd_render(args) -> int:
    from avatar.rendering.core import render

    out = _check(args.output)
    _check_size(args.size)
    views = _views(args.views)
    rig = _rig(args)
    check_memory(f"{len(views):,} views", len(views), args.size, 1, len(rig.sliders))
    kw = _kw(args)
    values, _ = _one_avatar(args, rig)
    imgs = render(rig, _scene(args, rig, values), views=views, size=args.size, **kw)[0]
    _save(out, np.concatenate(list(imgs), axis=1))
    return 0


def sheet_image(rig, items: list[tuple[str, np.ndarray]], view="front", size: int = 256,
                cols: int | None = None, **kw):
    """A labelled contact sheet (PIL image) of ``items``: (label, (P,) values) pairs."""
    from avatar.rendering.pictures import contact_sheet
    from avatar.rendering.core import render

    S = np.stack([v for _, v in items])
    imgs = render(rig, S, views=(view,), size=size, **kw)[:, 0]
    return contact_sheet(imgs, [name for name, _ in items], cols=cols)


def pose_sheet(rig, size: int = 256, view: str = "three_quarter"):
    """Every pose preset (columns) on a child, a heavy and a tall body (rows), at one scale."""
    from avatar.body.rig import ROOT
    from avatar.spec.pose import pose_names, with_pose

    items = []
    for label, file, extra in POSE_BODIES:
        x = rig.preset(ROOT / "configs" / "avatars" / file)
        for k, v in extra.items():
            x[rig.spec.index(k)] = v
        items += [(f"{label}, {p}", with_pose(rig.spec, x, p)) for p in pose_names()]
    return sheet_image(rig, items, view, size, cols=len(pose_names()), frame="fixed")


def cmd_sheet(args) -> int:
    out = _check(args.output)
    _check_size(args.size)
    if args.n < 0 or args.seed < 0:
        raise usage("--n and --seed must be >= 0")
    if args.cols is not None and args.cols < 1:
        raise usage("--cols must be >= 1")
    view = _views(args.view)[0]
    rig = _rig(args)
    n_cells = args.n + len(args.presets)
    check_memory(f"a sheet of {n_cells:,} avatars", n_cells, args.size, n_cells, len(rig.sliders))
    kw = _kw(args)
    items = [(Path(p).stem, _scene(args, rig, rig.preset(p))) for p in args.presets]
    items += [(f"seed {args.seed} #{i}", v)
              for i, v in enumerate(_scene(args, rig, rig.sample(args.n, seed=args.seed)))]
    if not items:
        raise usage("nothing to show: give --n > 0 or --presets")
    _save(out, sheet_image(rig, items, view, args.size, args.cols, **kw))
    return 0


def cmd_traverse(args) -> int:
    from avatar.rendering.pictures import traversal_strip

    out = _check(args.output)
    _check_size(args.size)
    views = _views(args.views) if args.views else None
    rig = _rig(args)
    if args.slider not in rig.slider_names:
        from avatar.spec.config import did_you_mean

        raise usage(f"no slider {args.slider!r}{did_you_mean(args.slider, rig.slider_names)}")
    s = rig.sliders[rig.slider_names.index(args.slider)]
    if args.steps < 2 and s.kind not in ("bool", "categorical"):
        raise usage("--steps must be >= 2")
    n_views = len(views) if views else 2
    steps = {"bool": 2, "categorical": len(s.categories or ())}.get(s.kind, args.steps)  # those take all values
    check_memory(f"a strip of {steps:,} steps", steps * n_views, args.size, steps, len(rig.sliders))
    kw = _kw(args)
    base = rig.preset(args.preset) if args.preset else None
    if args.pose:
        from avatar.spec.pose import with_pose

        base = with_pose(rig.spec, rig.defaults() if base is None else base, args.pose)
    if args.scene:
        base = _scene(args, rig, rig.defaults() if base is None else base)
    strip = traversal_strip(rig, args.slider, args.steps, base, views, args.size,
                            base_name=Path(args.preset).stem if args.preset else None, **kw)
    _save(out, strip)
    return 0


def cmd_turntable(args) -> int:
    if args.pose_sweep:
        return _pose_sweep(args)
    from avatar.rendering.pictures import save_gif, turntable

    if Path(args.output).suffix.lower() == ".glb":
        raise usage(f"{args.output}: a turntable is a GIF; a .glb needs --pose-sweep SLIDER")
    out = _check(args.output, (".gif",))
    _check_size(args.size)
    frames, fps = args.frames if args.frames is not None else 36, args.fps if args.fps is not None else 12.0
    if not 1 <= frames <= 720:
        raise usage("--frames must be 1 to 720")
    if not 0 < fps <= 100:
        raise usage("--fps must be above 0 and at most 100")
    rig = _rig(args)
    check_memory(f"a turntable of {frames:,} frames", frames, args.size, 1, len(rig.sliders))
    kw = _kw(args)
    values, _ = _one_avatar(args, rig)
    images = turntable(rig, _scene(args, rig, values), frames=frames, size=args.size, pitch=args.pitch, **kw)
    save_gif(out, images, fps=fps)
    print(f"wrote {out}")
    return 0


def _pose_sweep(args) -> int:
    """``turntable --pose-sweep SLIDER -o X.glb``: a rigged GLB animating one pose slider (no rendering)."""
    from avatar.export import SWEEP_FPS, SWEEP_FRAMES, atomic_write, pose_sweep_glb

    out = Path(args.output)
    if out.suffix.lower() != ".glb":
        raise usage(f"{out}: --pose-sweep writes a rigged, animated GLB; give -o NAME.glb")
    check_output(out, "GLB file")
    frames = args.frames if args.frames is not None else SWEEP_FRAMES
    fps = args.fps if args.fps is not None else SWEEP_FPS
    if not 2 <= frames <= 720:
        raise usage("--frames must be 2 to 720 for a pose sweep")
    if not 0 < fps <= 100:
        raise usage("--fps must be above 0 and at most 100")
    if not (args.texture_size == 0 or 16 <= args.texture_size <= 4096):
        raise usage(f"--texture-size must be 0 (none) or 16 to 4096 pixels, got {args.texture_size}")
    rig = _rig(args)
    if args.pose_sweep not in rig.slider_names:
        from avatar.spec.config import did_you_mean

        raise usage(f"no slider {args.pose_sweep!r}{did_you_mean(args.pose_sweep, rig.slider_names)}")
    if rig.slider_names.index(args.pose_sweep) not in set(rig.posing.columns.tolist()):
        pose = [n for n in rig.slider_names if n.startswith("pose.")]
        raise usage(f"{args.pose_sweep!r} is not a pose slider; --pose-sweep takes one of "
                    f"{', '.join(pose[:6])}{', ...' if len(pose) > 6 else ''}")
    values = rig.defaults() if args.preset is None and args.seed is None else _one_avatar(args, rig)[0]
    glb = pose_sweep_glb(rig, values, args.pose_sweep, frames, fps, args.texture_size or None)
    atomic_write(out, lambda f: f.write(glb))
    print(f"wrote {out} ({frames} keyframes at {fps:g} fps, {args.pose_sweep} min -> max -> min)")
    return 0


# -- the main job's pictures ---------------------------------------------------
DEMO_TRAVERSALS = ("body.age", "body.gender", "body.weight", "nose.scale_vert", "pose.elbow_l")
POSE_BODIES = (("child", "child.yaml", {}), ("heavy", "heavy.yaml", {}),
               ("tall", "woman.yaml", {"body.height": 95}))  # the bodies poses.png shows every pose on


def demo_pictures(rig, presets: list, S: np.ndarray, seed: int, out: Path, size: int = 256) -> None:
    """``out/gallery.png`` (presets, then random avatars) and ``out/traverse_<slider>.png``.

    presets : [(name, (P,) slider values)]; S : (n, P) random avatars.
    """
    from avatar.rendering.pictures import traversal_strip

    items = list(presets) + [(f"seed {seed} #{i}", v) for i, v in enumerate(S)]
    # one scale for every avatar, so that a child is a child's size beside the adults
    _save(out / "gallery.png", sheet_image(rig, items, "front", size, frame="fixed"))
    if rig.spec.pose_sliders:
        _save(out / "poses.png", pose_sheet(rig, size=size))
    for name in DEMO_TRAVERSALS:
        if name in rig.slider_names:
            # statures compare only at one scale; the rest fit each avatar
            frame = "fixed" if name in ("body.height", "body.age") else "auto"
            _save(out / f"traverse_{name}.png", traversal_strip(rig, name, 7, size=size, frame=frame))
