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

from dataclasses import dataclass

import numpy as np

from avatar.body import _pose_kernel as _k

C = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # ours -> Blender's axes
AXES = {"x": 0, "y": 1, "z": 2}


def bone_frames(heads: np.ndarray, tails: np.ndarray, rolls: np.ndarray) -> np.ndarray:
    """Rest frames of bones, Blender's rule, in our axes.

    heads, tails : (..., J, 3) float  bone ends
    rolls        : (J,) float         radians about each bone's axis
    returns      : (..., J, 3, 3) float64, columns the bone's x, y, z axes (y from head to tail)

    The direction ``d = C (tail - head) / |tail - head|`` in Blender's axes; the smallest rotation
    taking +y onto d, ``R = I + [v]x + [v]x^2 / (1 + y)`` with ``v = y_axis x d = (z, 0, -x)``, where
    for y < 0 ``1 + y = (x^2 + z^2) / (1 - y)`` without cancellation (Blender's vec_roll_to_mat3 uses
    a series there for the same reason), and half a turn about z for a bone straight down -y; then
    the roll about the bone's y, and back to our axes: ``C^T R Roll`` (compiled: ``_pose_kernel.frames``).
    """
    heads, tails = np.asarray(heads, np.float64), np.asarray(tails, np.float64)
    shape = np.broadcast_shapes(heads.shape, tails.shape)
    out = np.empty(shape + (3,))
    h, t = (np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1, *shape[-2:]) for a in (heads, tails))
    rolls = np.asarray(rolls, np.float64)
    _k.frames(h, t, np.cos(rolls), np.sin(rolls), C, out.reshape(-1, *out.shape[-3:]))
    return out


def euler_xyz(angles: np.ndarray) -> np.ndarray:
    """(..., 3) radians about x, y, z -> (..., 3, 3) rotations ``Rz @ Ry @ Rx`` (x applied first)."""
    angles = np.asarray(angles, np.float64)
    out = np.empty(angles.shape + (3,))
    _k.euler(np.ascontiguousarray(angles).reshape(-1, 3), out.reshape(-1, 3, 3))
    return out


def skinning_transforms(parents: np.ndarray, heads: np.ndarray, frames: np.ndarray,
                        local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 4: each bone's world transform from rest to pose, as ``(I + dA, t)``.

    parents : (J,) int, -1 at the root, parents before children
    heads   : (n, J, 3)    frames : (n, J, 3, 3)    local : (n, J, 3, 3) rotations in the bones' frames
    returns : dA (n, J, 3, 3), t (n, J, 3), float64

    A turned bone b: ``dL = R (Q - I) R^T`` (0 at rest) and ``tL = -dL h`` (a rotation about its
    head), then ``dA_b = dA_p + dL + dA_p dL`` = (I + dA_p)(I + dL) - I and ``t_b = t_p + tL + dA_p tL``.
    A bone its avatar leaves still carries its parent's transform exactly (compiled:
    ``_pose_kernel.transforms``).
    """
    f64 = lambda a: np.ascontiguousarray(a, np.float64)  # noqa: E731
    heads, frames, local = f64(heads), f64(frames), f64(local)
    dA, t = np.empty(frames.shape), np.empty(heads.shape)
    _k.transforms(np.ascontiguousarray(parents, np.int64), heads, frames, local, dA, t)
    return dA, t


@dataclass(frozen=True, eq=False)
class SkinSlots:
    """The skeleton's influences laid out for the skinning loop, once per template.

    Vertices with the same bones (zero weights dropped), and on the same side of ``n_body``, fill
    blocks of ``LANES`` slots together, each vertex's bones in ascending index; a block's spare slots
    repeat its last vertex. The body's blocks come first. (Grouped by bones in weight order instead,
    the 14,472 vertices took 2,029 blocks, 2.2 slots a vertex; as sets they take 1,215.)

    perm  : (S,) int32     the vertex in each slot      pos : (N,) int32  each vertex's slot
    bones : (B, 4) int32   each block's bones           K   : (B,) int64  how many
    w     : (4, S) float32 each slot's weights, in the order of its block's bones (0 past K)
    body_blocks : int      the blocks of body vertices
    """

    perm: np.ndarray
    pos: np.ndarray
    bones: np.ndarray
    K: np.ndarray
    w: np.ndarray
    body_blocks: int


def skin_slots(influences: np.ndarray, weights: np.ndarray, n_body: int) -> SkinSlots:
    """The slot tables of ``influences`` (N, 4) int and ``weights`` (N, 4); vertices from ``n_body`` on
    (the eyeballs) in blocks of their own, after the body's."""
    weights = np.asarray(weights, np.float32)
    none = np.iinfo(np.int64).max  # an unused influence: after every bone
    bone = np.where(weights > 0, influences, none)
    by_bone = np.argsort(bone, axis=1, kind="stable")
    bone, weights = np.take_along_axis(bone, by_bone, axis=1), np.take_along_axis(weights, by_bone, axis=1)
    key = np.column_stack([np.arange(len(weights)) >= n_body, bone])
    sets, of, count = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    of = of.ravel()
    blocks = -(-count // _k.LANES)
    first = np.concatenate([[0], np.cumsum(count)])                      # each set's first vertex...
    start = np.concatenate([[0], np.cumsum(blocks * _k.LANES)])          # ...and its first slot
    order = np.argsort(of, kind="stable")                                # vertices set by set
    slot_set = np.repeat(np.arange(len(sets)), blocks * _k.LANES)
    rank = np.minimum(np.arange(start[-1]) - start[slot_set], count[slot_set] - 1)
    perm = order[first[slot_set] + rank].astype(np.int32)               # spare slots: the last vertex
    pos = np.empty(len(order), np.int32)
    pos[order] = start[of[order]] + np.arange(len(order)) - first[of[order]]
    used = sets[:, 1:] != none
    bones = np.repeat(np.where(used, sets[:, 1:], 0), blocks, axis=0).astype(np.int32)
    K = np.repeat(used.sum(axis=1), blocks).astype(np.int64)
    return SkinSlots(perm, pos, bones, K, np.ascontiguousarray(weights[perm].T),
                     int(blocks[sets[:, 0] == 0].sum()))


def skin(V: np.ndarray, dA: np.ndarray, t: np.ndarray, slots: SkinSlots, out: np.ndarray | None = None):
    """Step 5: linear blend skinning, ``V + sum_k w_k (dA_k V + t_k)``, then on the floor.

    V       : (n, N, 3) float32 rest vertices
    dA, t   : (n, J, 3, 3), (n, J, 3) from :func:`skinning_transforms`
    slots   : :func:`skin_slots` of the skeleton's 4 largest influences per vertex
    returns : (n, N, 3) float32 posed vertices, lifted so that the lowest body vertex is at y = 0
              (``out`` may be ``V`` itself), and the lifts (n,) float32
    """
    G = np.concatenate([dA, t[..., None]], axis=-1).astype(np.float32).reshape(len(V), -1, 12)
    V = V if V.flags.c_contiguous and V.dtype == np.float32 else np.ascontiguousarray(V, np.float32)
    out = np.empty_like(V) if out is None else out
    buf = np.empty((3, len(slots.perm)), np.float32)
    lift = np.empty(len(V), np.float32)
    _k.skin(V, G, slots.perm, slots.pos, slots.bones, slots.K, slots.w, slots.body_blocks, buf, out, lift)
    return out, lift
