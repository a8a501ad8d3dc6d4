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

from avatar.body.template import Template

FORMATS = (".glb", ".obj", ".ply", ".mhm")
SKIN_RGBA = (0.80, 0.64, 0.54, 1.0)  # base colour of a mesh exported without its texture


def write_mesh(path: str | Path, vertices: np.ndarray, template: Template,
               sliders: dict[str, object] | None = None, texture: np.ndarray | None = None,
               spec=None, skin=None, morphs=None) -> list[Path]:
    """Write one avatar; returns the files written.

    vertices : (V, 3) solid positions in metres; texture : (H, W, 3) uint8 or
    None. GLB embeds the texture; OBJ writes ``<name>.mtl`` and
    ``<name>.png`` beside itself; PLY has no texture (the solid only); MHM
    writes the sliders as a MakeHuman 1.1 model file (``spec``: their rig
    spec, default the default rig).

    skin : an :class:`avatar.gltf.Skin` (skeleton and bound pose) makes a
    rigged GLB (docs/rigging.md); ``vertices`` are then the *rest* shape, the
    bind pose, and the pose travels in the joints. Only GLB holds a skin.

    morphs : an :class:`avatar.morphs.Morphs` adds its named morph targets (docs/morphs.md);
    ``vertices`` are then its base shape (every target at weight 0). Only GLB holds morphs.
    """
    from avatar.checks import check_finite

    path = Path(path)
    check_finite(vertices, str(path))  # a NaN or infinite vertex is never written
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unknown mesh format {suffix!r}; use one of {', '.join(FORMATS)}")
    vertices, sliders = np.asarray(vertices, np.float64), sliders or {}
    if skin is not None and suffix != ".glb":
        raise ValueError(f"{path}: only GLB holds a skeleton; write a .glb for a rigged avatar")
    if morphs is not None and suffix != ".glb":
        raise ValueError(f"{path}: only GLB holds morph targets; write a .glb")
    if suffix == ".glb":
        write_atomic(path, _glb_bytes(vertices, template, sliders, texture, skin, morphs))
        return [path]
    if suffix == ".ply":
        write_atomic(path, _ply_bytes(vertices, template, sliders))
        return [path]
    if suffix == ".mhm":  # MakeHuman 1.1 model file: the slider values, not the mesh
        from avatar.body.mhm import write_mhm

        return [write_mhm(path, sliders, spec)]
    written = []
    if texture is not None:
        png, mtl = path.with_suffix(".png"), path.with_suffix(".mtl")
        write_atomic(png, _png_bytes(texture))
        write_atomic(mtl, _mtl_bytes(png.name))
        written += [png, mtl]
    write_atomic(path, _obj_bytes(vertices, template, sliders, path.with_suffix(".mtl").name if texture is not None else None))
    return [path, *written]


def textured_mesh(vertices: np.ndarray, template: Template, texture: np.ndarray | None = None):
    """A seam-split ``trimesh.Trimesh`` with UVs and a PBR material (textured if given)."""
    import trimesh
    from PIL import Image
    from trimesh.visual.material import PBRMaterial
    from trimesh.visual.texture import TextureVisuals

    image = Image.fromarray(np.asarray(texture, np.uint8)) if texture is not None else None
    material = PBRMaterial(name="skin", baseColorFactor=(1.0, 1.0, 1.0, 1.0) if image else SKIN_RGBA,
                           baseColorTexture=image, metallicFactor=0.0, roughnessFactor=0.7)
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64)[template.export_index], template.export_faces,
                           visual=TextureVisuals(uv=template.export_uv, material=material), process=False)
    mesh.metadata["solid_index"] = template.export_index
    return mesh


def atomic_write(path: str | Path, write) -> None:
    """Write a file through ``write(f)`` under a temporary name, then rename it into place.

    An interrupted or failing write leaves neither a half file nor the temporary one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def _glb_bytes(vertices, template: Template, sliders, texture=None, skin=None, morphs=None) -> bytes:
    """A GLB of the seam-split mesh; rigged (joints, skin, JOINTS_0/WEIGHTS_0) when ``skin`` is given,
    with morph targets when ``morphs`` (an :class:`avatar.morphs.Morphs`) is."""
    import trimesh

    scene = trimesh.Scene({"avatar": textured_mesh(vertices, template, texture)})
    extras = {"avatar": {"template": template.name, "sliders": _plain(sliders)}}

    def add_extras(tree: dict) -> None:
        tree["extras"] = extras
        tree.setdefault("asset", {})["generator"] = "avatar (trimesh)"  # no URL: the web creator holds none

    glb = trimesh.exchange.gltf.export_glb(scene, include_normals=True, tree_postprocessor=add_extras)
    if skin is not None:
        from avatar.gltf import add_skin

        sk, index = skin.skeleton, template.export_index
        glb = add_skin(glb, sk.names, sk.parents, skin.bound, sk.influences[index], sk.weights[index])
    if morphs is not None:
        from avatar.gltf import add_morphs
        from avatar.morphs import export_targets

        positions, normals = export_targets(morphs, template)
        glb = add_morphs(glb, morphs.names, positions, normals, morphs.weights, morphs.extras)
    return glb


def _obj_bytes(vertices, template: Template, sliders, mtl_name: str | None = None) -> bytes:
    v = vertices[template.export_index]
    lines = [f"# avatar: template {template.name}, {len(v)} vertices (seam-split), {len(template.faces)} faces"]
    lines += [f"# slider {k} = {val}" for k, val in sliders.items()]
    if mtl_name:
        lines += [f"mtllib {mtl_name}", "usemtl skin"]
    lines += [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v]
    lines += [f"vt {a:.6f} {b:.6f}" for a, b in template.export_uv]
    lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in template.export_faces + 1]
    return ("\n".join(lines) + "\n").encode()


def _png_bytes(texture: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(texture, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _mtl_bytes(png_name: str) -> bytes:
    return ("newmtl skin\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\n"
            f"Ns 10.0\nillum 1\nmap_Kd {png_name}\n").encode()


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


def probe_writable(folder: str | Path, tag: str = "probe") -> None:
    """Create ``folder`` if needed and write and remove one empty file there; OSError if that fails.

    Called before long jobs, so a read-only or missing target fails at once, not after the work.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".avatar-{tag}-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()


# -- rigged GLB: a rig's avatar with its skeleton (docs/rigging.md) --------------
SWEEP_FRAMES, SWEEP_FPS = 49, 24.0  # min -> max -> min in 2 s; the odd count puts max on the middle frame


def rig_skin(rig, values):
    """(rest vertices (V, 3) float64, :class:`avatar.gltf.Skin`) of one avatar of ``rig``."""
    from avatar.gltf import Skin

    x = rig.values(values)
    return rig.vertices(x, posed=False).astype(np.float64), Skin(rig.posing.skeleton, rig.bound(x))


def readable_values(rig, x) -> dict:
    return {s.name: s.readable(v) for s, v in zip(rig.sliders, x)}


def sweep(lo: float, hi: float, frames: int) -> np.ndarray:
    """(frames,) values from ``lo`` up to ``hi`` and back down, linearly (a triangle wave)."""
    t = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    return lo + (hi - lo) * (1.0 - np.abs(2.0 * t - 1.0))


def pose_sweep_glb(rig, values, slider: str, frames: int = SWEEP_FRAMES, fps: float = SWEEP_FPS,
                   texture_size: int | None = 1024) -> bytes:
    """A rigged GLB whose one animation sweeps pose slider ``slider`` min -> max -> min.

    Keyframes are ``frames`` poses ``1 / fps`` s apart; each joint whose rotation changes gets a
    LINEAR rotation channel, and the root a translation channel (the floor shift). The file's
    static pose is the first frame (the slider at its minimum); POSITION is the rest shape.
    ``texture_size`` None: no texture (the base colour).
    """
    from avatar.gltf import add_animation, joint_transforms, quaternions

    posing = rig.posing
    if slider not in rig.slider_names:
        raise ValueError(f"no slider {slider!r}")
    j = rig.slider_names.index(slider)
    if j not in set(posing.columns.tolist()):
        raise ValueError(f"{slider!r} is not a pose slider (a pose sweep turns bones)")
    if frames < 2:
        raise ValueError("a pose sweep needs at least 2 frames")
    s = rig.sliders[j]
    base = np.array(rig.values(values), np.float64)
    X = np.repeat(base[None], frames, axis=0)
    X[:, j] = sweep(s.min, s.max, frames)
    bounds = rig.bounds(X)
    sk = posing.skeleton
    rot, trans = zip(*(joint_transforms(sk.parents, b) for b in bounds))
    rot, trans = np.stack(rot), np.stack(trans)                    # (F, J, 3, 3), (F, J, 3)
    moving = np.flatnonzero(np.abs(rot - rot[:1]).max(axis=(0, 2, 3)) > 1e-9)
    root = int(np.flatnonzero(sk.parents < 0)[0])
    vertices = rig.vertices(X[0], posed=False).astype(np.float64)
    texture = rig.textures(X[0], texture_size) if texture_size else None
    readable = readable_values(rig, X[0])
    from avatar.gltf import Skin

    glb = _glb_bytes(vertices, rig.template, readable, texture, Skin(sk, bounds[0]))
    q = quaternions(rot[:, moving])
    times = np.arange(frames) / float(fps)
    return add_animation(glb, f"{slider} sweep", times, {sk.names[b]: q[:, i] for i, b in enumerate(moving)},
                         trans[:, root])
