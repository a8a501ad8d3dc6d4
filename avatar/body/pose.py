"""Posing a blended body: bone frames, forward kinematics and linear blend skinning, batched over avatars.

After the shape blend (:mod:`avatar.body.rig`) has given each avatar its rest
vertices ``V`` and its rest joints, posing is five steps:

1. joints   H, T   (n, J, 3)     rest heads and tails: the skeleton's regressor on the blended body
2. frames   R      (n, J, 3, 3)  Blender's bone frames: local y from head to tail by the smallest
                                 rotation from Blender's +y, then the bone's roll about it
3. local    Q      (n, J, 3, 3)  each bone's rotation in its own frame, Euler XYZ (Blender's default
                                 order: X first), from the pose sliders' angles
4. world    dA, t  (n, J, 3, 3), (n, J, 3)
                                 the skinning transform G_b = G_parent o (R_b Q_b R_b^T about H_b),
                                 kept as a difference from the identity, ``G_b = (I + dA_b, t_b)``, so
                                 that bones at rest give exactly zero
5. skin     V' = V + sum_k w_k (dA_k V + t_k)    the 4 largest weights per vertex (skeleton.py)

Frames are computed in Blender's axes (MPFB's rolls and pose files are written
there: z up, the figure facing -y) and turned into ours (+y up, facing +z):
``blender = C @ ours`` with ``C`` a +90 degree turn about x.
"""
from __future__ import annotations

import numpy as np

C = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # ours -> Blender's axes
AXES = {"x": 0, "y": 1, "z": 2}


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Stacked 3x3 products: each is its own small product, so an avatar's bytes do not depend on the batch."""
    return np.matmul(a, b)


def _mv(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.matmul(a, v[..., None])[..., 0]


def bone_frames(heads: np.ndarray, tails: np.ndarray, rolls: np.ndarray) -> np.ndarray:
    """Rest frames of bones, Blender's rule, in our axes.

    heads, tails : (..., J, 3) float  bone ends
    rolls        : (J,) float         radians about each bone's axis
    returns      : (..., J, 3, 3) float64, columns the bone's x, y, z axes (y from head to tail)
    """
    d = _mv(C, tails - heads)
    d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    # smallest rotation taking +y onto d: I + [v]x + [v]x^2 / (1 + y), v = y_axis x d = (z, 0, -x);
    # for y < 0, 1 + y = (x^2 + z^2) / (1 - y) without cancellation (Blender's vec_roll_to_mat3 uses a
    # series there for the same reason)
    alt = x * x + z * z
    theta = np.where(y >= 0, 1.0 + y, alt / (1.0 - y))
    k = 1.0 / np.maximum(theta, 1e-300)
    R = np.empty(d.shape + (3,))
    R[..., 0, 0], R[..., 0, 1], R[..., 0, 2] = 1 - x * x * k, x, -x * z * k
    R[..., 1, 0], R[..., 1, 1], R[..., 1, 2] = -x, y, -z
    R[..., 2, 0], R[..., 2, 1], R[..., 2, 2] = -x * z * k, z, 1 - z * z * k
    flip = (y < 0) & (alt <= 1e-24)  # straight down Blender's -y: half a turn about z, as Blender does
    R[flip] = np.diag([-1.0, -1.0, 1.0])
    c, s = np.cos(rolls), np.sin(rolls)
    roll = np.zeros((len(rolls), 3, 3))
    roll[:, 0, 0], roll[:, 0, 2], roll[:, 1, 1], roll[:, 2, 0], roll[:, 2, 2] = c, s, 1.0, -s, c
    return _mm(C.T, _mm(R, roll))


def euler_xyz(angles: np.ndarray) -> np.ndarray:
    """(..., 3) radians about x, y, z -> (..., 3, 3) rotations ``Rz @ Ry @ Rx`` (x applied first)."""
    cx, cy, cz = np.cos(angles[..., 0]), np.cos(angles[..., 1]), np.cos(angles[..., 2])
    sx, sy, sz = np.sin(angles[..., 0]), np.sin(angles[..., 1]), np.sin(angles[..., 2])
    R = np.empty(angles.shape + (3,))
    R[..., 0, 0], R[..., 0, 1], R[..., 0, 2] = cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx
    R[..., 1, 0], R[..., 1, 1], R[..., 1, 2] = sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx
    R[..., 2, 0], R[..., 2, 1], R[..., 2, 2] = -sy, cy * sx, cy * cx
    return R


def skinning_transforms(parents: np.ndarray, levels, heads: np.ndarray, frames: np.ndarray,
                        local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 4: each bone's world transform from rest to pose, as ``(I + dA, t)``.

    parents : (J,) int, -1 at the root    levels : bone indices by depth (parents first)
    heads   : (n, J, 3)    frames : (n, J, 3, 3)    local : (n, J, 3, 3) rotations in the bones' frames
    returns : dA (n, J, 3, 3), t (n, J, 3), float64
    """
    eye = np.eye(3)
    turned = np.flatnonzero(np.any(local != eye, axis=(0, 2, 3)))  # the bones some avatar turns
    dL = np.zeros(frames.shape)
    tL = np.zeros(heads.shape)
    F = frames[:, turned]
    dL[:, turned] = _mm(_mm(F, local[:, turned] - eye), np.swapaxes(F, -1, -2))  # R (Q - I) R^T: 0 at rest
    tL[:, turned] = -_mv(dL[:, turned], heads[:, turned])                        # a rotation about the head
    is_turned = np.zeros(len(parents), bool)
    is_turned[turned] = True
    dA, t = np.empty_like(dL), np.empty_like(tL)
    for level in levels:
        p = parents[level]
        if p[0] < 0:  # the root level
            dA[:, level], t[:, level] = dL[:, level], tL[:, level]
            continue
        still, own = level[~is_turned[level]], level[is_turned[level]]
        dA[:, still], t[:, still] = dA[:, parents[still]], t[:, parents[still]]  # carried by the parent
        if len(own):
            dAp, tp, dl, tl = dA[:, parents[own]], t[:, parents[own]], dL[:, own], tL[:, own]
            dA[:, own] = dAp + dl + _mm(dAp, dl)      # (I + dAp)(I + dl) - I
            t[:, own] = tp + tl + _mv(dAp, tl)        # (I + dAp) tl + tp
    return dA, t


def skin(V: np.ndarray, dA: np.ndarray, t: np.ndarray, influences: np.ndarray, weights: np.ndarray,
         out: np.ndarray | None = None) -> np.ndarray:
    """Step 5: linear blend skinning, ``V + sum_k w_k (dA_k V + t_k)``.

    V          : (n, N, 3) float32 rest vertices
    dA, t      : (n, J, 3, 3), (n, J, 3) from :func:`skinning_transforms`
    influences : (N, 4) int     weights : (N, 4) float32, rows summing to 1
    returns    : (n, N, 3) float32 (``out`` may be ``V`` itself)
    """
    from avatar.body._skin_kernel import skin_kernel

    G = np.concatenate([dA, t[..., None]], axis=-1).astype(np.float32).reshape(len(V), -1, 12)
    out = np.empty_like(V) if out is None else out
    skin_kernel(V if V.flags.c_contiguous and V.dtype == np.float32 else np.ascontiguousarray(V, np.float32),
                np.ascontiguousarray(G),
                np.ascontiguousarray(influences, np.int32), np.ascontiguousarray(weights, np.float32), out)
    return out
