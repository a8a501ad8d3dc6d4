"""``avatar measure``: body measurements of presets, .mhm files or a whole dataset, in cm and kg."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from avatar.cli.errors import UsageError, check_output

MESH_SUFFIXES = (".ply", ".obj", ".glb", ".gltf", ".stl", ".off")
BATCH = 2048  # dataset rows measured at a time (their rest vertices: about 350 MB)


def register(sub, add) -> None:
    sp = add("measure", cmd_measure, "Body measurements (cm, kg) of presets, .mhm files or every avatar of a "
                                     "dataset store; --json, --csv, --picture (docs/measure.md).")
    sp.add_argument("inputs", nargs="+", help="preset YAML or .mhm files, meshes (.ply .obj .glb .stl: our "
                                              "topology measured as it is, any other fitted first), or one "
                                              "dataset store (.zarr)")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.add_argument("--csv", help="write one row per avatar to this CSV file")
    sp.add_argument("--picture", help="draw the measurements on the (first) avatar, front and side: a PNG")
    sp.add_argument("--only", help="comma-separated measurement names (default: all)")


def cmd_measure(args) -> int:
    from avatar.dataset import store as st

    for path in (args.csv, args.picture):
        if path:
            check_output(path, "output file")
    stores = [p for p in args.inputs if st.read_attrs(Path(p)) is not None]
    if stores and len(args.inputs) > 1:
        raise UsageError("give one dataset store, or preset files, not both")
    if stores:
        labels, M, rig, values = _dataset(Path(stores[0]), args)
    else:
        labels, M, rig, values = _presets(args)
    names = list(M)
    if args.csv:
        _write_csv(Path(args.csv), labels, names, M)
        print(f"wrote {args.csv} ({len(labels):,} avatars, {len(names)} measurements)", file=sys.stderr)
    if args.picture:
        from avatar.export import atomic_write
        from avatar.measure.picture import measurement_picture

        img = measurement_picture(rig, values, names=names)
        atomic_write(Path(args.picture), lambda fh: img.save(fh, format="PNG"))
        print(f"wrote {args.picture}", file=sys.stderr)
    if args.json:
        print(json.dumps({"units": {k: rig.ruler.spec[k].unit for k in names},
                          "avatars": {lab: {k: round(float(M[k][i]), 3) for k in names}
                                      for i, lab in enumerate(labels)}} if len(labels) <= 100 else
                         {"units": {k: rig.ruler.spec[k].unit for k in names}, "n": len(labels),
                          "summary": {k: _stats(M[k]) for k in names}}, indent=1))
    elif not args.csv or len(labels) <= 20:
        print(_table(rig, labels, names, M))
    return 0


def _names(rig, only):
    if not only:
        return None
    names = [n.strip() for n in only.split(",") if n.strip()]
    for n in names:
        try:
            rig.ruler.spec[n]
        except KeyError as err:
            raise UsageError(f"--only: {err.args[0]}") from None
    return names


def _presets(args):
    from avatar.body.rig import load_rig

    rig = load_rig(args.rig)
    for p in args.inputs:
        if not Path(p).is_file():
            raise UsageError(f"{p}: no such preset file (or dataset store)")
    names = _names(rig, args.only) or rig.ruler.names
    M = {k: np.empty(len(args.inputs)) for k in names}
    S = []
    for i, p in enumerate(args.inputs):  # presets (their measurement targets solved), or meshes
        picture = bool(args.picture) and i == 0
        x, V = _mesh(rig, Path(p), picture) if Path(p).suffix.lower() in MESH_SUFFIXES else (rig.preset(p), None)
        S.append(x)
        m = rig.measure(vertices=V, names=names) if V is not None else rig.measure(x, names=names)
        for k in names:
            M[k][i] = m[k]
    return [Path(p).stem for p in args.inputs], M, rig, S[0]


def _mesh(rig, path: Path, picture: bool = False):
    """(slider values, vertices or None) of a mesh file: our topology as it is (fitted too only for a
    picture, which draws the fitted rest shape), another topology fitted first and measured at rest."""
    from avatar.cli.fit import load_scan
    from avatar.fit import fit_body

    mesh = load_scan(path)
    n, t = len(mesh.vertices), rig.template
    V = None
    if n in (rig.n_vertices, t.n_body) and np.array_equal(mesh.faces, rig.faces[: len(mesh.faces)]):
        V = np.asarray(mesh.vertices, np.float64)
    elif n == len(t.export_index) and len(mesh.faces) == len(t.export_faces):  # our GLB/OBJ export: seams split
        V = np.zeros((rig.n_vertices, 3))
        V[t.export_index] = mesh.vertices
    if V is not None:  # measured as it is (in its own pose)
        print(f"{path}: our topology, measured as it is", file=sys.stderr)
        return (fit_body(V, rig).values if picture else rig.defaults()), V
    fit = fit_body(mesh, rig)
    print(f"{path}: {n:,} vertices of another topology: fitted first (mean surface distance "
          f"{fit.surface_error_mm:.1f} mm); the fitted body is measured at rest", file=sys.stderr)
    return fit.values, None


def _dataset(path: Path, args):
    from avatar.dataset.store import Dataset

    ds = Dataset(path)
    rig = ds.load_rig()
    names = _names(rig, args.only) or rig.ruler.names
    S = np.asarray(ds.sliders, np.float64)
    done = np.isfinite(S).all(axis=1)  # incomplete shards read as NaN sliders
    stored = ds.measurements
    M = {k: np.full(len(S), np.nan) for k in names}
    if stored is not None and set(names) <= set(ds.measurement_names):
        for k in names:
            M[k] = stored[:, ds.measurement_names.index(k)]
        print(f"{path}: the store's measurements ({len(S):,} avatars)", file=sys.stderr)
    else:
        rows = np.flatnonzero(done)
        for i in range(0, len(rows), BATCH):
            part = rig.measure(S[rows[i:i + BATCH]], names=names)
            for k in names:
                M[k][rows[i:i + BATCH]] = part[k]
        print(f"{path}: measured {len(rows):,} avatars from their sliders", file=sys.stderr)
    first = int(np.flatnonzero(done)[0]) if done.any() else 0
    return [str(i) for i in range(len(S))], M, rig, S[first]


def _stats(v: np.ndarray) -> dict:
    v = v[np.isfinite(v)]
    return {"mean": round(float(v.mean()), 3), "sd": round(float(v.std()), 3), "min": round(float(v.min()), 3),
            "max": round(float(v.max()), 3)} if len(v) else {}


def _table(rig, labels, names, M) -> str:
    spec = rig.ruler.spec
    if len(labels) > 20:  # a dataset: one line per measurement
        head = f"{'measurement':24s} {'unit':6s} {'mean':>8s} {'sd':>7s} {'min':>8s} {'max':>8s}"
        rows = [head] + [f"{spec[k].label:24s} {spec[k].unit:6s} " + " ".join(
            f"{_stats(M[k]).get(s, float('nan')):{w}.1f}" for s, w in (("mean", 8), ("sd", 7), ("min", 8), ("max", 8)))
            for k in names]
        return "\n".join(rows)
    width = max(8, *(len(lab) for lab in labels))
    head = f"{'measurement':24s} {'unit':6s} " + " ".join(f"{lab:>{width}s}" for lab in labels)
    rows = [head] + [f"{spec[k].label:24s} {spec[k].unit:6s} " + " ".join(f"{M[k][i]:{width}.1f}"
                                                                           for i in range(len(labels)))
                     for k in names]
    return "\n".join(rows)


def _write_csv(path: Path, labels, names, M) -> None:
    import csv
    import io

    from avatar.export import atomic_write

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["avatar", *names])
    for i, lab in enumerate(labels):
        w.writerow([lab, *(f"{M[k][i]:.4f}" for k in names)])
    atomic_write(path, lambda fh: fh.write(buf.getvalue().encode()))


def demo_measurements(rig, presets, out: Path) -> None:
    """The demo's measurements: every preset's in ``out/measurements.csv``, one drawn in ``measurements.png``."""
    from avatar.export import atomic_write
    from avatar.measure.picture import measurement_picture

    names = [n for n, _ in presets]
    S = np.stack([x for _, x in presets])
    M = rig.measure(S)
    _write_csv(out / "measurements.csv", names, list(M), M)
    shown = names.index("woman") if "woman" in names else 0
    img = measurement_picture(rig, S[shown], size=640)
    atomic_write(out / "measurements.png", lambda fh: img.save(fh, format="PNG"))
    print(f"wrote {out / 'measurements.csv'} and {out / 'measurements.png'}")
