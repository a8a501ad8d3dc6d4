"""Pose quality at every pose slider's extremes: volume, candy-wrapper collapse, self-intersection.

For three bodies (the default, the child preset, the heavy preset), each pose slider
is set to its minimum and its maximum alone, and the posed body is measured against
its rest pose:

- ``body``: change of the closed body's volume, in %;
- ``part``: change of the volume of the limb part next to the joint (the forearm for
  the elbow, the hand for the wrist, ...) as seen from the part's centroid, in %:
  skinning's candy-wrapper collapse shows here as a loss;
- ``inside``: body vertices that end up inside the body (a point 2 mm out along the
  vertex normal lies behind the nearest other surface): self-intersection, beyond the
  count at rest.

    python benchmarks/pose_quality.py [--bodies default,child,heavy]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import avatar  # noqa: F401 - before numpy: it may choose OpenBLAS's kernel (avatar/__init__.py)
import numpy as np

from avatar.body import assets
from avatar.body.template import vertex_normals
from avatar.spec.sliders import preset_vector

ROOT = Path(__file__).resolve().parents[1]
PART = {"shoulder_raise": "upper_arm", "shoulder_swing": "upper_arm", "elbow": "forearm",
        "forearm_twist": "forearm", "wrist": "hand", "fist": "hand", "hip_flex": "thigh",
        "hip_spread": "thigh", "knee": "shin", "ankle": "foot", "spine_bend": "abdomen",
        "spine_side": "abdomen", "spine_twist": "abdomen", "head_turn": "neck", "head_tilt": "neck",
        "head_nod": "neck"}


def volume(v: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def part_volume(v: np.ndarray, faces: np.ndarray, mask: np.ndarray) -> float:
    """Signed volume of the cones from the part's centroid to its faces (an open tube's enclosed volume)."""
    f = faces[mask[faces].all(axis=1)]
    o = v[mask].mean(axis=0)
    return volume(v - o, f)


def inside_count(v: np.ndarray, faces: np.ndarray) -> int:
    from scipy.spatial import cKDTree

    n = vertex_normals(v, faces)
    probe = v + 0.002 * n
    _, q = cKDTree(v).query(probe)
    return int(np.sum(np.einsum("ij,ij->i", probe - v[q], n[q]) < 0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bodies", default="default,child,heavy")
    args = ap.parse_args()
    rig = avatar.load_rig()
    f = rig.faces
    faces = f[(f < assets.N_BODY).all(axis=1)]
    names = rig.template.part_names
    print(f"{'slider':24s} {'value':>6s}  " + "  ".join(f"{b:>24s}" for b in args.bodies.split(",")))
    print(f"{'':24s} {'':6s}  " + "  ".join(f"{'body%  part%  inside':>24s}" for _ in args.bodies.split(",")))
    bodies = []
    for b in args.bodies.split(","):
        x = rig.defaults() if b == "default" else preset_vector(rig.spec, ROOT / "configs" / "avatars" / f"{b}.yaml")
        v0 = rig.vertices(x, posed=False)[: assets.N_BODY].astype(np.float64)
        bodies.append((x, v0, volume(v0, faces), inside_count(v0, faces)))
    worst = {"body": 0.0, "part": 0.0, "inside": 0}
    for j in rig.spec.pose_sliders:
        s = rig.sliders[j]
        key = s.name.split(".")[1].rsplit("_", 1)
        stem = key[0] if key[-1] in ("l", "r") else s.name.split(".")[1]
        side = "_" + key[-1] if key[-1] in ("l", "r") else "_l"
        part = PART[stem] + side if PART[stem] in ("upper_arm", "forearm", "hand", "thigh", "shin", "foot") \
            else PART[stem]
        mask = rig.template.parts[: assets.N_BODY] == names.index(part)
        for value in (s.min, s.max):
            cells = []
            for x, v0, vol0, in0 in bodies:
                y = x.copy()
                y[j] = value
                v = rig.vertices(y)[: assets.N_BODY].astype(np.float64)
                dv = 100 * (volume(v, faces) / vol0 - 1)
                dp = 100 * (part_volume(v, faces, mask) / part_volume(v0, faces, mask) - 1)
                extra = inside_count(v, faces) - in0
                worst["body"] = max(worst["body"], abs(dv))
                worst["part"] = min(worst["part"], dp)
                worst["inside"] = max(worst["inside"], extra)
                cells.append(f"{dv:+6.2f} {dp:+6.1f} {extra:7d}")
            print(f"{s.name:24s} {value:6.0f}  " + "  ".join(f"{c:>24s}" for c in cells))
    print(f"worst: body volume {worst['body']:.2f}%, part volume {worst['part']:+.1f}%, "
          f"{worst['inside']} vertices inside")


if __name__ == "__main__":
    main()
