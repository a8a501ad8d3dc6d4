"""Pose as a nuisance factor: how far each learned code moves under pose-only and shape-only changes.

A shape study wants codes that carry the body and ignore the pose. With the
dataset's avatars as anchors, two changed copies are made:

- pose-only: each anchor takes the pose sliders of another anchor (a random
  pairing), its shape and appearance kept;
- shape-only: each anchor takes every other varied slider of that same
  partner, its pose kept.

Both copies stay inside the dataset's own distribution. Each copy is generated
(the outputs the model reads), encoded, and per code ``i``::

    pose_motion[i]  = RMS over anchors of (z_pose[i]  - z[i]) / sd(z[i])
    shape_motion[i] = RMS over anchors of (z_shape[i] - z[i]) / sd(z[i])
    pose_share[i]   = pose_motion[i] / (pose_motion[i] + shape_motion[i])

``pose_share`` is 0 for a code that ignores the pose and 1 for a pure pose
code; a code at 0.5 moves as much under either change (the two are mixed).
"""
from __future__ import annotations

import numpy as np

POSE_CODE = 0.5   # a code whose pose share is above this follows the pose more than the shape
INVARIANT = 0.1   # ... and below this one, ignores it


def swap_columns(S: np.ndarray, columns: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """A copy of ``S`` (n, P) whose ``columns`` come from row ``partner[i]`` for each row i."""
    out = S.copy()
    out[:, columns] = S[partner][:, columns]
    return out


def motion(Z0: np.ndarray, Z1: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(k,) RMS change of each code from Z0 to Z1 (n, k), in units of ``scale`` (k,)."""
    return np.sqrt(np.mean((Z1 - Z0) ** 2, axis=0)) / np.maximum(scale, 1e-12)


def pose_invariance(models: dict, rig, outputs: dict, S: np.ndarray, pose_cols, shape_cols,
                    seed: int = 0) -> dict:
    """Per model: pose and shape motion of each code (see the module docstring).

    models : {name: fitted latent model with ``features_`` and ``transform``}
    rig : the dataset's Rig; outputs : the dataset config's ``outputs`` (what to generate)
    S : (n, P) anchor slider rows; pose_cols / shape_cols : columns of the varied pose / other sliders
    """
    from avatar.dataset.generate import compute_outputs

    rng = np.random.default_rng(seed)
    partner = rng.permutation(len(S))
    pose_cols, shape_cols = np.asarray(pose_cols, np.int64), np.asarray(shape_cols, np.int64)
    batches = {"anchor": S, "pose": swap_columns(S, pose_cols, partner),
               "shape": swap_columns(S, shape_cols, partner)}
    arrays = {k: compute_outputs(rig, outputs, v) for k, v in batches.items()}
    out = {}
    for name, model in models.items():
        Z = {k: model.transform(model.features_.forward(arrays[k])) for k in batches}
        sd = Z["anchor"].std(axis=0)
        pose, shape = motion(Z["anchor"], Z["pose"], sd), motion(Z["anchor"], Z["shape"], sd)
        share = pose / np.maximum(pose + shape, 1e-12)
        out[name] = {"pose_motion": pose, "shape_motion": shape, "pose_share": share,
                     "pose_codes": int(np.sum(share > POSE_CODE)),
                     "invariant_codes": int(np.sum(share < INVARIANT)),
                     "mean_pose_share": float(np.mean(share))}
    return {"n_anchors": len(S), "models": out,
            "definition": "pose_share = pose motion / (pose motion + shape motion), per code; "
                          "0 ignores the pose, 1 follows only the pose"}
