"""Input checks, discretisation and discrete information measures shared by the metrics.

Arrays are laid out ``(n_samples, n_dims)``. Codes are cut into equal-width
histogram bins exactly as disentanglement_lib does; sliders (factors) with more
than ``n_bins`` distinct values are binned on the training rows and the record
of how (:func:`discretize`) is reused for test rows; mutual information is in
nats, with sklearn's ``mutual_info_score`` formula.
"""
from __future__ import annotations

import numpy as np

DISCRETIZE_METHODS = ("equal_width", "quantile")


# validation ------------------------------------------------------------------------------
def check_array(x, name: str, min_samples: int = 2) -> np.ndarray:
    """``x`` as a finite float64 ``(n_samples, n_dims)`` array, or ValueError naming ``name``."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array (n_samples, n_dims): {exc}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_dims), got shape {arr.shape}")
    if arr.shape[0] < min_samples:
        raise ValueError(f"{name} needs at least {min_samples} samples (rows), got {arr.shape[0]}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} has no columns, shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"{name} contains NaN or inf ({int(bad.sum())} values, first at row {i}, "
                         f"column {j}); metrics need finite values")
    return arr


def check_pair(codes, factors, codes_name: str = "codes", factors_name: str = "factors"):
    """Validate codes (n, k) and factors (n, F) describing the same n samples."""
    c = check_array(codes, codes_name)
    f = check_array(factors, factors_name)
    if len(c) != len(f):
        raise ValueError(f"{codes_name} has {len(c)} samples but {factors_name} has {len(f)}; "
                         "rows must describe the same avatars")
    return c, f


def check_split(codes_train, factors_train, codes_test, factors_test):
    """Validate a train/test split: same samples per pair, same columns across the split."""
    ctr, ftr = check_pair(codes_train, factors_train, "codes_train", "factors_train")
    cte, fte = check_pair(codes_test, factors_test, "codes_test", "factors_test")
    if cte.shape[1] != ctr.shape[1]:
        raise ValueError(f"codes_test has {cte.shape[1]} codes but codes_train has {ctr.shape[1]}")
    if fte.shape[1] != ftr.shape[1]:
        raise ValueError(f"factors_test has {fte.shape[1]} factors but factors_train has {ftr.shape[1]}")
    return ctr, ftr, cte, fte


def subsample(n: int, max_n: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices: all ``n`` rows, or ``max_n`` of them drawn without replacement."""
    if max_n is None or max_n >= n:
        return np.arange(n)
    if max_n < 2:
        raise ValueError(f"a subsample needs at least 2 rows, got max {max_n}")
    return np.sort(rng.choice(n, size=max_n, replace=False))


# discretisation --------------------------------------------------------------------------
def histogram_discretize(codes: np.ndarray, n_bins: int = 20) -> np.ndarray:
    """(n, k) float -> (n, k) int64 labels in [0, n_bins): each column cut into equal-width bins.

    disentanglement_lib's ``_histogram_discretize`` (``np.digitize`` against
    ``np.histogram`` edges without the last), shifted to start at 0.
    """
    out = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        out[:, i] = np.digitize(codes[:, i], np.histogram(codes[:, i], n_bins)[1][:-1]) - 1
    return out


def discretize(factors, n_bins: int = 20, method: str = "equal_width"):
    """Continuous factors (n, F) -> integer labels (n, F) and a record of how.

    A column with at most ``n_bins`` distinct values is taken as discrete: its
    labels index its sorted distinct values. Any other column is cut into
    ``n_bins`` bins: ``"equal_width"`` (np.histogram edges over [min, max], as
    disentanglement_lib bins codes) or ``"quantile"`` (edges at the 0, 1/n_bins,
    ..., 1 quantiles, so bins hold equal counts; tied edges merge bins).

    Returns
    -------
    labels : (n, F) int64, in [0, n_bins)
    record : dict, JSON-able: method, n_bins and per column either
        ``{"kind": "discrete", "values": [...]}`` or ``{"kind": "binned", "edges": [...]}``
        (n_bins + 1 edges). :func:`apply_discretization` applies it to new rows.
    """
    if method not in DISCRETIZE_METHODS:
        raise ValueError(f"method must be one of {DISCRETIZE_METHODS}, got {method!r}")
    if int(n_bins) != n_bins or n_bins < 2:
        raise ValueError(f"n_bins must be a whole number >= 2, got {n_bins!r}")
    f = check_array(factors, "factors", min_samples=1)
    columns = []
    for j in range(f.shape[1]):
        values = np.unique(f[:, j])
        if len(values) <= n_bins:
            columns.append({"kind": "discrete", "values": values.tolist()})
        elif method == "equal_width":
            columns.append({"kind": "binned", "edges": np.histogram(f[:, j], n_bins)[1].tolist()})
        else:
            columns.append({"kind": "binned",
                            "edges": np.quantile(f[:, j], np.linspace(0, 1, n_bins + 1)).tolist()})
    record = {"method": method, "n_bins": int(n_bins), "columns": columns,
              "rule": f"columns with <= {n_bins} distinct values kept as discrete labels; others cut into "
                      f"{n_bins} {method.replace('_', '-')} bins on the training rows, edges reused for test rows"}
    return apply_discretization(f, record), record


def apply_discretization(factors, record: dict) -> np.ndarray:
    """Labels (n, F) int64 for new rows under a :func:`discretize` record.

    Binned values beyond the recorded range fall into the end bins; a discrete
    value not seen when the record was made gets label -1 (never predicted, so it
    counts as a miss).
    """
    f = check_array(factors, "factors", min_samples=1)
    cols = record["columns"]
    if f.shape[1] != len(cols):
        raise ValueError(f"factors has {f.shape[1]} columns but the discretization record has {len(cols)}")
    out = np.empty(f.shape, dtype=np.int64)
    for j, col in enumerate(cols):
        if col["kind"] == "discrete":
            values = np.asarray(col["values"])
            idx = np.clip(np.searchsorted(values, f[:, j]), 0, len(values) - 1)
            out[:, j] = np.where(values[idx] == f[:, j], idx, -1)
        else:
            inner = np.asarray(col["edges"])[1:-1]  # == np.digitize(x, edges[:-1]) - 1 on training rows
            out[:, j] = np.searchsorted(inner, f[:, j], side="right")
    return out


# mutual information ----------------------------------------------------------------------
def _dense_labels(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Relabel each column to 0..u-1 (negative labels included as their own value)."""
    out = np.empty(labels.shape, dtype=np.int64)
    width = 1
    for j in range(labels.shape[1]):
        _, out[:, j] = np.unique(labels[:, j], return_inverse=True)
        width = max(width, int(out[:, j].max()) + 1)
    return out, width


def mutual_info_matrix(a_labels: np.ndarray, b_labels: np.ndarray) -> np.ndarray:
    """Discrete mutual information in nats between every column pair: (n, k), (n, F) int -> (k, F).

    Equal to ``sklearn.metrics.mutual_info_score(b[:, j], a[:, i])`` (the same
    formula, clipped at 0), computed from one joint histogram per ``a`` column
    instead of k * F sklearn calls.
    """
    a, ka = _dense_labels(a_labels)
    b, kb = _dense_labels(b_labels)
    n, n_f = b.shape
    pb = np.stack([np.bincount(b[:, j], minlength=kb) for j in range(n_f)])  # (F, kb) counts
    block = np.arange(n_f) * (ka * kb)
    out = np.empty((a.shape[1], n_f))
    for i in range(a.shape[1]):
        joint = np.bincount((block + a[:, i, None] * kb + b).ravel(), minlength=n_f * ka * kb)
        joint = joint.reshape(n_f, ka, kb).astype(np.float64)
        pa = np.bincount(a[:, i], minlength=ka).astype(np.float64)
        outer = pa[None, :, None] * pb[:, None, :]
        nz = joint > 0
        terms = np.zeros_like(joint)
        terms[nz] = joint[nz] / n * (np.log(joint[nz]) + np.log(n) - np.log(outer[nz]))
        terms[np.abs(terms) < np.finfo(np.float64).eps] = 0.0  # as sklearn does
        out[i] = np.clip(terms.sum(axis=(1, 2)), 0.0, None)
    return out


def discrete_entropy(labels: np.ndarray) -> np.ndarray:
    """Entropy in nats of each column of (n, F) int labels -> (F,); = mutual_info_score(y, y)."""
    out = np.empty(labels.shape[1])
    for j in range(labels.shape[1]):
        p = np.unique(labels[:, j], return_counts=True)[1] / len(labels)
        out[j] = float(-(p * np.log(p)).sum())
    return out


def mutual_information(codes, factors, n_bins: int = 20) -> np.ndarray:
    """(k, F) mutual information in nats between 20-bin histogram codes and discretized factors."""
    c, f = check_pair(codes, factors)
    return mutual_info_matrix(histogram_discretize(c, n_bins), discretize(f, n_bins)[0])


# helpers ---------------------------------------------------------------------------------
def parallel_map(fn, jobs: list[tuple], n_jobs: int = 1) -> list:
    """``[fn(*job) for job in jobs]``, in ``n_jobs`` threads when n_jobs > 1.

    Threads, not processes: the sklearn fits release the GIL in their compiled
    parts and the arrays are shared instead of copied.
    """
    if n_jobs == 1 or len(jobs) < 2:
        return [fn(*job) for job in jobs]
    from joblib import Parallel, delayed
    return Parallel(n_jobs=n_jobs, prefer="threads")(delayed(fn)(*job) for job in jobs)
