"""The ``avatar`` dataset commands: generate, verify, export.

    avatar generate configs/datasets/faces-10k.yaml --workers 2   # local worker processes (default: one per core)
    avatar generate configs/datasets/body-1m.yaml --scheduler tcp://host:8786   # an existing Dask cluster
    avatar verify data/faces-10k.zarr                             # completeness and checksums
    avatar export data/faces-10k.zarr --index 0:5 -o samples/     # GLB files of chosen samples
    avatar export data/portraits-64.zarr --format shapes3d -o portraits.h5   # renders and factors (docs/images.md)
    avatar export data/portraits-64.zarr --format npz -o portraits.npz       # dSprites-style

:func:`register` adds them to the main parser (``avatar/cli.py``). Bad input
exits 2 with one line per problem; ``verify`` exits 1 when shards are missing
or damaged, listing them.
"""
from __future__ import annotations

from avatar.cli.errors import EXIT_INTERRUPTED, UsageError, check_output, os_error_line, usage

import sys
from pathlib import Path

import numpy as np

EXIT_DAMAGED = 1
MESH_FORMATS = ("glb", "obj", "ply")
IMAGE_FORMATS = ("shapes3d", "npz")


def register(sub, add) -> None:
    """Add the dataset subcommands; ``add(name, func, help_)`` makes a subparser with ``--rig``."""
    sp = add("generate", cmd_generate, "Generate (or resume) a dataset of avatars from a dataset YAML into a "
                                       "Zarr store.")
    sp.add_argument("config", help="dataset YAML (configs/datasets/*.yaml)")
    sp.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    sp.add_argument("--scheduler", metavar="ADDRESS", help="use an existing Dask cluster, e.g. tcp://host:8786 "
                                                           "(its workers must see the store path)")
    sp.add_argument("--store", help="write here instead of the config's store:")
    sp.add_argument("--overwrite", action="store_true",
                    help="replace a store made from a different config (default: refuse)")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")

    sp = add("verify", cmd_verify, "Check a dataset store: every shard present and matching its checksums. "
                                   "Exit 0 if complete, 1 if shards are missing or damaged.")
    sp.add_argument("store")
    sp.add_argument("--repair", action="store_true",
                    help="forget damaged shards so that rerunning `avatar generate` rewrites them")

    sp = add("export", cmd_export, "Write chosen samples of a dataset as mesh files (GLB by default), or its "
                                   "renders and factors as a 3dshapes HDF5 or dSprites npz file.")
    sp.add_argument("store")
    sp.add_argument("--index", help="mesh formats: samples: 0:5, 7, 3,9,12, -1 (Python slices, comma-separated)")
    sp.add_argument("-o", "--output", required=True, help="output folder (mesh formats) or file (shapes3d, npz)")
    sp.add_argument("--format", default="glb", help=f"{', '.join(MESH_FORMATS)} (meshes) or "
                                                    f"{', '.join(IMAGE_FORMATS)} (images and factor labels)")
    sp.add_argument("--texture-size", type=int,
                    help="texture pixels (default: the stored textures, else 512 computed from the sliders)")
    sp.add_argument("--view", help="shapes3d, npz: the stored view to export (default: the first)")
    sp.add_argument("--size", type=int, default=64, help="shapes3d, npz: image pixels (the stored size or a "
                                                         "divisor of it, box-filtered; default 64)")
    sp.add_argument("--factors", default="varied", help="shapes3d, npz: varied (the sliders the dataset "
                                                        "varies, default) or all")
    sp.add_argument("--bins", type=int, default=16, help="npz: classes per continuous factor (default 16)")



def cmd_generate(args) -> int:
    from avatar.dataset import DatasetError, generate, load_config

    if args.workers is not None and args.workers < 1:
        raise usage("--workers must be at least 1")
    if args.workers is not None and args.scheduler:
        raise usage("give --workers or --scheduler, not both")
    config = load_config(args.config, store=args.store)
    if args.rig:
        raise usage("a dataset's rig is set by `rig:` in its config, not by --rig")
    try:
        summary = generate(config, workers=args.workers, scheduler=args.scheduler, overwrite=args.overwrite,
                           progress=not args.no_progress)
    except DatasetError as err:
        raise usage(str(err)) from None
    except KeyboardInterrupt:  # the workers are stopped already (generate's finally)
        print("avatar generate: interrupted; completed shards are kept: rerun the same command to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print(summary)
    return 0


def cmd_verify(args) -> int:
    from avatar.dataset import store as st

    from avatar.dataset.generate import resolve_store

    path = Path(args.store)
    try:
        real = resolve_store(path)
    except st.DatasetError as err:
        raise usage(str(err)) from None
    if not real.exists():
        raise usage(f"{path}: no such store")
    try:
        report = st.verify(real)
    except ValueError as err:
        raise usage(str(err)) from None
    if report["metadata"]:  # nothing else of the store can be trusted: say so and stop
        for why in report["metadata"]:
            print(f"  damaged metadata: {why}")
        print(f"{path}: the store's metadata is damaged, so its shards were not checked; regenerate it with "
              "`avatar generate ... --overwrite`" + ("; --repair cannot fix metadata" if args.repair else ""))
        return EXIT_DAMAGED
    attrs = st.read_attrs(real)
    n, shard = attrs["n"], attrs["shard"]

    def rows(k):
        return f"avatars {k * shard}-{min(n, (k + 1) * shard) - 1}"

    total = report["n_shards"]
    print(f"{path}: {len(report['ok'])} of {total} shards complete and intact ({n:,} avatars, "
          f"{attrs['card']['sampler']} sampler, seed {attrs['seed']})")
    for k, why in report["missing"].items():
        print(f"  missing shard {k} ({rows(k)}): {why}")
    for k, why in report["damaged"].items():
        print(f"  damaged shard {k} ({rows(k)}): {why}")
    for name, why in report["static"].items():
        print(f"  damaged array {name}: {why}")
    bad = list(report["missing"]) + list(report["damaged"])
    if not bad and not report["static"]:
        print("ok")
        return 0
    if bad:
        print(f"bad shards: {' '.join(map(str, sorted(bad)))}")
    if args.repair and bad:
        # forget every shard that is not complete and intact: damaged ones, and "missing" ones whose
        # checksum row is there but invalid (truncated, zeroed), so that generate rewrites them all
        from avatar.dataset.lock import store_lock

        try:
            with store_lock(real, "avatar verify --repair"):
                for k in bad:
                    st.checksum_file(real, k).unlink(missing_ok=True)
        except st.DatasetError as err:
            raise usage(str(err)) from None
        except OSError as err:
            raise usage(f"{path}: cannot repair: {os_error_line(err)} (is the store read-only?); nothing "
                        "was changed that generate would trust") from None
        print(f"forgot {len(bad)} shard(s) that are not complete and intact; rerun `avatar generate` with "
              "the same config to rewrite them")
    elif bad:
        print("rerun `avatar generate` with the same config to finish missing shards"
              + ("; damaged ones need `avatar verify --repair` first" if report["damaged"] else ""))
    return EXIT_DAMAGED


def parse_index(text: str, n: int) -> list[int]:
    """``"0:5,7,-1"`` -> [0, 1, 2, 3, 4, 7, n-1]; ValueError for bad items or out-of-range indices."""
    out: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            if ":" in item:
                parts = [int(p) if p.strip() else None for p in item.split(":")]
                if len(parts) > 3:
                    raise ValueError
                out.extend(range(n)[slice(*parts)])
            else:
                i = int(item)
                if not -n <= i < n:
                    raise IndexError(i)
                out.append(i % n)
        except IndexError as err:
            raise ValueError(f"index {err.args[0]} is outside the dataset (0 to {n - 1})") from None
        except ValueError:
            raise ValueError(f"bad index {item!r}: use 5, 0:10, 0:100:10 or -1, comma-separated") from None
    if not out:
        raise ValueError(f"--index {text!r} selects no samples (the dataset has {n})")
    return out


def cmd_export(args) -> int:
    from avatar.dataset import store as st
    from avatar.export import write_mesh

    if args.rig:
        raise usage("export uses the rig stored in the dataset, not --rig")
    if args.format not in MESH_FORMATS + IMAGE_FORMATS:
        from avatar.spec.config import did_you_mean

        raise usage(f"unknown --format {args.format!r}{did_you_mean(args.format, MESH_FORMATS + IMAGE_FORMATS)}; use "
                    f"{', '.join(MESH_FORMATS)} (meshes) or {', '.join(IMAGE_FORMATS)} (images and factor labels)")
    if args.format in IMAGE_FORMATS:
        return _export_images(args)
    given = [f"--{k}" for k, v in (("view", args.view), ("factors", args.factors != "varied" or None),
                                    ("bins", args.bins != 16 or None), ("size", args.size != 64 or None)) if v]
    if given:
        raise usage(f"{', '.join(given)} apply to --format {' or '.join(IMAGE_FORMATS)}, not {args.format}")
    if args.index is None:
        raise usage(f"--format {args.format} writes one mesh file per sample: give --index (e.g. 0:5)")
    path = Path(args.store)
    if st.read_attrs(path) is None:
        raise usage(f"{path}: not an avatar dataset store")
    try:
        ds = st.open(path, check=False)
    except st.DatasetError as err:  # damaged metadata: shapes and dtypes cannot be trusted
        raise usage(str(err)) from None
    try:
        idx = parse_index(args.index, len(ds))
    except ValueError as err:
        raise usage(str(err)) from None
    not_done, shard = set(ds.missing_shards), ds.attrs["shard"]
    missing = {i for i in idx if i // shard in not_done}
    if missing:
        raise usage(f"samples {', '.join(map(str, sorted(missing)[:10]))} are in shards that are not "
                     "generated yet; finish the dataset first")
    if args.texture_size is not None and not 8 <= args.texture_size <= 4096:
        raise usage("--texture-size must be 8 to 4096")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise usage(f"{out}: exists and is not a folder; -o names the folder the files go into")
    check_output(out / f"{idx[0]:06d}.{args.format}", "exported files")  # before any work
    rig = ds.load_rig()
    out.mkdir(parents=True, exist_ok=True)
    V = ds.group["vertices"] if "vertices" in ds.group else None
    want_tex = args.format != "ply"
    T = ds.group["textures"] if want_tex and "textures" in ds.group and args.texture_size is None else None
    size = args.texture_size or 512
    # batches bounded in memory (~256 MB of vertices and textures); each is read and computed at once
    row_bytes = rig.n_vertices * 3 * 8 + (size * size * 3 if want_tex else 0)
    batch = max(1, min(1024, (256 << 20) // row_bytes))
    for start in range(0, len(idx), batch):
        for i, values, verts, tex in _export_rows(ds, rig, idx[start:start + batch], V, T, want_tex, size):
            readable = {s.name: s.readable(v) for s, v in zip(rig.sliders, values)}
            readable["dataset_index"] = int(i)
            for p in write_mesh(out / f"{i:06d}.{args.format}", np.asarray(verts, np.float64), rig.template,
                                readable, tex):
                print(f"wrote {p}")
    return 0


def _export_images(args) -> int:
    """``export --format shapes3d|npz``: the store's renders and factor values in one file."""
    from avatar.dataset import store as st
    from avatar.dataset.export import EXPORTERS, FACTORS

    if args.index is not None:
        raise usage(f"--format {args.format} exports every sample; --index is for the mesh formats")
    if args.texture_size is not None:
        raise usage(f"--texture-size is for the mesh formats, not {args.format}")
    if args.factors not in FACTORS:
        raise usage(f"--factors must be {' or '.join(FACTORS)}, not {args.factors!r}")
    if not 8 <= args.size <= 4096:
        raise usage(f"--size must be 8 to 4096 pixels, got {args.size}")
    if not 1 <= args.bins <= 1 << 20:
        raise usage(f"--bins must be 1 to {1 << 20:,}, got {args.bins}")
    path, out = Path(args.store), Path(args.output)
    want = {"shapes3d": (".h5", ".hdf5"), "npz": (".npz",)}[args.format]
    if out.suffix.lower() not in want:
        raise usage(f"{out}: --format {args.format} writes a {' or '.join(want)} file")
    check_output(out, f"{args.format} file")
    if st.read_attrs(path) is None:
        raise usage(f"{path}: not an avatar dataset store")
    if args.format == "shapes3d":
        try:
            import h5py  # noqa: F401
        except ImportError:
            raise usage("--format shapes3d needs h5py: pip install h5py") from None
    try:
        meta = EXPORTERS[args.format](path, out, view=args.view, size=args.size, factors=args.factors,
                                      bins=args.bins)
    except st.DatasetError as err:
        raise usage(str(err)) from None
    names = ", ".join(r["name"] for r in meta["factors"][:6]) + (", ..." if len(meta["factors"]) > 6 else "")
    print(f"wrote {out}: {meta['n']:,} images {meta['image_size']}x{meta['image_size']} (view {meta['view']}), "
          f"{len(meta['factors'])} factors ({names})")
    return 0


def _export_rows(ds, rig, rows: list[int], V, T, want_tex: bool, size: int):
    """(index, sliders, vertices, texture or None) of ``rows``, in their order: each stored array read
    once for the whole batch (its distinct rows, sorted), the missing ones computed in one batched call."""
    from avatar.threads import one_blas_thread

    uniq, inv = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
    S = ds.group["sliders"].get_orthogonal_selection((uniq, slice(None)))
    with one_blas_thread():
        verts = V.get_orthogonal_selection(uniq) if V is not None else rig.vertices(S)
        tex = None
        if want_tex:
            tex = T.get_orthogonal_selection(uniq) if T is not None else rig.textures(S, size)
    for i, j in zip(rows, inv.ravel()):
        yield i, S[j], verts[j], None if tex is None else tex[j]


def demo_dataset(out: Path, rig_path=None, n: int = 2000, workers: int | None = None) -> None:
    """The demo's small dataset: n avatars, vertices, 64^2 textures, a 128^2 front render and the body
    measurements, in ``out/dataset.zarr``."""
    from avatar.dataset import DatasetError, generate

    config = demo_config(out, rig_path, n)
    try:
        summary = generate(config, workers=workers, overwrite=True, progress=sys.stderr.isatty())
    except DatasetError as err:
        raise usage(str(err)) from None
    print(summary)


# the demo varies the macros, the head and nose, the appearance and 12 pose sliders (a nuisance): about
# 90 of the rig's sliders, so that fitting and comparing stay a few minutes on 2 cores
DEMO_VARY = "[body.*, head.*, nose.*, skin.*, hair.*, tattoo.*, pose.shoulder_*, pose.elbow_*, pose.spine_*, pose.head_*]"


def demo_config(out: Path, rig_path=None, n: int = 2000):
    """The demo dataset's config. Paths never pass through YAML unquoted: the store is given
    directly, and the rig as a JSON string (valid YAML), so ``#``, ``:`` or ``[`` in them stay literal."""
    import json

    from avatar.dataset import config_from_text

    text = (f"name: demo\nrig: {json.dumps(str(rig_path or 'humanoid'))}\nn: {n}\nseed: 0\nsampler: prior\n"
            f"vary: {DEMO_VARY}\ncorrelate: {{body.weight: {{body.muscle: 0.5}}}}\n"
            "outputs: {vertices: {dtype: float32}, textures: {size: 64}, renders: {views: [front], size: 128}, "
            "measurements: {}}\n"
            "shard: 256\n")
    return config_from_text(text, "<demo dataset>", store=str(Path(out) / "dataset.zarr"), base_dir=Path("."))
