"""Reconstruction metrics: millimetres per vertex, PSNR, and intrinsic dimensionality.

    acc = ReconstructionError()
    acc.add(ft.prepared(X), ft.prepared(model.inverse_transform(model.transform(X))))   # per batch
    acc.result()   # {"vertex_error_mm": {"mean", "p95", "max"}, "texture_psnr_db": ..., "render_psnr_db": ...}
    components_for(model.explained_variance_ratio_)   # {"0.9": k90, "0.95": k95, "0.99": k99}

Errors accumulate over batches without keeping them: the mean exactly, the
95th percentile from a fine log-spaced histogram (relative resolution 0.1 %),
so a test split of any size costs a few kilobytes.
"""
from __future__ import annotations

import numpy as np

THRESHOLDS = (0.90, 0.95, 0.99)
# log-spaced bins 1e-6 mm .. 1e6 mm, ~0.1 % wide: percentiles to 3 significant digits
_EDGES = np.geomspace(1e-6, 1e6, 27_632)

__all__ = ["ReconstructionError", "components_for", "vertex_errors_mm", "psnr", "THRESHOLDS"]


def vertex_errors_mm(V, V_hat) -> np.ndarray:
    """(n, m) Euclidean distance in millimetres between vertices V and V_hat, (n, m, 3) or (n, 3m) metres."""
    V = np.asarray(V, np.float64).reshape(len(V), -1, 3)
    V_hat = np.asarray(V_hat, np.float64).reshape(len(V_hat), -1, 3)
    return np.sqrt(((V - V_hat) ** 2).sum(axis=-1)) * 1000.0


def psnr(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of a mean squared error (images scaled to [0, peak]); inf if exact."""
    return float("inf") if mse <= 0 else float(10.0 * np.log10(peak * peak / mse))


def components_for(ratio, thresholds=THRESHOLDS) -> dict[str, int | None]:
    """Fewest leading components whose explained-variance ratios (k,) sum to each threshold;
    None where the k given do not reach it."""
    cum = np.cumsum(np.asarray(ratio, np.float64))
    out = {}
    for t in thresholds:
        hit = np.flatnonzero(cum >= t - 1e-12)
        out[f"{t:g}"] = int(hit[0]) + 1 if len(hit) else None
    return out


class ReconstructionError:
    """Accumulates reconstruction errors over batches of prepared blocks (see FeatureTransform.prepared)."""

    def __init__(self):
        self.hist = np.zeros(len(_EDGES) + 1, np.int64)
        self.sum_mm = 0.0
        self.max_mm = 0.0
        self.count = 0
        self.sq = {}   # block -> [sum of squared error, values]

    def add(self, truth: dict, approx: dict) -> None:
        """truth, approx: {block: (n, d_b) float} in prepared units (metres; [0, 1] pixels)."""
        for name, T in truth.items():
            A = approx[name]
            if name == "vertices":
                e = vertex_errors_mm(T, A).ravel()
                self.sum_mm += float(e.sum())
                self.max_mm = max(self.max_mm, float(e.max(initial=0.0)))
                self.count += e.size
                self.hist += np.bincount(np.searchsorted(_EDGES, e), minlength=len(self.hist))
            else:
                s = self.sq.setdefault(name, [0.0, 0])
                # compare what a decoder would output: clipped to the valid pixel range
                s[0] += float(((np.asarray(T, np.float64) - np.clip(A, 0.0, 1.0)) ** 2).sum())
                s[1] += T.size

    def percentile(self, q: float) -> float:
        """Approximate q-th percentile (0-100) of the per-vertex errors, in mm."""
        if self.count == 0:
            return float("nan")
        cum = np.cumsum(self.hist)
        i = int(np.searchsorted(cum, q / 100.0 * self.count))
        if i == 0:
            return 0.0
        return float(np.sqrt(_EDGES[i - 1] * _EDGES[min(i, len(_EDGES) - 1)]))  # the bin's geometric middle

    def result(self) -> dict:
        out = {}
        if self.count:
            out["vertex_error_mm"] = {"mean": self.sum_mm / self.count, "p95": self.percentile(95),
                                      "max": self.max_mm}
        for name, (sq, n) in self.sq.items():
            out[f"{name[:-1]}_psnr_db"] = psnr(sq / max(n, 1))
        return out
