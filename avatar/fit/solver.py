"""Bounded Levenberg-Marquardt on the rig's sliders, a rigid transform and fixed correspondences.

The model of the target's body vertices (N, 3), in the target's frame, is

    y(S, R, t) = V(S) R^T + t          V = rig.vertices(S)[:N_body] (posed or at rest)

The unknowns of one step, all scaled to about unit size:

* **linear sliders** by their two *sides* (:mod:`.linear`), strengths in [0, 1] with a constant,
  exact Jacobian ``D^T C`` (``C`` changes with the ethnic shares only);
* **macros with ramps** (gender, age, muscle, weight, height, proportions, cup size, firmness) by
  two sides too: towards the next knot of MakeHuman's ramps above the current value, and towards
  the next one below (the bound where there is none). The blend is linear in a macro between two
  knots (the others fixed), so each side's column is the exact secant ``V(knot) - V(v)``, one
  ``rig.vertices`` row each; a step never crosses a knot, and at a knot both pieces are seen. (With
  one-sided differences the fit stuck at a knot, on the wrong piece, with the local sliders
  making up the difference.) Per slider, only one side moves (:meth:`Problem.step`);
* the **ethnic shares** (smooth, through the normalisation) and the **pose sliders** by one-sided
  finite differences, as fractions of their range;
* a **translation**, solved in closed form at every evaluation (the mean residual): it absorbs
  the floor shift, a uniform y move that is piecewise linear in the sliders (which sole vertex is
  lowest changes), so that shift never spoils a step; its columns stay in the step as well; and,
  with ``rigid``, a **rotation** (columns ``e_k x V``).

Every ``rig.vertices`` row of an iteration is one batched call. The ethnic sliders only matter
through their shares, so they are held to sum 100 (a stiff penalty row; renormalised after each
step). A weak ridge (prior sd of one range at 0.1 mm noise) keeps what the data cannot see near
the prior ``S0``.

Posed targets: residuals and the non-linear columns are taken back to the rest pose through each
vertex's skinning matrix ``M_v = I + sum_k w_k dA_k`` (transposed), so the local Jacobian stays the
constant ``D^T C`` (quasi-Newton: the joints' motion with the shape is left out of it). The
residuals are exact, so the fixed point is the exact fit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avatar.body import assets
from avatar.body.macros import AGE_YEARS
from .linear import LocalBasis
from .qp import box_qp

SIGMA = 1e-4        # m: the vertex noise (per coordinate) the posterior sd is quoted at
RIDGE = SIGMA ** 2  # the prior: sd of one range (or one side) per unknown, at noise SIGMA
FD_STEP = 2e-3      # finite-difference step (ethnic shares, pose), as a fraction of the range
RACE_STIFF = 1e4    # the shares-sum-to-100 row's weight, relative to the ethnic columns' curvature
RACES = ("african", "asian", "caucasian")


@dataclass
class State:
    """Where the fit stands: slider values ``S`` (P,), and the rigid map rig frame -> target, ``y = R v + t``."""

    S: np.ndarray
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @property
    def transform(self) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = self.R, self.t
        return T


@dataclass
class Linearised:
    """One iteration's normal equations in the scaled step ``dz``."""

    H: np.ndarray          # (n, n) undamped, with the ridge and the ethnic row
    g: np.ndarray          # (n,) the step solves H dz = g (unbounded)
    cost: float            # ||r||^2 + ridge + ethnic penalty
    sse: float             # ||r||^2 over the corresponding vertices
    diag: np.ndarray       # (n,) the data's curvature, which the damping scales
    V: np.ndarray          # (N, 3) float64 model body vertices (rig frame)
    t: np.ndarray          # (3,) the best translation for them (replaces the state's)
    sided: tuple           # (slider, sign, span, strength) of the sided unknowns (see Problem.sided)


class Problem:
    """The unknowns of one fit and how to linearise it.

    Parameters
    ----------
    rig : avatar.Rig
    basis : LocalBasis
    sides : (Qf,) int     indices of the free linear sides in ``basis``
    nonlinear : (m,) int  slider columns of the free macro and pose sliders
    posed : bool          whether the model is posed (``rig.vertices(S, posed=True)``)
    rigid : bool          whether a rotation is fitted (a translation always is)
    prior : (P,) float64  the prior centre (slider values)
    """

    def __init__(self, rig, basis: LocalBasis, sides, nonlinear, posed: bool, rigid: bool, prior):
        self.rig, self.basis = rig, basis
        self.sides = np.asarray(sides, np.int64)
        nonlinear = np.asarray(nonlinear, np.int64)
        self.posed, self.rigid = bool(posed), bool(rigid)
        self.lo, self.hi = rig.spec.lows(), rig.spec.highs()
        self.span = np.maximum(self.hi - self.lo, 1e-12)
        self.n_body = assets.N_BODY
        sl = rig.sliders
        ramps = np.array([bool(sl[j].macro) and sl[j].macro not in RACES for j in nonlinear], bool)
        self.macros = nonlinear[ramps]                      # two sides each, exact secants
        self.fd = nonlinear[~ramps]                         # ethnic shares and pose: differences
        self.knots = [self._knots(sl[j]) for j in self.macros]
        self.race = np.flatnonzero([sl[j].macro in RACES for j in self.fd])
        macro_cols = {s.macro: j for j, s in enumerate(sl) if s.macro}
        self._race_cols = np.array([macro_cols[r] for r in RACES if r in macro_cols], np.int64)
        self.prior = self.normalised(np.asarray(prior, np.float64))
        self._mixing_key, self._mixing = None, None

    # -- the unknowns ----------------------------------------------------------------------------
    @property
    def n_rigid(self) -> int:
        return 6 if self.rigid else 3

    @property
    def n_sided(self) -> int:
        return len(self.sides) + 2 * len(self.macros)

    @property
    def size(self) -> int:
        return self.n_sided + len(self.fd) + self.n_rigid

    def piece(self, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(k_up, k_down) (M,): the ends of the ramps' pieces above and below each macro's value."""
        x = S[self.macros]
        up, down = self.hi[self.macros].copy(), self.lo[self.macros].copy()
        for i, knots in enumerate(self.knots):
            for k in knots:
                if k > x[i]:
                    up[i] = min(up[i], k)
                elif k < x[i]:
                    down[i] = max(down[i], k)
        return up, down

    def sided(self, S: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The sided unknowns at ``S``: slider (n_s,), sign (+1 up, -1 down), span (slider units per unit
        strength) and current strength (linear sides: where they are; macro sides: 0, as they are moves)."""
        b, s = self.basis, self.sides
        up, down = self.piece(S)
        x = S[self.macros]
        M = len(self.macros)
        slider = np.concatenate([b.side_slider[s], np.repeat(self.macros, 2)])
        sign = np.concatenate([np.where(b.side_up[s], 1.0, -1.0), np.tile([1.0, -1.0], M)])
        span = np.concatenate([b.side_span[s], np.stack([up - x, x - down], axis=1).ravel()])
        strength = np.concatenate([b.sides_of(S)[s], np.zeros(2 * M)])
        return slider, sign, span, strength

    def fd_z(self, S: np.ndarray) -> np.ndarray:
        return (S[self.fd] - self.lo[self.fd]) / self.span[self.fd]

    def bounds(self, S: np.ndarray, sided) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of the step dz from ``S``."""
        _, _, span, strength = sided
        z = self.fd_z(S)
        lo = np.concatenate([-strength, -z, np.full(self.n_rigid, -np.inf)])
        hi = np.concatenate([1.0 - strength, 1.0 - z, np.full(self.n_rigid, np.inf)])
        none = np.flatnonzero(span <= 0)    # a macro at a bound has no side beyond it
        lo[none] = hi[none] = 0.0
        return lo, hi

    def normalised(self, S: np.ndarray) -> np.ndarray:
        """``S`` with the ethnic sliders scaled to sum 100 (the same body) when they are free."""
        S = np.array(S, np.float64, copy=True)
        if len(self.race) == 3:
            r = np.clip(S[self._race_cols], 0.0, None)
            S[self._race_cols] = np.clip(100.0 * r / r.sum(), 0.0, 100.0) if r.sum() > 0 else 100.0 / 3.0
        return S

    def step(self, H: np.ndarray, g: np.ndarray, S: np.ndarray, sided) -> np.ndarray:
        """The bounded step dz minimising ``1/2 dz^T H dz - g^T dz`` from ``S``.

        Each sided slider moves on one side only (a box QP over both sides of every slider, started
        at 0, took hundreds of active-set changes). Which side: the sign of its net move in the
        unbounded step (for an exact target of full rank, the true side); the other side is held at
        0 and the box QP, with few bounds active, solves the rest. A slider then left at its default
        whose held side the gradient pulls on (sliders the data ties together can get the sign
        wrong) changes side, and the QP is solved again (at most 4 rounds).
        """
        from scipy.linalg import LinAlgError, cho_factor, cho_solve

        lo, hi = self.bounds(S, sided)
        try:
            free = cho_solve(cho_factor(H, check_finite=False), g, check_finite=False)
        except LinAlgError:
            free = np.linalg.lstsq(H, g, rcond=None)[0]
        slider, sign, span, strength = sided
        n = len(slider)
        net = np.zeros(len(self.rig.sliders))
        np.add.at(net, slider, sign * (strength + free[:n]) * span)
        on = np.where(sign > 0, net[slider] >= 0, net[slider] < 0)
        partner = _partners(slider)
        has = partner >= 0
        x = free
        for _ in range(4):
            lo1, hi1 = lo.copy(), hi.copy()
            off = np.flatnonzero(~on)
            lo1[off] = hi1[off] = -strength[off]    # the other side goes to (or stays at) 0
            x = box_qp(H, g, lo1, hi1, x0=x)[0]
            # a slider left at its default whose held side the gradient pulls on: its sign was wrong
            grad = H[:n] @ x - g[:n]
            at_default = np.zeros(n, bool)
            at_default[has] = np.abs(strength + x[:n])[partner[has]] <= 1e-12
            flip = ~on & has & at_default & (grad < 0) & (span > 0)
            if not flip.any():
                break
            on[flip], on[partner[flip]] = True, False
        return x

    def moved(self, state: State, dz: np.ndarray, sided) -> State:
        """The state after the step ``dz``."""
        slider, sign, span, strength = sided
        q, n, m = len(self.sides), len(slider), len(self.fd)
        b = self.basis
        sides = b.sides_of(state.S)
        sides[self.sides] = np.clip(strength[:q] + dz[:q], 0.0, 1.0)
        S = b.values_of(sides, state.S)
        up, down = self.piece(state.S)
        move = np.zeros(len(S))
        np.add.at(move, slider[q:n], sign[q:n] * np.clip(dz[q:n], 0.0, 1.0) * span[q:n])
        S[self.macros] = np.clip(S[self.macros] + move[self.macros], down, up)
        S[self.fd] = np.clip(S[self.fd] + dz[n:n + m] * self.span[self.fd], self.lo[self.fd], self.hi[self.fd])
        S = self.normalised(S)
        R = state.R @ rotation(dz[n + m:n + m + 3]) if self.rigid else state.R
        return State(S, R, state.t + state.R @ dz[-3:])

    # -- linearisation ---------------------------------------------------------------------------
    def fd_steps(self, S: np.ndarray) -> np.ndarray:
        """(m,) signed finite-difference steps (slider units), away from the nearer bound."""
        h = FD_STEP * self.span[self.fd]
        return np.where(S[self.fd] + h <= self.hi[self.fd], h, -h)

    def mixing(self, S: np.ndarray) -> np.ndarray:
        """``C`` of the free linear sides at ``S``, recomputed only when the ethnic shares change."""
        key = np.round(S[self._race_cols], 12).tobytes()
        if key != self._mixing_key:
            C = self.basis.mixing(self.rig, S)[:, self.sides]
            self._mixing_key, self._mixing, self._local_H = key, C, C.T @ self.basis.G @ C
        return self._mixing

    def linearise(self, state: State, target: np.ndarray, use: np.ndarray | None = None,
                  exact_rows: bool = False) -> Linearised:
        """Residuals, Jacobian blocks and normal equations at ``state``.

        target : (N, 3) the target body points in the target's frame
        use : (N,) bool or None   vertices with a correspondence; the others' residuals are 0
        exact_rows : bool         the normal matrix from the used rows only (for the posterior);
                                  otherwise from every vertex, constant: a preconditioner whose
                                  fixed point is still the fit of the used rows
        """
        rig, S, N = self.rig, state.S, self.n_body
        sided = self.sided(S)
        up, down = self.piece(S)
        h = self.fd_steps(S)
        M, m = len(self.macros), len(self.fd)
        rows = np.repeat(S[None], 1 + 2 * M + m, axis=0)
        rows[1 + 2 * np.arange(M), self.macros] = up
        rows[2 + 2 * np.arange(M), self.macros] = down
        rows[1 + 2 * M + np.arange(m), self.fd] += h
        Vall = rig.vertices(rows, posed=self.posed)[:, :N].astype(np.float64)
        V = Vall[0]
        cols = [Vall[1:1 + 2 * M] - V,                                       # secants: per unit strength
                (Vall[1 + 2 * M:] - V) * (self.span[self.fd] / h)[:, None, None]]  # per unit z
        if self.rigid:
            cols.append(np.cross(np.eye(3)[:, None, :], V[None]))           # e_k x V
        cols.append(np.broadcast_to(np.eye(3)[:, None, :], (3, N, 3)))      # translation
        Ncols = np.concatenate(cols)
        # the best translation for these vertices, in closed form: the floor shift (a uniform y move,
        # piecewise linear in the sliders through which sole vertex is lowest) then never spoils a step
        Y = V @ state.R.T
        t = np.mean(target - Y if use is None else (target - Y)[use], axis=0)
        r = target - (Y + t)
        if use is not None:
            r = np.where(use[:, None], r, 0.0)
        sse = float(np.sum(r * r))
        r = r @ state.R                                                     # to the rig's frame
        joints = None
        if self.posed and rig.posing.posed_rows(S[None])[0]:
            Mv, dA = skin_matrices(rig, S)                                  # (N, 3, 3), (J, 3, 3)
            r = np.einsum("vji,vj->vi", Mv, r)
            Ncols = np.einsum("vji,kvj->kvi", Mv, Ncols)
            joints = joint_terms(rig, Mv, dA)
        Nf, rf = Ncols.reshape(len(Ncols), -1), r.reshape(-1)
        C = self.mixing(S)
        keep = np.repeat(use, 3) if exact_rows and use is not None else None
        if keep is not None:
            D = self.basis.D[:, keep]
            G = (D @ D.T).toarray()
            Nf, rf = Nf[:, keep], rf[keep]
        else:
            D, G = self.basis.D, self.basis.G
        DN = np.asarray(D @ Nf.T)                                           # (K, m')
        Dr = np.asarray(D @ rf)
        if joints is not None:
            # the joints move with the shape: each field also moves the bones' heads, which carry the
            # posed limbs along (tau, by the chain rule through the skinning transforms): D' = D + LH^T W'^T
            W, L = joints
            if keep is not None:
                W = W[keep]
            LH = L @ self.basis.heads.T                                     # (3J, K)
            DW = np.asarray((D @ W).todense()) @ LH                         # (K, K)
            G = G + DW + DW.T + LH.T @ np.asarray((W.T @ W).todense()) @ LH
            DN = DN + LH.T @ np.asarray(W.T @ Nf.T)
            Dr = Dr + LH.T @ np.asarray(W.T @ rf)
        CGC = self._local_H if G is self.basis.G else C.T @ G @ C   # constant per ethnic shares
        H = np.block([[CGC, C.T @ DN], [DN.T @ C, Nf @ Nf.T]])
        g = np.concatenate([C.T @ Dr, Nf @ rf])
        diag = np.diag(H).copy()
        # the prior: linear sides and the differenced unknowns about the prior centre; macro sides,
        # which are moves, about where they are
        q, n = len(self.sides), len(sided[0])
        zc = np.concatenate([sided[3][:q], self.fd_z(S)])
        z0 = np.concatenate([self.basis.sides_of(self.prior)[self.sides], self.fd_z(self.prior)])
        at = np.concatenate([np.arange(q), n + np.arange(m)])
        H[np.diag_indices_from(H)] += RIDGE
        H[np.arange(q, n), np.arange(q, n)] += RIDGE
        g[at] += RIDGE * (z0 - zc)
        cost = sse + RIDGE * float(np.sum((zc - z0) ** 2))
        if len(self.race) == 3:
            idx = n + self.race
            w = RACE_STIFF * max(float(np.mean(diag[idx])), 1e-12)
            H[np.ix_(idx, idx)] += w
            g[idx] += w * (1.0 - self.fd_z(S)[self.race].sum())
        return Linearised(H, g, cost, sse, diag, V, t, sided)

    # -- knots -----------------------------------------------------------------------------------
    @staticmethod
    def _knots(s) -> tuple[float, ...]:
        """The slider values where MakeHuman's ramps of macro ``s`` bend (age: 10 and 25 years)."""
        if s.macro == "age":
            return tuple(y for _, y in AGE_YEARS[1:-1])
        if s.macro == "gender":
            return ()
        return (0.5 * s.max,)


def _partners(slider: np.ndarray) -> np.ndarray:
    """(n,) index of the other side of each sided unknown's slider (-1 for one-sided ones); a slider's
    sides are adjacent."""
    out = np.full(len(slider), -1, np.int64)
    same = np.flatnonzero(slider[1:] == slider[:-1])
    out[same], out[same + 1] = same + 1, same
    return out


def rotation(w: np.ndarray) -> np.ndarray:
    """Rodrigues: the rotation by the vector ``w`` (3,) (radians times axis)."""
    a = float(np.linalg.norm(w))
    K = np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])
    if a < 1e-12:
        return np.eye(3) + K
    return np.eye(3) + np.sin(a) / a * K + (1 - np.cos(a)) / a ** 2 * K @ K


def skin_matrices(rig, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each body vertex's linear skinning map ``M_v = I + sum_k w_k dA_k`` (N_body, 3, 3) in pose ``S`` (P,),
    and the bones' ``dA`` (J, 3, 3), float64."""
    N = assets.N_BODY
    V0 = rig.vertices(S, posed=False)
    ends = rig.rest_ends(S)
    _, dA, _, _ = rig.posing.bind(V0[None], ends, S[None], N)
    sk = rig.posing.skeleton
    infl, w = sk.influences[:N], sk.weights[:N].astype(np.float64)
    return np.eye(3) + np.einsum("vk,vkij->vij", w, dA[0][infl]), dA[0]


def joint_terms(rig, Mv: np.ndarray, dA: np.ndarray):
    """How a move of the rest bone heads moves the posed body, taken back to the rest pose.

    With every bone's rotation ``A_b = I + dA_b`` held, bone b's translation changes by
    ``tau_b = sum over c in b's chain (root..b) of (A_parent(c) - A_c) dh_c`` for head moves ``dh``,
    and a posed vertex by ``sum_k w_k tau_k``. Returns ``W`` (3 N_body, 3J) sparse: vertex v's
    ``M_v^T w_vk`` at bone ``k``'s columns (the move, back in the rest frame), and ``L`` (3J, 3J): the
    chain sums, ``tau = L dh``. (What is left out: a bone's turn as its direction changes with the
    shape, which is small; the fit's residuals stay exact, so it only slows convergence.)
    """
    import scipy.sparse as sp

    sk = rig.posing.skeleton
    J, N = len(sk.parents), len(Mv)
    L = np.zeros((J, 3, J, 3))
    for b, p in enumerate(sk.parents):          # parents come first
        P = (dA[p] if p >= 0 else 0.0) - dA[b]
        if p >= 0:
            L[b] = L[p]
        L[b, :, b, :] = P
    infl, w = sk.influences[:N], sk.weights[:N].astype(np.float64)
    blocks = np.swapaxes(Mv, 1, 2)[:, None] * w[:, :, None, None]          # (N, 4, 3, 3): M_v^T w_vk
    rows = (3 * np.arange(N))[:, None, None, None] + np.arange(3)[None, None, :, None]
    cols = (3 * infl)[:, :, None, None] + np.arange(3)[None, None, None, :]
    rows, cols = np.broadcast_to(rows, blocks.shape), np.broadcast_to(cols, blocks.shape)
    W = sp.csr_matrix((blocks.ravel(), (rows.ravel(), cols.ravel())), shape=(3 * N, 3 * J))
    return W, L.reshape(3 * J, 3 * J)


def iterate(problem: Problem, state: State, target: np.ndarray, use=None, max_iter: int = 20,
            tol: float = 1e-9, damping: float = 1e-6, lin: Linearised | None = None):
    """Levenberg-Marquardt steps on fixed correspondences.

    Returns ``(state, linearisation at state, iterations, damping)``. Stops when a step lowers the
    cost by less than ``tol`` of it, or after ``max_iter`` linearisations.
    """
    if lin is None:
        lin = problem.linearise(state, target, use)
    state = State(state.S, state.R, lin.t)
    it = 0
    while it < max_iter:
        it += 1
        accepted = False
        for _ in range(6):
            dz = problem.step(lin.H + damping * np.diag(lin.diag), lin.g, state.S, lin.sided)
            new = problem.moved(state, dz, lin.sided)
            new_lin = problem.linearise(new, target, use)
            new = State(new.S, new.R, new_lin.t)
            if new_lin.cost <= lin.cost:
                accepted = True
                break
            damping = min(damping * 10.0, 1e8)
        if not accepted:
            break
        gain = lin.cost - new_lin.cost
        state, lin = new, new_lin
        damping = max(damping / 10.0, 1e-9)
        if gain <= tol * max(lin.cost, 1e-30) or lin.sse < 1e-16 * len(target):
            break
    return state, lin, it, damping


def posterior_sd(problem: Problem, state: State, lin: Linearised, down=()) -> np.ndarray:
    """(P,) each free slider's posterior sd as a fraction of its range (noise SIGMA per coordinate);
    NaN for sliders that are not free. A sided slider counts with one side's column: the side it is
    on (at its default, or a macro inside a piece: the up side, or the only one; the macros of
    ``down``, slider indices, at a knot: the piece below it)."""
    slider, sign, span, strength = lin.sided
    n, q = len(slider), len(problem.sides)
    x = state.S[slider]
    dflt = np.concatenate([problem.basis.side_default[problem.sides], np.full(n - q, np.nan)])
    first = np.ones(n, bool)
    first[1:] = slider[1:] != slider[:-1]
    has = span > 0
    linear_side = np.where(x == dflt, first, (sign > 0) == (x > dflt))
    # macro sides: the up side unless there is none
    partner_has = np.concatenate([has[q:].reshape(-1, 2)[:, ::-1].ravel()]) if n > q else np.zeros(0, bool)
    macro_side = np.where(sign[q:] > 0, has[q:], ~partner_has & has[q:])
    low = np.isin(slider[q:], np.asarray(list(down), np.int64))
    macro_side = np.where(low & has[q:] & partner_has, sign[q:] < 0, macro_side)
    active = np.concatenate([linear_side[:q], macro_side]) & has
    keep = np.concatenate([np.flatnonzero(active), n + np.arange(len(problem.fd) + problem.n_rigid)])
    Hk = lin.H[np.ix_(keep, keep)]
    try:
        Linv = np.linalg.solve(np.linalg.cholesky(Hk), np.eye(len(Hk)))
        var = np.sum(Linv * Linv, axis=0)
    except np.linalg.LinAlgError:
        var = np.diag(np.linalg.pinv(Hk))
    sd = SIGMA * np.sqrt(np.maximum(var, 0.0))
    out = np.full(len(problem.rig.sliders), np.nan)
    k = int(active.sum())
    cols = slider[active]
    out[cols] = sd[:k] * span[active] / problem.span[cols]
    out[problem.fd] = sd[k:k + len(problem.fd)]
    return out


def across_knots(problem: Problem, state: State, sd: np.ndarray, target: np.ndarray, use=None,
                 reach: float = 3.0) -> np.ndarray:
    """(P,) ``sd`` with each macro near a knot of its ramps also judged on the piece across it.

    The posterior is local: a macro's sd comes from the piece of MakeHuman's ramps it sits on. When
    its confidence interval (``reach`` sds) takes in a knot, the value could as well lie on the next
    piece, and there the slider may show far less (the breast macros on a male body: one piece moves
    the mesh, the next barely; a fit then stops short of the knot with a small sd, 5% off the true
    value). Such a macro's sd is the larger of the two pieces' sds: the other piece's comes from the
    posterior at the knot itself, with that piece's column.
    """
    out = sd.copy()
    for i, j in enumerate(problem.macros):
        x, knots = state.S[j], problem.knots[i]
        if not knots or not np.isfinite(sd[j]):
            continue
        k = min(knots, key=lambda k: abs(k - x))
        if abs(k - x) > reach * sd[j] * problem.span[j]:
            continue
        S = state.S.copy()
        S[j] = k
        at = State(S, state.R, state.t)
        lin = problem.linearise(at, target, use, exact_rows=use is not None)
        other = posterior_sd(problem, at, lin, down=(j,) if x > k else ())
        # at the knot: the piece above (x below it) or below (x above it), then the piece x is on
        out[j] = max(sd[j], other[j])
    return out
