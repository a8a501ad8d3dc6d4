"""Write avatar meshes as GLB, OBJ or PLY (a thin layer over arrays).

GLB and OBJ carry UVs, so they hold the seam-split export vertices
(``template.export_index`` maps each back to its solid vertex). PLY holds the
watertight solid itself, vertex for vertex, with each vertex's part label.
Every file records the slider values that made it, so an exported avatar can
be rebuilt exactly. Files are written to a temporary name and renamed, so an
interrupted export never leaves half a file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .template import Template

FORMATS = (".glb", ".obj", ".ply")
SKIN_RGBA = (0.80, 0.64, 0.54, 1.0)  # a neutral base colour until textures exist


def write_mesh(path: str | Path, vertices: np.ndarray, template: Template,
               sliders: dict[str, object] | None = None) -> Path:
    """Write one avatar. vertices : (V, 3) solid positions in metres."""
    path = Path(path)
    suffix = path.suffix.lower()
    writers = {".glb": _glb_bytes, ".obj": _obj_bytes, ".ply": _ply_bytes}
    if suffix not in writers:
        raise ValueError(f"{path}: unknown mesh format {suffix!r}; use one of {', '.join(FORMATS)}")
    data = writers[suffix](np.asarray(vertices, np.float64), template, sliders or {})
    _atomic_write(path, data)
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _glb_bytes(vertices, template: Template, sliders) -> bytes:
    import trimesh
    from trimesh.visual.material import PBRMaterial
    from trimesh.visual.texture import TextureVisuals

    material = PBRMaterial(name="skin", baseColorFactor=SKIN_RGBA, metallicFactor=0.0, roughnessFactor=0.7)
    mesh = trimesh.Trimesh(vertices[template.export_index], template.export_faces,
                           visual=TextureVisuals(uv=template.export_uv, material=material), process=False)
    scene = trimesh.Scene({"avatar": mesh})
    extras = {"avatar": {"template": template.name, "sliders": _plain(sliders)}}

    def add_extras(tree: dict) -> None:
        tree["extras"] = extras

    return trimesh.exchange.gltf.export_glb(scene, include_normals=True, tree_postprocessor=add_extras)


def _obj_bytes(vertices, template: Template, sliders) -> bytes:
    v = vertices[template.export_index]
    lines = [f"# avatar: template {template.name}, {len(v)} vertices (seam-split), {len(template.faces)} faces"]
    lines += [f"# slider {k} = {val}" for k, val in sliders.items()]
    lines += [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v]
    lines += [f"vt {a:.6f} {b:.6f}" for a, b in template.export_uv]
    lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in template.export_faces + 1]
    return ("\n".join(lines) + "\n").encode()


def _ply_bytes(vertices, template: Template, sliders) -> bytes:
    n, f = len(vertices), len(template.faces)
    header = ["ply", "format binary_little_endian 1.0", f"comment avatar template {template.name}"]
    header += [f"comment slider {k} = {v}" for k, v in sliders.items()]
    header += [f"element vertex {n}", "property float x", "property float y", "property float z",
               "property uchar part", f"element face {f}", "property list uchar int vertex_indices",
               "end_header"]
    vert = np.empty(n, dtype=[("xyz", "<f4", 3), ("part", "u1")])
    vert["xyz"], vert["part"] = vertices, template.parts
    face = np.empty(f, dtype=[("n", "u1"), ("idx", "<i4", 3)])
    face["n"], face["idx"] = 3, template.faces
    return ("\n".join(header) + "\n").encode() + vert.tobytes() + face.tobytes()


def _plain(sliders: dict) -> dict:
    """JSON-safe readable slider values."""
    return json.loads(json.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in sliders.items()}))
