"""Body measurements as extra factors: which learned codes carry the waist, the stature, the mass?

For the experiment's train and test rows (at most ``max_rows`` each) the rest-shape
measurements are read from the store (a dataset's ``measurements`` output) or
measured from the stored sliders. Then, per model and measurement:

- ``r2``: test R^2 of a least-squares map from all the codes (fitted on the train rows);
- ``best_code`` and ``best_rho``: the single code with the largest |Spearman rho| on the test rows.

A measurement is "carried" by a latent when its r2 is at least :data:`CARRIED`; one the dataset
does not vary (the left arm's girth when only the right arm varies) has r2 None.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

CARRIED = 0.5
CONSTANT = 1e-6  # a measurement with a smaller sd (its unit) is constant in the data: nothing to carry


def measurement_factors(ds, rows: np.ndarray, rig=None) -> tuple[list[str], np.ndarray]:
    """(names, (len(rows), M) values) of the dataset's rows: stored, or measured from their sliders."""
    stored = ds.measurements
    if stored is not None:
        return list(ds.measurement_names), np.asarray(stored[np.sort(rows)], np.float64)[np.argsort(np.argsort(rows))]
    rig = rig or ds.load_rig()
    M = rig.measure(np.asarray(ds.sliders[np.sort(rows)], np.float64))
    order = np.argsort(np.argsort(rows))
    names = rig.ruler.names
    return names, np.stack([M[k] for k in names], axis=1)[order]


def carried_by(codes: dict, M_train: np.ndarray, M_test: np.ndarray) -> dict:
    """{model: {"r2": (M,), "best_code": (M,), "best_rho": (M,)}} from {model: (Z_train, Z_test)}."""
    out = {}
    for name, (Z_train, Z_test) in codes.items():
        A = np.column_stack([Z_train, np.ones(len(Z_train))])
        coef, *_ = np.linalg.lstsq(A, M_train, rcond=None)
        pred = np.column_stack([Z_test, np.ones(len(Z_test))]) @ coef
        ss = ((M_test - M_test.mean(axis=0)) ** 2).sum(axis=0)
        constant = M_test.std(axis=0) < CONSTANT
        r2 = np.where(constant, np.nan, 1.0 - ((M_test - pred) ** 2).sum(axis=0) / np.where(constant, 1.0, ss))
        rho = np.abs(spearmanr(Z_test, M_test).statistic[: Z_test.shape[1], Z_test.shape[1]:])
        rho = np.nan_to_num(rho)                                       # (codes, M)
        out[name] = {"r2": r2, "best_code": [None if c else f"{name}.{int(i) + 1}"
                                             for i, c in zip(rho.argmax(axis=0), constant)],
                     "best_rho": np.where(constant, np.nan, rho.max(axis=0))}
    return out


def measurement_section(report, metrics: dict) -> None:
    """The report's "Body measurements" section (skipped when metrics has none)."""
    info = metrics.get("measurements")
    if not info:
        return
    names, units, models = info["names"], info["units"], info["models"]
    n_carried = {m: int(sum(r is not None and r >= CARRIED for r in v["r2"])) for m, v in models.items()}
    varied = sum(s is not None and s >= CONSTANT for s in info["sd"])
    report.section(
        "Body measurements",
        f"The avatars' real-unit measurements (docs/measure.md) as extra factors: can the codes tell a person's "
        f"waist or stature? R^2: how much of each measurement a least-squares map from all the codes recovers on "
        f"the test rows; best code: the one code whose order follows the measurement most (|Spearman rho|). "
        + "; ".join(f"{m} carries {k} of the {varied} measurements the data varies (R^2 >= {CARRIED})"
                    for m, k in n_carried.items()) + ".")
    header = ["measurement", "unit", "sd"] + [h for m in models for h in (f"{m} R^2", f"{m} best code (|rho|)")]
    rows = []
    for i, k in enumerate(names):
        row = [k, units[i], f"{info['sd'][i]:.2f}"]
        for v in models.values():
            row += ["constant", ""] if v["r2"][i] is None else \
                [f"{v['r2'][i]:.3f}", f"{v['best_code'][i]} ({v['best_rho'][i]:.2f})"]
        rows.append(row)
    report.table(rows, header, numeric=[2] + [3 + 2 * j for j in range(len(models))])
