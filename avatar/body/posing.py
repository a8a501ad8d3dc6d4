"""The rig's pose stage: pose sliders -> bone angles -> posed vertices, batched over avatars.

Order of operations for ``rig.vertices(S)`` (docs/pose.md):

1. shape    the blend (:mod:`avatar.body.rig`): rest vertices V and the rest bone ends, both standing on
            y = 0; the ends are the skeleton's regressor on the blended joint cubes and vertices
2. angles   (n, J, 3) radians: every pose slider adds ``share * value`` to its bones' x/y/z angle
3. pose     bone frames, forward kinematics and linear blend skinning (:mod:`avatar.body.pose`)
4. floor    the posed body is shifted so its lowest point rests on y = 0 again (a bent knee
            lifts the foot; a glTF carries the shift as the root joint's translation)

Avatars whose pose sliders are all 0 keep their rest vertices exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.body import pose, skeleton as skeletons
from avatar.body.pose import AXES


@dataclass(frozen=True, eq=False)
class Bound:
    """One avatar's skeleton at rest and in its pose: what a rigged glTF needs.

    heads, tails : (J, 3) float64   rest bone ends (the bind pose)
    frames       : (J, 3, 3)        rest frames, columns the bone's axes
    local        : (J, 3, 3)        each bone's posed rotation in its own frame
    shift        : (3,)             the floor shift of the posed body (step 4)
    """

    heads: np.ndarray
    tails: np.ndarray
    frames: np.ndarray
    local: np.ndarray
    shift: np.ndarray


class Posing:
    """Pose sliders of a rig spec acting on one of MakeHuman's skeletons.

    Parameters
    ----------
    spec : RigSpec
    n_eye : int
        Vertices per eyeball after the body's (the template's layout).
    """

    def __init__(self, spec, n_eye: int):
        self.skeleton = skeletons.load(spec.skeleton, n_eye)
        sk = self.skeleton
        self._slots = pose.skin_slots(sk.influences, sk.weights, len(sk.influences) - 2 * n_eye)
        cols, bones, axes, shares = [], [], [], []
        for j, s in enumerate(spec.sliders):
            for bone, axis, share in s.pose:
                cols.append(j)
                bones.append(sk.index(bone))
                axes.append(AXES[axis])
                shares.append(np.radians(share))
        self.columns = np.array(sorted(set(cols)), np.int64)   # the pose sliders
        self._cols, self._bones = np.array(cols, np.int64), np.array(bones, np.int64)
        self._axes, self._shares = np.array(axes, np.int64), np.array(shares)

    @property
    def n_bones(self) -> int:
        return len(self.skeleton.names)

    def angles(self, S: np.ndarray) -> np.ndarray:
        """(n, J, 3) float64 radians of every bone about its x, y, z axes for slider values ``S`` (n, P)."""
        S = np.atleast_2d(S)
        out = np.zeros((len(S), self.n_bones, 3))
        # an unbuffered sum, entry by entry, so that each avatar's angles are its own (no BLAS)
        np.add.at(out, (slice(None), self._bones, self._axes), S[:, self._cols] * self._shares)
        return out

    def posed_rows(self, S: np.ndarray) -> np.ndarray:
        """(n,) bool: the avatars with some pose slider away from 0."""
        return np.any(np.atleast_2d(S)[:, self.columns] != 0, axis=1)

    def _posed(self, V: np.ndarray, ends: np.ndarray, S: np.ndarray, out=None):
        """Steps 2-4 for rest vertices ``V`` (n, N, 3) with rest bone ends ``ends`` (n, 2J, 3).

        Returns posed vertices (n, N, 3) float32 on the floor (into ``out`` when given, which may be
        ``V``), rest heads (n, J, 3), frames (n, J, 3, 3), transforms dA (n, J, 3, 3), t (n, J, 3) and
        the floor lifts (n,).
        """
        sk = self.skeleton
        heads, tails = ends[:, 0::2].astype(np.float64), ends[:, 1::2].astype(np.float64)
        frames = pose.bone_frames(heads, tails, sk.rolls)
        dA, t = pose.skinning_transforms(sk.parents, heads, frames, pose.euler_xyz(self.angles(S)))
        posed, lift = pose.skin(V, dA, t, self._slots, out)  # 4. on the floor
        return posed, heads, frames, dA, t, lift

    def apply(self, V: np.ndarray, ends: np.ndarray, S: np.ndarray) -> None:
        """Steps 2-4 in place on rest vertices ``V`` (n, N, 3) float32 with rest bone ends ``ends`` (n, 2J, 3);
        the floor is the body's lowest point (the skeleton's vertices before the eyeballs')."""
        rows = np.flatnonzero(self.posed_rows(S))
        if len(rows) == len(V):  # in place: no copies of the chunk (the kernel reads each vertex first)
            self._posed(V, ends, S, out=V)
        elif len(rows):
            V[rows] = self._posed(V[rows], ends[rows], S[rows])[0]

    def joints(self, V: np.ndarray, ends: np.ndarray, S: np.ndarray) -> np.ndarray:
        """(n, J, 3) float32 bone heads in the pose of ``S`` (rest heads where unposed)."""
        out = np.ascontiguousarray(ends[:, 0::2], np.float32)
        rows = np.flatnonzero(self.posed_rows(S))
        if len(rows):
            out[rows] = self.bind(V[rows], ends[rows], S[rows])[0]
        return out

    def bind(self, V: np.ndarray, ends: np.ndarray, S: np.ndarray):
        """Posed heads (n, J, 3) float32, world transforms dA (n, J, 3, 3), t (n, J, 3) and floor shifts (n, 3)."""
        _, heads, _, dA, t, lift = self._posed(V, ends, S)
        shift = np.zeros((len(V), 3))
        shift[:, 1] = lift
        moved = heads + np.einsum("...ij,...j->...i", dA, heads) + t + shift[:, None]
        return moved.astype(np.float32), dA, t, shift

    def bound(self, v: np.ndarray, ends: np.ndarray, s: np.ndarray) -> Bound:
        """The skeleton of one avatar (rest vertices ``v`` (N, 3), ends (2J, 3), sliders ``s`` (P,))."""
        _, heads, frames, _, _, lift = self._posed(v[None], ends[None], s[None])
        tails = ends[1::2].astype(np.float64)
        local = pose.euler_xyz(self.angles(s[None])[0])
        shift = np.array([0.0, float(lift[0]) if self.posed_rows(s[None])[0] else 0.0, 0.0])
        return Bound(heads[0], tails, frames[0], local, shift)
