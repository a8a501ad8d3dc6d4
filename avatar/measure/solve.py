"""Sliders solved from measurements: "a 182 cm man with an 84 cm waist".

    S2 = solve(rig, S, {"stature": 182.0, "waist": 84.0}, free=["body.height", "body.weight", "torso.*"])

A bounded, damped Gauss-Newton (Levenberg-Marquardt) over the free sliders of
every avatar at once:

1. residuals: each target's measurement minus its value, in its unit (cm, kg), plus
   a small pull towards the starting values (so that of all the ways to hit the
   targets the smallest change wins, and the normal equations stay regular);
2. the Jacobian by one-sided differences of batched rest-pose vertices, each on the
   side of the slider's neutral value it already lies (MakeHuman's modifiers blend
   one target above neutral and another below, linearly, so these differences are
   exact; the macros' are local);
3. a step per avatar from its (k, k) normal equations, clipped to the sliders'
   ranges; kept where it lowers the cost, else the damping grows.

A target the free sliders cannot reach raises :class:`Unreachable`, which names
the measurement and the range the free sliders reach from that avatar.
"""
from __future__ import annotations

import fnmatch

import numpy as np

DEFAULT_FREE = ("body.height", "body.weight", "body.muscle", "body.proportions", "*.measure_*")
TOLERANCE = {"cm": 0.1, "kg": 0.1, "L": 0.1, "kg/m2": 0.01}  # how close a target counts as hit
STEP = 0.004          # difference step, as a fraction of the slider's range
NO_EFFECT = 1e-4      # a slider that moves a measurement less than this over its whole range is left out
PULL = 0.01           # the pull towards the start: moving a slider its whole range weighs like 0.01 cm off


class Unreachable(ValueError):
    """A measurement target outside what the free sliders reach."""


def free_columns(rig, free) -> np.ndarray:
    """Column indices of the sliders matched by names or globs ``free`` (default :data:`DEFAULT_FREE`)."""
    from avatar.spec.config import did_you_mean

    patterns = DEFAULT_FREE if free is None else ([free] if isinstance(free, str) else list(free))
    names = rig.slider_names
    numeric = {s.name for s in rig.sliders if s.kind == "continuous" and not s.pose}
    cols = []
    for pat in patterns:
        hit = [j for j, n in enumerate(names) if fnmatch.fnmatchcase(n, pat) and n in numeric]
        if not hit:
            raise ValueError(f"free slider {pat!r} matches no continuous shape slider{did_you_mean(pat, names)}")
        cols += [j for j in hit if j not in cols]
    return np.array(sorted(cols), np.int64)


def solve(rig, S, targets: dict, free=None, iterations: int = 30) -> np.ndarray:
    """Slider values (P,) or (n, P) like ``S``, with the free sliders moved to hit ``targets``.

    ``targets`` maps measurement names to values in their units (cm, kg, kg/m^2): one value
    for every avatar, or an (n,) array, one per avatar.
    Raises :class:`Unreachable` (naming the measurement and the reachable range)
    when a target is missed by more than its tolerance (1 mm, 0.1 kg).
    """
    S = rig.values(S)
    single = S.ndim == 1
    X = np.atleast_2d(S).astype(np.float64).copy()
    if not targets:
        return S.copy()
    names = list(targets)
    for name in names:
        rig.ruler.spec[name]  # KeyError with a did-you-mean for an unknown name
    goal = np.stack([np.broadcast_to(np.asarray(targets[k], np.float64), (len(X),)) for k in names], axis=1)
    cols = effective_columns(rig, free_columns(rig, free), names)
    X, r = _gauss_newton(rig, X, cols, names, goal, iterations)
    miss = _misses(rig, r, names)
    if miss:
        i, name = miss[0]
        lo, hi = reach(rig, X[i], name, cols)
        unit, want = rig.ruler.spec[name].unit, goal[i, names.index(name)]
        who = "" if single else f"avatar {i}: "
        if lo - TOLERANCE[unit] <= want <= hi + TOLERANCE[unit]:
            raise Unreachable(f"{who}{name} {want:g} {unit} cannot be hit together with "
                              f"{', '.join(k for k in names if k != name)} by the free sliders "
                              f"({_listing(rig, cols)}); alone they reach {lo:.1f} to {hi:.1f} {unit}")
        raise Unreachable(f"{who}{name} {want:g} {unit} is out of reach of the free sliders "
                          f"({_listing(rig, cols)}): from this avatar they reach {lo:.1f} to {hi:.1f} {unit}")
    return X[0] if single else X


def effective_columns(rig, cols: np.ndarray, names) -> np.ndarray:
    """The columns of ``cols`` whose sliders move any of the measurements ``names`` at all.

    Found once per rig and question at the default avatar, both sides of each slider's neutral
    (MakeHuman's modifiers touch a few hundred vertices: most cannot move a given measurement).
    Dropping the others halves a solve for stature and waist.
    """
    cache = rig.__dict__.setdefault("_solve_support", {})
    key = (tuple(names), tuple(cols))
    if key not in cache:
        lo, hi, x0 = rig.spec.lows()[cols], rig.spec.highs()[cols], rig.defaults()
        P = np.repeat(x0[None], 2 * len(cols) + 1, axis=0)
        k = np.arange(len(cols))
        P[1 + k, cols], P[1 + len(cols) + k, cols] = hi, lo
        M = rig.ruler(rig.vertices(P, posed=False), names)
        moved = np.stack([np.abs(M[n][1:] - M[n][0]) for n in names]).max(axis=0)
        cache[key] = cols[(moved[: len(cols)] > NO_EFFECT) | (moved[len(cols):] > NO_EFFECT)]
    return cache[key]


def reach(rig, x: np.ndarray, name: str, cols: np.ndarray) -> tuple[float, float]:
    """(low, high): the smallest and largest ``name`` the free sliders ``cols`` reach from avatar ``x``."""
    cols = effective_columns(rig, cols, [name])
    now = rig.measure(x[None])[name][0]
    ends = []
    for far in (0.0, 10.0 * now):  # drive the measurement as far as it goes each way
        y, _ = _gauss_newton(rig, x[None].copy(), cols, [name], np.array([[far]]), 30)
        ends.append(rig.measure(y)[name][0])
    return min(ends), max(ends)


def _listing(rig, cols) -> str:
    names = [rig.slider_names[j] for j in cols]
    return ", ".join(names) if len(names) <= 6 else ", ".join(names[:5]) + f" and {len(names) - 5} more"


def _misses(rig, r: np.ndarray, names) -> list[tuple[int, str]]:
    """(avatar, measurement) pairs whose final residuals r (n, m) exceed the tolerance."""
    tol = np.array([TOLERANCE[rig.ruler.spec[k].unit] for k in names])
    return [(int(i), names[int(j)]) for i, j in np.argwhere(np.abs(r) > tol)]


def _residuals(rig, X, names, goal) -> np.ndarray:
    M = rig.ruler(rig.vertices(X, posed=False), names)
    return np.stack([M[k] for k in names], axis=-1) - goal


def _gauss_newton(rig, X, cols, names, goal, iterations) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt in z = (x - start) / range, for every avatar at once (steps 1-3 above)."""
    n, k = len(X), len(cols)
    lo, hi = rig.spec.lows()[cols], rig.spec.highs()[cols]
    span, neutral = hi - lo, rig.defaults()[cols]
    start = X[:, cols].copy()
    tol = np.array([TOLERANCE[rig.ruler.spec[nm].unit] for nm in names]) * 0.05
    lam = np.full(n, 1e-2)
    eye = np.eye(k)

    def cost(r, x):  # 1. residuals and the pull towards the start
        return (r ** 2).sum(1) + PULL ** 2 * (((x - start) / span) ** 2).sum(1)

    r = _residuals(rig, X, names, goal)
    c = cost(r, X[:, cols])
    for _ in range(iterations):
        # 2. one-sided differences, on the side of neutral each slider lies (and inside its range)
        x = X[:, cols]
        h = STEP * span * np.where(x >= neutral, 1.0, -1.0)
        h = np.where((x + h > hi) | (x + h < lo), -h, h)
        P = np.repeat(X[:, None], k, axis=1)                        # (n, k, P)
        P[:, np.arange(k), cols] += h
        dr = _residuals(rig, P.reshape(-1, X.shape[1]), names, np.repeat(goal, k, axis=0)).reshape(n, k, -1) \
            - r[:, None]
        J = np.swapaxes(dr / (h / span)[:, :, None], 1, 2)         # (n, m, k): per unit z
        # 3. damped normal equations, one (k, k) system per avatar
        z = (x - start) / span
        g = np.einsum("nmk,nm->nk", J, r) + PULL ** 2 * z
        # sliders at an end of their range that the step would push past it sit this step out,
        # so that the others take the whole step (a projected step alone crawls along the bound)
        pinned = ((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0))
        J = np.where(pinned[:, None, :], 0.0, J)
        g = np.where(pinned, 0.0, g)
        H = np.swapaxes(J, 1, 2) @ J + (PULL ** 2 + lam[:, None, None]) * eye
        dz = -np.linalg.solve(H, g[..., None])[..., 0]
        trial = X.copy()
        trial[:, cols] = np.clip(x + dz * span, lo, hi)
        r_new = _residuals(rig, trial, names, goal)
        c_new = cost(r_new, trial[:, cols])
        better = c_new < c * (1 - 1e-7)  # a real decrease: at a range's end the cost only creeps
        X[better], r[better], c[better] = trial[better], r_new[better], c_new[better]
        lam = np.where(better, lam / 3.0, lam * 10.0)
        if np.all(np.abs(r) < tol) or np.all(lam > 1e4):
            break
    return X, r  # the values and their residuals (n, m), each row as last accepted
