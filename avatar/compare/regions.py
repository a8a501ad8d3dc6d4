"""Per-region comparison: which sliders belong to a region, and a card's scores on those sliders alone.

An experiment with ``regions`` fits one latent per region (a face latent, a body
latent). Its codes are compared with every slider (the full card) and with the
sliders of its region: those whose vertex motion lies mostly inside the region's
vertices (:func:`region_sliders`), or the ones the experiment names. The region
scores are the full card's matrices cut to the region's slider columns
(:func:`restrict`), so they agree with the full card by construction.
"""
from __future__ import annotations

import fnmatch

import numpy as np

from . import matrices as X
from . import metrics as M

SHARE = 0.5  # a slider belongs to a region when at least this share of its vertex motion falls inside it

__all__ = ["SHARE", "motion_energy", "motion_shares", "region_sliders", "restrict"]


def motion_energy(rig, names) -> np.ndarray:
    """(F, V) each slider's squared vertex motion from the default avatar, a quarter of its range up
    plus down: one batch of 2F avatars through the rig (rows 2j and 2j + 1 move slider j alone)."""
    base = rig.defaults().astype(np.float64)
    cols = [rig.spec.index(n) for n in names]
    S = np.repeat(base[None], 2 * len(cols), axis=0)
    for i, j in enumerate(cols):
        s = rig.spec.sliders[j]
        lo, hi = (float(s.min), float(s.max)) if s.min is not None and s.max is not None else (0.0, 1.0)
        step = 0.25 * (hi - lo)
        S[2 * i, j] = min(base[j] + step, hi)
        S[2 * i + 1, j] = max(base[j] - step, lo)
    V0 = rig.vertices(base[None], posed=False).astype(np.float64)           # (1, V, 3)
    D = rig.vertices(S, posed=False).astype(np.float64) - V0                 # (2F, V, 3)
    return np.einsum("nvk,nvk->nv", D, D).reshape(len(cols), 2, -1).sum(axis=1)


def motion_shares(energy: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(F,) share of each slider's motion energy (F, V) on the vertices ``index``; NaN when it moves nothing."""
    total = energy.sum(axis=1)
    inside = energy[:, index].sum(axis=1)
    return np.where(total > 1e-18, inside / np.where(total > 0, total, 1.0), np.nan)


def region_sliders(names, energy, index: np.ndarray, globs=None, share: float = SHARE) -> list[str]:
    """The sliders of ``names`` that belong to a region: matching one of ``globs`` when given, else
    those with at least ``share`` of their motion (``energy`` (F, V), :func:`motion_energy`) on the
    region's vertices ``index``."""
    names = list(names)
    if globs:
        return [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs)]
    s = motion_shares(energy, index)
    return [n for n, v in zip(names, s) if np.isfinite(v) and v >= share]


def restrict(card: dict, columns) -> dict:
    """A full card's headline scores on some factor columns only: MIG, DCI (importance cut to the
    columns, renormalised), SAP, modularity, matching, visibility and the R^2 means over them."""
    cols = np.asarray(list(columns), np.int64)
    if len(cols) == 0:
        return {}
    imp = np.asarray(card["dci"]["importance"], np.float64)[:, cols]
    mi = np.asarray(card["mutual_information"], np.float64)[:, cols]
    spear = np.abs(np.asarray(card["spearman"], np.float64)[:, cols])
    gaps = np.asarray(card["mig"]["per_factor"], np.float64)[cols]
    vis = np.asarray(card["visibility"]["per_slider"], np.float64)[cols]
    info = np.asarray(card["dci"]["informativeness_test_per_factor"], np.float64)[cols]
    r2 = np.asarray(card["r2"]["codes_to_sliders"]["linear"], np.float64)[cols]
    sap = np.asarray(card["sap"]["matrix"], np.float64)[:, cols]

    def mean(a):
        a = a[np.isfinite(a)]
        return float(a.mean()) if len(a) else None

    return {
        "mig": mean(gaps),
        "dci_disentanglement": float(M.disentanglement(imp)) if imp.sum() > 0 else None,
        "dci_completeness": float(M.completeness(imp)) if imp.sum() > 0 else None,
        "dci_informativeness_test": mean(info),
        "sap": float(M.sap_from_matrix(sap)) if sap.shape[0] >= 2 else None,
        "modularity": float(M.modularity(mi)) if mi.shape[1] >= 2 else None,
        "matching_score": float(X.matching(np.nan_to_num(spear))["score"]),
        "visibility_mean": mean(vis),
        "r2_codes_to_sliders_linear": mean(r2),
        "n_visible": int(np.sum(np.nan_to_num(vis) >= 0.5)),
        "n_sliders": int(len(cols)),
    }
