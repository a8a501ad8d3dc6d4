"""The ``avatar fit-body`` command: the sliders that reproduce a mesh, as a preset.

    avatar fit-body scan.ply -o found.yaml            # any mesh trimesh reads (.ply .obj .glb .stl), in metres
    avatar fit-body body.obj -o found.yaml --rest     # keep the rest pose (default: fit the pose if needed)

The preset it writes is one ``avatar make`` and ``avatar validate`` take. It prints the residuals,
the rigid transform (for a mesh of another topology) and the sliders the mesh cannot pin down.
:func:`register` adds it to the main parser (``avatar/cli/main.py``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from avatar.cli.errors import UsageError

MESH_SUFFIXES = (".ply", ".obj", ".glb", ".gltf", ".stl", ".off")


def register(sub, add) -> None:
    """Add ``fit-body``; ``add(name, func, help_)`` makes a subparser with ``--rig``."""
    sp = add("fit-body", cmd_fit_body, "Find the sliders (and pose) that reproduce a body mesh: our topology "
                                       "or any scan; writes them as a preset YAML.")
    sp.add_argument("mesh", help="the mesh (.ply, .obj, .glb, .stl), in metres")
    sp.add_argument("-o", "--output", required=True, help="the preset YAML to write")
    pose = sp.add_mutually_exclusive_group()
    pose.add_argument("--posed", dest="posed", action="store_const", const=True, default=None,
                      help="fit the pose sliders too")
    pose.add_argument("--rest", dest="posed", action="store_const", const=False,
                      help="keep the rest pose (default: fit the pose only if the rest pose does not fit)")
    sp.add_argument("--free", nargs="+", help="only these sliders (names or patterns such as 'torso.*')")


def load_scan(path: Path):
    import trimesh

    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise UsageError(f"{path}: unknown mesh format {path.suffix!r}; use one of {', '.join(MESH_SUFFIXES)}")
    try:
        mesh = trimesh.load(str(path), force="mesh", process=False)
    except Exception as err:  # trimesh raises many kinds for a damaged file
        raise UsageError(f"{path}: cannot read the mesh ({type(err).__name__}: {err})") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.vertices) == 0 or len(mesh.faces) == 0:
        raise UsageError(f"{path}: no triangles in the file")
    return mesh


def cmd_fit_body(args) -> int:
    from avatar.cli.errors import check_output
    from avatar.cli.rig import rig_from_args, write_preset
    from avatar.fit import fit_body

    out = check_output(args.output, "preset file")
    mesh = load_scan(Path(args.mesh))
    rig = rig_from_args(args)
    try:
        fit = fit_body(mesh, rig, posed=args.posed, free=args.free)
    except ValueError as err:
        raise UsageError(f"{args.mesh}: {err}") from None
    write_preset(out, rig, fit.values, name=f"fitted to {Path(args.mesh).name}")
    kind = "our topology" if fit.surface_error_mm is None else "another topology"
    print(f"{args.mesh}: {len(mesh.vertices)} vertices ({kind}); fitted {len(fit.free)} sliders"
          f"{' and the pose' if fit.posed else ''} in {fit.iterations} iterations")
    print(f"  vertex error: mean {fit.vertex_error_mm:.3f} mm, max {fit.max_vertex_error_mm:.3f} mm")
    if fit.surface_error_mm is not None:
        R, t = fit.transform[:3, :3], fit.transform[:3, 3]
        angle = np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0)))
        print(f"  surface distance (mesh to fitted body): mean {fit.surface_error_mm:.3f} mm")
        print(f"  rigid transform rig -> mesh: rotation {angle:.2f} deg, translation "
              f"({t[0]:.4f}, {t[1]:.4f}, {t[2]:.4f}) m")
    names = fit.unidentifiable
    if names:
        print(f"  not pinned down by the mesh ({len(names)}, kept nearest their defaults): {', '.join(names)}")
    print(f"wrote {out}")
    return 0
