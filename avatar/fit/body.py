"""``fit_body``: the slider values (and pose, and rigid transform) that reproduce a body mesh.

Two kinds of target:

* **our topology** -- vertices (V, 3) with the body's 13,380 vertices first, in base.obj's order
  (``rig.vertices``, our .obj/.ply export, MakeHuman's OBJ export of the body): every vertex is
  its own correspondence, and the sliders come out by bounded Levenberg-Marquardt
  (:mod:`.solver`);
* **any other mesh** (a scan, a remesh; a ``trimesh.Trimesh``): principal axes with their sign
  ambiguity and rigid ICP find the pose of the default body in the scan, then closest points on
  the scan's surface alternate with the same slider solve (which also refines the rigid map).

See docs/fitting.md.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import numpy as np

from avatar.body import assets
from .geometry import SurfaceIndex, kabsch, principal_frames, sample_surface, vertex_normals
from .linear import local_basis
from .solver import SIGMA, Problem, State, across_knots, iterate, posterior_sd

UNIDENTIFIABLE = 0.01   # posterior sd (at 0.1 mm noise) above this fraction of the range: not pinned down
EXPLORE_MM = 0.02      # a fit worse than this (rms vertex error, mm) tries its macros' other pieces
REST_ERROR_MM = 0.5     # posed=None: a rest fit worse than this (mean vertex error, mm) fits the pose too
SCAN_DAMPING = 1e-9    # the least Levenberg-Marquardt damping of a correspondence round
NEAR = 0.05            # m: correspondences this near are always kept
REST_SURFACE_MM = 3.0   # the same for scans (mean surface distance, mm)


@dataclass
class BodyFit:
    """What :func:`fit_body` found.

    Attributes
    ----------
    values : (P,) float64
        Slider values in array units (``rig.vertices(values)`` is the fitted body); sliders that were
        not free keep their starting values, and the ethnic sliders come back as shares summing to 100.
    readable : dict
        The values as a preset writes them (slider name -> value).
    vertex_error_mm : float
        Mean distance of the fitted body's vertices to their correspondences (the target's vertices for
        our topology; their closest points on the scan otherwise), mm.
    surface_error_mm : float or None
        For a scan: mean distance from the scan's vertices to the fitted surface, mm.
    transform : (4, 4) float64
        Rig frame -> target frame (``target ~ R v + t``): a translation for our topology (0 for a body
        standing on y = 0) unless ``rigid``; the full rigid map for a scan.
    unidentifiable : list of str
        Free sliders the data cannot pin down: posterior sd above 1% of the range at 0.1 mm vertex noise
        (no visible effect, or one that other sliders reproduce). Their values are the ones closest to
        the starting values that still fit (their default, when they do nothing).
    sd : (P,) float64
        Each free slider's posterior sd as a fraction of its range at 0.1 mm vertex noise (inf for a free
        slider that moves nothing the fit sees, NaN where not free).
    free : list of str
        The sliders that were fitted.
    posed : bool
        Whether the pose sliders were fitted.
    iterations : int
        Linearisations (each one batched ``rig.vertices`` call) over the whole fit.
    """

    values: np.ndarray
    readable: dict
    vertex_error_mm: float
    transform: np.ndarray
    unidentifiable: list
    sd: np.ndarray
    free: list
    posed: bool
    iterations: int
    surface_error_mm: float | None = None
    max_vertex_error_mm: float = 0.0
    details: dict = field(default_factory=dict)


def free_sliders(rig, free=None, posed: bool = False) -> np.ndarray:
    """(P,) bool: the sliders a fit moves.

    ``free`` None: every slider that moves the mesh (macros, modifiers, our deformers' sliders,
    expressions), plus the pose sliders when ``posed``. Otherwise names or glob patterns
    (``"torso.*"``); a pattern that matches nothing is a ValueError. Only continuous and integer
    sliders can be fitted (bools and categories, all of them appearance here, keep their values).
    """
    numeric = np.array([s.kind in ("continuous", "integer") for s in rig.sliders])
    if free is None:
        out = np.array([s.moves_mesh and (posed or not s.pose) for s in rig.sliders])
    else:
        names = rig.slider_names
        out = np.zeros(len(names), bool)
        for pat in [free] if isinstance(free, str) else free:
            hit = np.array([fnmatch.fnmatchcase(n, pat) for n in names])
            if not hit.any():
                from avatar.spec.config import did_you_mean

                raise ValueError(f"free: no slider matches {pat!r}{did_you_mean(pat, names)}")
            out |= hit
        if not posed:
            out &= np.array([not s.pose for s in rig.sliders])
    return out & numeric


def _problem(rig, mask: np.ndarray, posed: bool, rigid: bool, prior: np.ndarray) -> Problem:
    basis = local_basis(rig)
    keep = mask[basis.side_slider].copy()
    for group in duplicate_groups(rig, mask):
        # one slider of a duplicate group raises, the next lowers, the rest stay: the group's sum
        # is what the data sees, and so every body the group makes is reachable
        for k, j in enumerate(group):
            on = basis.side_slider == j
            keep[on & ~(basis.side_up if k == 0 else ~basis.side_up if k == 1 else np.zeros_like(on))] = False
    if posed and duplicate_groups(rig, mask):
        # posed, the bones follow the joint cubes, and some twins move those differently on one side
        # (MakeHuman's head-trans-down and neck-height-decr: 6.5 mm apart at full strength): there the
        # posed body tells them apart, so that side is fitted for each
        ends = basis.mixing(rig, prior).T @ basis.ends                 # (Q, 6J) each side's end moves
        for group in duplicate_groups(rig, mask):
            for up in (True, False):
                twins = np.flatnonzero(np.isin(basis.side_slider, group) & (basis.side_up == up))
                held = twins[keep[twins]]
                for q in twins[~keep[twins]]:
                    keep[q] = all(np.abs(ends[q] - ends[p]).max() > 1e-9 for p in held)
    sides = np.flatnonzero(keep)
    nonlinear = np.flatnonzero(mask & np.array([bool(s.macro or s.pose) for s in rig.sliders]))
    return Problem(rig, basis, sides, nonlinear, posed, rigid, prior)


def duplicate_groups(rig, mask: np.ndarray) -> list[tuple[int, ...]]:
    """The free members (two or more) of each group of sliders with identical fields."""
    groups = [tuple(j for j in g if mask[j]) for g in local_basis(rig).duplicates]
    return [g for g in groups if len(g) > 1]


def _is_our_topology(rig, target) -> bool:
    try:
        import trimesh
    except ImportError:  # pragma: no cover - trimesh is a dependency
        trimesh = None
    if trimesh is not None and isinstance(target, trimesh.Trimesh):
        n, f = len(target.vertices), np.asarray(target.faces)
        if n == rig.n_vertices and f.shape == rig.faces.shape and np.array_equal(f, rig.faces):
            return True
        if n == assets.N_BODY and f.shape[0] <= rig.faces.shape[0] and np.array_equal(f, rig.faces[: len(f)]):
            return True
        return False
    return True


def _as_points(target) -> np.ndarray:
    V = np.asarray(getattr(target, "vertices", target), np.float64)
    if V.ndim != 2 or V.shape[1] != 3:
        raise ValueError(f"expected (V, 3) vertices, got shape {V.shape}")
    if not np.isfinite(V).all():
        raise ValueError("the target has non-finite vertices")
    return V


def fit_body(target, rig=None, posed: bool | None = None, free=None, init=None, rigid: bool | None = None,
             max_iter: int = 30, seed: int = 0) -> BodyFit:
    """Slider values that reproduce a body mesh.

    Parameters
    ----------
    target : (V, 3) array or trimesh.Trimesh
        Our topology: the body's 13,380 vertices first (more, such as the eyes, are ignored), in the
        rig's frame and metres. Any other mesh (a scan, a remesh): a ``trimesh.Trimesh`` in metres, in
        any position and orientation.
    rig : avatar.Rig, optional
        Default: the humanoid rig.
    posed : bool or None
        Fit the pose sliders (True), keep the rest pose (False), or (None) fit the rest pose first and
        the pose too if that leaves more than 0.5 mm mean vertex error (3 mm mean surface distance for
        a scan).
    free : list of str, optional
        Names or glob patterns of the sliders to fit (default: every slider that moves the mesh).
    init : (P,) array or mapping, optional
        Starting values, also the prior centre for what the data cannot see (default: the defaults).
    rigid : bool or None
        Fit a rotation too (None: only for scans; a translation is always fitted).
    max_iter : int
        Levenberg-Marquardt iterations per stage (scans: correspondence rounds).
    seed : int
        Scans: the seed of the surface samples the initial alignment uses.

    Returns
    -------
    BodyFit
    """
    import avatar

    rig = avatar.load_rig() if rig is None else rig
    x0 = rig.defaults() if init is None else np.array(rig.values(init), np.float64)
    same = _is_our_topology(rig, target)
    if same:
        V = _as_points(target)
        if len(V) < assets.N_BODY:
            raise ValueError(f"a target of our topology has at least the body's {assets.N_BODY} vertices "
                             f"(got {len(V)}); pass another mesh as a trimesh.Trimesh")
        return _fit_vertices(rig, V[: assets.N_BODY], posed, free, x0, bool(rigid), max_iter)
    return _fit_scan(rig, target, posed, free, x0, True if rigid is None else bool(rigid), max_iter, seed)


def implied_change(rig, values, target, free=None, reach: float = 3.0) -> np.ndarray:
    """(P,) slider changes from ``values`` that best make the body ``target``, read in one step.

    For a change a linear model made (the explorer's latent moves): one Gauss-Newton step of the fit
    from the avatar ``values`` (P,) towards ``target`` (V, 3) of our topology, in the pose of
    ``values`` (the pose sliders are not read). The exact Jacobian there: the linear sliders' sides,
    the macros' secants to their ramps' knots, the ethnic shares by differences. Unlike a fit, the
    linear sides may run negative and past their ranges (strengths in [-reach, reach]): a linear
    model extrapolates a modifier's raise below its default, which the rig's own lowering target is
    not, and a latent move may go beyond what the sliders' ranges make. The macros stay inside their
    ramps' pieces. The ethnic changes keep the scale of ``values`` (only their shares are seen).
    """
    from .qp import box_qp

    values = np.array(rig.values(values), np.float64)
    target = _as_points(target)[: assets.N_BODY]
    posed = bool(rig.posing.posed_rows(values[None])[0])
    problem = _problem(rig, free_sliders(rig, free, False), posed, False, values)
    start = State(problem.normalised(values))
    lin = problem.linearise(start, target)
    slider, sign, span, strength = lin.sided
    lo, hi = problem.bounds(start.S, lin.sided)
    q = len(problem.sides)
    lo[:q], hi[:q] = -reach - strength[:q], reach - strength[:q]
    dz = box_qp(lin.H, lin.g, lo, hi)[0]
    change = np.zeros(len(values))
    n, m = len(slider), len(problem.fd)
    np.add.at(change, slider, sign * dz[:n] * span)
    change[problem.fd] += dz[n:n + m] * problem.span[problem.fd]
    races = problem._race_cols
    if len(problem.race) == 3:
        change[races] = (start.S[races] + change[races]) * values[races].sum() / 100.0 - values[races]
    return change


# -- our topology ----------------------------------------------------------------------------------
def _fit_vertices(rig, target, posed, free, x0, rigid, max_iter) -> BodyFit:
    stages = [False, True] if posed is None else [bool(posed)]
    state, total = State(np.array(x0, np.float64)), 0
    coarse = np.array([bool(s.macro or s.pose) for s in rig.sliders])
    for pose in stages:
        mask = free_sliders(rig, free, pose)
        # the macros (and pose) alone first: they make most of the shape, and from there the macros'
        # ramps start on the right pieces (all at once, the local sliders can make up for a macro
        # stuck on the wrong side of a knot)
        for sub in ((mask & coarse, mask) if (mask & coarse).any() else (mask,)):
            problem = _problem(rig, sub, pose, rigid, x0)
            state = State(problem.normalised(state.S), state.R, state.t)
            state, lin, it, _ = iterate(problem, state, target, max_iter=max_iter * (2 if pose else 1))
            total += it
        err = np.linalg.norm(target - (lin.V @ state.R.T + state.t), axis=1) * 1e3
        if posed is None and not pose and err.mean() > REST_ERROR_MM:
            continue    # not the rest pose: on to the pose, from this shape
        state, lin, it = _other_pieces(problem, state, lin, target, max_iter)
        total += it
        err = np.linalg.norm(target - (lin.V @ state.R.T + state.t), axis=1) * 1e3
        break
    return _result(rig, problem, state, lin, err, total, mask, pose, target=target)


def _other_pieces(problem, state, lin, target, max_iter, use=None):
    """Try each ramped macro on the other side of its nearest knot, keep what fits better.

    The fit is piecewise: with a macro on the wrong piece of MakeHuman's ramps, the local sliders can
    make up enough of the difference to leave a local minimum (seen on about one avatar in four). So
    while the mean vertex error is above ``EXPLORE_MM``, each macro is moved across its nearest knot
    (mirrored about it) and the fit resumed from there; the best of those wins, until none is better.
    """
    total = 0
    for _ in range(3):
        if np.sqrt(lin.sse / len(target)) * 1e3 <= EXPLORE_MM:
            break
        best = (lin.cost, state, lin)
        for i, j in enumerate(problem.macros):
            knots = problem.knots[i]
            if not knots:
                continue
            x = state.S[j]
            k = min(knots, key=lambda k: abs(k - x))
            S = state.S.copy()
            S[j] = np.clip(2 * k - x if abs(k - x) > 1e-9 else k + (1 if x >= k else -1) * 0.1 * problem.span[j],
                           problem.lo[j], problem.hi[j])
            trial, tlin, it, _ = iterate(problem, State(S, state.R, state.t), target, use, max_iter=6)
            total += it
            if tlin.cost < best[0]:
                best = (tlin.cost, trial, tlin)
        if best[1] is state:
            break
        _, state, lin = best
        state, lin, it, _ = iterate(problem, state, target, use, max_iter=max_iter, lin=lin)
        total += it
    return state, lin, total


def _result(rig, problem, state, lin, err, iterations, mask, pose, surface=None, details=None, target=None,
            use=None) -> BodyFit:
    from avatar.export import readable_values

    sd = posterior_sd(problem, state, lin)
    if target is not None:
        sd = across_knots(problem, state, sd, target, use)
    sd[mask & np.isnan(sd)] = np.inf     # free but moving nothing the fit sees
    S = state.S.copy()
    whole = np.array([s.kind == "integer" for s in rig.sliders])
    S[whole] = np.round(S[whole])
    names = rig.slider_names
    dup = {j for g in duplicate_groups(rig, mask) for j in g}
    flagged = [names[j] for j in np.flatnonzero(mask) if not sd[j] <= UNIDENTIFIABLE or j in dup]
    return BodyFit(values=S, readable=readable_values(rig, S), vertex_error_mm=float(np.mean(err)),
                   transform=state.transform, unidentifiable=flagged, sd=sd,
                   free=[names[j] for j in np.flatnonzero(mask)], posed=bool(pose), iterations=int(iterations),
                   surface_error_mm=surface, max_vertex_error_mm=float(np.max(err)), details=details or {})


# -- another topology ------------------------------------------------------------------------------
def _fit_scan(rig, mesh, posed, free, x0, rigid, max_iter, seed) -> BodyFit:
    P = _as_points(mesh)
    faces = np.asarray(mesh.faces, np.int64)
    if len(faces) == 0:
        raise ValueError("the target mesh has no faces")
    extent = float(np.ptp(P, axis=0).max())
    if not 0.3 <= extent <= 3.0:
        raise ValueError(f"the target is {extent:g} units across; a body in metres is 0.3 to 3 (scale it)")
    scan = SurfaceIndex(P, faces)
    rng = np.random.default_rng(seed)
    state = _initial_alignment(rig, x0, scan, rng, free)
    stages = [False, True] if posed is None else [bool(posed)]
    total, damping = 0, 1e-6
    macros = np.array([bool(s.macro) for s in rig.sliders])
    for pose in stages:
        mask = free_sliders(rig, free, pose)
        # coarse to fine: the macros (and pose) and the rigid map first, which keeps the closest
        # points from trapping the local sliders far from the body, then everything
        for coarse in (True, False):
            sub = mask & (macros | np.array([bool(s.pose) for s in rig.sliders])) if coarse else mask
            problem = _problem(rig, sub, pose, rigid, x0)
            state = State(problem.normalised(state.S), state.R, state.t)
            best, stale, kept = np.inf, 0, state
            for _ in range(max_iter // 3 if coarse else max_iter):
                target, use, _ = _correspondences(rig, state, scan, P, pose)
                # damped at least 1e-4: the correspondences move under the step, and an undamped
                # step of ~600 sliders chases them (the fit drifted off after converging)
                state, lin, it, damping = iterate(problem, state, target, use, max_iter=1,
                                                  damping=max(damping, SCAN_DAMPING))
                total += it
                err = _surface_error(rig, state, P, pose) * 1e-3
                # converged when 3 rounds in a row improve the best surface distance (scan to body) by
                # under 0.01 mm (new correspondences can make a round worse); the best round is kept
                stale = stale + 1 if err > best - 1e-5 else 0
                if err < best:
                    best, kept = err, state
                if stale >= 3:
                    break
            state = kept
        target, use, d = _correspondences(rig, state, scan, P, pose)
        surface = _surface_error(rig, state, P, pose)
        if posed is not None or surface <= REST_SURFACE_MM:
            break
    lin = problem.linearise(state, target, use, exact_rows=True)
    err = d[use] * 1e3
    return _result(rig, problem, state, lin, err, total, mask, pose, surface,
                   {"used": float(use.mean())}, target=target, use=use)


def _model(rig, state, pose):
    V = rig.vertices(state.S, posed=pose).astype(np.float64)
    return V @ state.R.T + state.t


def _correspondences(rig, state, scan: SurfaceIndex, points: np.ndarray, pose):
    """Targets (N_body, 3) for the body's vertices, both ways:

    * each vertex's closest point on the scan, kept where the scan's face looks the same way
      (within 60 degrees) and is near (5 x the median distance, at least 5 cm);
    * each scan vertex pulls the body vertex nearest to it: a vertex's target is the mean of its
      closest point and the scan vertices it is nearest to (so parts of the scan the closest points
      miss, an arm held away from where the body's is, still pull).

    Returns targets (N, 3), which vertices have one (N,) and each vertex's distance to the scan (N,).
    """
    from scipy.spatial import cKDTree

    Y = _model(rig, state, pose)
    n = vertex_normals(Y, rig.faces)[: assets.N_BODY]
    Y = Y[: assets.N_BODY]
    q, d, f = scan.closest(Y)
    use = (np.einsum("ij,ij->i", n, scan.normals[f]) > 0.5) & (d <= max(5.0 * np.median(d), NEAR))
    dist, near = cKDTree(Y).query(points)
    ok = dist <= max(5.0 * np.median(dist), NEAR)
    count = np.bincount(near[ok], minlength=len(Y)).astype(np.float64)
    total = np.stack([np.bincount(near[ok], points[ok, k], minlength=len(Y)) for k in range(3)], axis=1)
    target = np.where(use[:, None], q, 0.0) + total
    weight = use + count
    has = weight > 0
    target[has] /= weight[has, None]
    return target, has, d


def _surface_error(rig, state, points, pose) -> float:
    """Mean distance (mm) from the scan's vertices to the fitted surface."""
    Y = _model(rig, state, pose)
    _, d, _ = SurfaceIndex(Y, rig.faces).closest(points)
    return float(d.mean() * 1e3)


def _initial_alignment(rig, x0, scan: SurfaceIndex, rng: np.random.Generator, free=None) -> State:
    """The starting body and its rigid map into the scan.

    The body: ``x0`` with its age and height (where free) set so that its stature matches the scan's
    extent along its longest principal axis (25 candidates, one batched ``rig.vertices`` call):
    closest points do not fix a wrong scale quickly. The map: principal axes (4 sign choices), each
    refined by rigid ICP on surface samples; the one with the smallest mean distance wins.
    """
    from scipy.spatial import cKDTree

    dst = sample_surface(scan.vertices, scan.faces, 8000, rng)
    c = dst - dst.mean(axis=0)
    axis = np.linalg.eigh(np.cov(c.T))[1][:, -1]
    extent = float(np.ptp(c @ axis))
    names = rig.slider_names
    mask = free_sliders(rig, free, False)
    grid = [x0]
    ages = [5.0, 10.0, 15.0, 25.0, 50.0] if "body.age" in names and mask[names.index("body.age")] else [None]
    heights = [0.0, 25.0, 50.0, 75.0, 100.0] if "body.height" in names and mask[names.index("body.height")] else [None]
    for age in ages:
        for h in heights:
            x = np.array(x0, np.float64, copy=True)
            if age is not None:
                x[names.index("body.age")] = age
            if h is not None:
                x[names.index("body.height")] = h
            grid.append(x)
    rest = rig.vertices(np.stack(grid), posed=False)[:, : assets.N_BODY]
    stature = np.ptp(rest[:, :, 1], axis=1)
    pick = int(np.argmin(np.abs(stature - extent)))
    x = grid[pick]
    model = rig.vertices(x, posed=False).astype(np.float64)
    src = sample_surface(model, rig.faces, 4000, rng)
    tree = cKDTree(dst)
    best = None
    for R, t in principal_frames(src, dst):
        for _ in range(30):
            d, i = tree.query(src @ R.T + t)
            keep = d <= max(3.0 * np.median(d), 0.01)
            R, t = kabsch(src[keep], dst[i[keep]])
        d, _ = tree.query(src @ R.T + t)
        if best is None or d.mean() < best[0]:
            best = (d.mean(), R, t)
    return State(np.array(x, np.float64), best[1], best[2])


__all__ = ["BodyFit", "fit_body", "free_sliders", "implied_change"]
