"""Bounded Levenberg-Marquardt on the rig's sliders, a rigid transform and fixed correspondences.

The model of the target's body vertices (N, 3), in the target's frame, is

    y(S, R, t) = V(S) R^T + t          V = rig.vertices(S)[:N_body] (posed or at rest)

The unknowns of one step, all scaled to about unit size:

* **linear sliders** by their two *sides* (:mod:`.linear`), strengths in [0, 1] with a constant,
  exact Jacobian ``D^T C`` (``C`` changes with the ethnic shares only);
* **macros with ramps** (gender, age, muscle, weight, height, proportions, cup size, firmness) by
  two sides too: towards the next knot of MakeHuman's ramps above the current value, and towards
  the next one below (the bound where there is none). At rest the blend is linear in a macro
  between two knots (the others fixed), so each side's column is the exact secant
  ``V(knot) - V(v)``, one ``rig.vertices`` row each; a step never crosses a knot, and at a knot both
  pieces are seen. (With one-sided differences across knots the fit stuck at a knot, on the wrong
  piece, with the local sliders making up the difference.) Posed, the bones turn as a macro moves
  the joints, so the secant is no longer the derivative (3-17 % off it at a strong pose): each side's
  column is then a one-sided difference inside its piece, scaled to the side's span. Per slider,
  only one side moves (:meth:`Problem.step`);
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

Posed targets: the Gauss-Newton model is exact too. The non-linear columns are differences of the
posed vertices; the linear sides' posed Jacobian is ``(blockdiag(M_v) D^T + W B) C``
(:func:`joint_terms`): their rest moves carried into the pose by each vertex's skinning matrix
``M_v = I + sum_k w_k dA_k``, plus the turned bones' transforms changing as the fields move the bone
ends (the heads carry the limbs along, and head and tail together turn each bone's frame). It enters
the normal equations without the dense (3 N, K) matrix: ``D M^T`` is as sparse as ``D``, ``W`` is
sparse and ``B`` is (12 T, K) for the T turned bones.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avatar.body import assets, pose
from avatar.body.macros import AGE_YEARS
from .linear import LocalBasis
from .qp import box_qp

SIGMA = 1e-4        # m: the vertex noise (per coordinate) the posterior sd is quoted at
RIDGE = SIGMA ** 2  # the prior: sd of one range (or one side) per unknown, at noise SIGMA
FD_STEP = 2e-3      # finite-difference step (ethnic shares, pose; posed, the macros), as a fraction of the range
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
        wrong) changes side, and the QP is solved again (at most 4 rounds). Sending a slider across its
        default takes its current side's strength to 0 in one step, which can be worse than no step at
        all (no damping then makes it acceptable: a posed fit spent 40 iterations so); so when the
        guess does, the QP with those sliders kept on their sides is solved too, and the step with
        the lower model value wins.
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

        def solve(on, x):
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
                on = on.copy()
                on[flip], on[partner[flip]] = True, False
            return x

        x = solve(on, free)
        # sliders the guess sends across their defaults: kept on their sides where the model prefers it
        across = ~on & (strength > 0)
        if across.any():
            stay = on.copy()
            stay[across], stay[partner[across & has]] = True, False
            x2 = solve(stay, x)
            model = lambda v: 0.5 * v @ H @ v - g @ v  # noqa: E731
            if model(x2) < model(x):
                x = x2
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
        posed = self.posed and bool(rig.posing.posed_rows(S[None])[0])
        # the macros' sides: at rest the blend is linear in a macro within a piece, so the secant to the
        # piece's end is exact; posed it is not (the bones turn as the macro moves the joints: the
        # secant was 3-17 % off the derivative at a strong pose), so a short one-sided difference
        # inside the piece, scaled to the side's span
        x = S[self.macros]
        reach = np.stack([up - x, x - down], axis=1).ravel()                # (2M,) the sides' spans
        move = np.minimum(reach, FD_STEP * np.repeat(self.span[self.macros], 2)) if posed else reach
        rows = np.repeat(S[None], 1 + 2 * M + m, axis=0)
        if posed:
            rows[1 + np.arange(2 * M), np.repeat(self.macros, 2)] += np.tile([1.0, -1.0], M) * move
        else:
            rows[1 + 2 * np.arange(M), self.macros] = up
            rows[2 + 2 * np.arange(M), self.macros] = down
        rows[1 + 2 * M + np.arange(m), self.fd] += h
        Vall = rig.vertices(rows, posed=self.posed)[:, :N].astype(np.float64)
        V = Vall[0]
        per = np.divide(reach, move, out=np.zeros_like(reach), where=move > 0)
        cols = [(Vall[1:1 + 2 * M] - V) * per[:, None, None],               # per unit strength
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
        joints = joint_terms(rig, S, self.basis.ends) if posed else None
        Nf, rf = Ncols.reshape(len(Ncols), -1), r.reshape(-1)
        C = self.mixing(S)
        keep = np.repeat(use, 3) if exact_rows and use is not None else None
        if keep is not None:
            Nf, rf = Nf[:, keep], rf[keep]
        if joints is None:
            D, G = self.basis.D, self.basis.G
            if keep is not None:
                D = D[:, keep]
                G = (D @ D.T).toarray()
            DN = np.asarray(D @ Nf.T)                                       # (K, m')
            Dr = np.asarray(D @ rf)
        else:
            # posed, the fields' exact posed Jacobian (joint_terms), transposed: D' = Dp + B^T W^T (K, 3N)
            # 1. Dp = D blockdiag(M_v)^T (K, 3N)     the rest moves carried into the pose
            # 2. W B (3N, K)                        the turned bones' transforms moving with the bone ends
            # 3. D' D'^T = Dp Dp^T + Dp W B + (Dp W B)^T + B^T W^T W B (K, K); D' N^T and D' r likewise
            Dp, W, B = posed_fields(self.basis.D, joints.Mv), joints.W, joints.B
            if keep is not None:
                Dp, W = Dp[:, keep], W[keep]
                G = (Dp @ Dp.T).toarray()
            else:
                # Dp Dp^T = D blockdiag(M_v^T M_v) D^T: G plus the vertices whose M_v is no rotation
                mix = np.flatnonzero(joints.mixed)
                Mm = joints.Mv[mix]
                Dm = self.basis.D[:, (3 * mix[:, None] + np.arange(3)).ravel()]
                G = self.basis.G + (Dm @ _block_diagonal(np.einsum("vji,vjk->vik", Mm, Mm) - np.eye(3))
                                    @ Dm.T).toarray()
            DWB = np.asarray((Dp @ W).todense()) @ B                        # (K, K)
            G = G + DWB + DWB.T + B.T @ ((W.T @ W) @ B)
            DN = np.asarray(Dp @ Nf.T) + B.T @ np.asarray(W.T @ Nf.T)
            Dr = np.asarray(Dp @ rf) + B.T @ np.asarray(W.T @ rf)
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


def bone_turns(heads: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """How the bones' rest frames (``pose.bone_frames``) turn as their ends move.

    heads, tails : (J, 3) float64 rest bone ends
    returns      : (J, 3, 3) ``Om``: a move ``(dh_b, de_b)`` of bone b's head and tail turns its frame
                   by ``omega_b = Om_b (de_b - dh_b)``, ``dF_b = [omega_b]x F_b``

    1. direction  ``d = C u / |u|`` (Blender's axes, ``u = e - h``) moves by ``dd = (I - d d^T) C du / |u|``
    2. rotation   ``R(d) = I + [v]x + [v]x^2 k`` (+y onto d), ``k = 1 / (1 + y)``; for y < 0,
                  ``(1 - y) / (x^2 + z^2)`` as ``bone_frames`` computes it: the same on the unit sphere,
                  and so along it its derivative (the only direction ``dd`` takes)
    3. turn       ``dR R^T = [sigma]x``, ``sigma = sum_c vee(dR/dd_c R^T) dd_c``
    4. frame      ``F = C^T R Roll``: ``dF F^T = C^T [sigma]x C = [C^T sigma]x``, so ``omega = C^T sigma``

    A bone pointing straight down Blender's -y (where the smallest rotation jumps) gets 0.
    """
    C = pose.C
    u = tails - heads
    n = np.maximum(np.linalg.norm(u, axis=1), 1e-12)
    d = (u @ C.T) / n[:, None]                                          # 1.
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    alt = np.maximum(x * x + z * z, 1e-300)
    up = y >= 0
    k = np.where(up, 1.0 / np.maximum(1.0 + y, 1e-300), (1.0 - y) / alt)   # 2.
    kx = np.where(up, 0.0, -2.0 * x * (1.0 - y) / alt ** 2)
    ky = np.where(up, -k * k, -1.0 / alt)
    kz = np.where(up, 0.0, -2.0 * z * (1.0 - y) / alt ** 2)
    J, zero, one = len(d), np.zeros(len(d)), np.ones(len(d))
    R = np.stack([np.stack([1 - x * x * k, x, -x * z * k], -1),
                  np.stack([-x, y, -z], -1),
                  np.stack([-x * z * k, z, 1 - z * z * k], -1)], 1)     # (J, 3, 3)
    dxz = np.stack([-z * k - x * z * kx, -x * z * ky, -x * k - x * z * kz], -1)
    dR = np.stack([np.stack([np.stack([-2 * x * k - x * x * kx, -x * x * ky, -x * x * kz], -1),
                             np.stack([one, zero, zero], -1), dxz], 1),
                   np.stack([np.stack([-one, zero, zero], -1), np.stack([zero, one, zero], -1),
                             np.stack([zero, zero, -one], -1)], 1),
                   np.stack([dxz, np.stack([zero, zero, one], -1),
                             np.stack([-z * z * kx, -z * z * ky, -2 * z * k - z * z * kz], -1)], 1)],
                  1)                                                     # (J, 3, 3, c): dR / dd_c
    T = np.einsum("jabc,jdb->jadc", dR, R)                              # 3. (J, 3, 3, c): dR/dd_c R^T
    sigma = 0.5 * np.stack([T[:, 2, 1] - T[:, 1, 2], T[:, 0, 2] - T[:, 2, 0], T[:, 1, 0] - T[:, 0, 1]], 1)
    P = (np.eye(3) - d[:, :, None] * d[:, None, :]) / n[:, None, None]
    Om = C.T @ sigma @ P @ C                                            # 4. (J, 3, 3)
    Om[(y < 0) & (x * x + z * z <= 1e-24)] = 0.0
    return Om


def _skew(w: np.ndarray) -> np.ndarray:
    """(T, 3, K) vectors -> (T, 3, 3, K) their cross-product matrices ``[w]x``."""
    out = np.zeros(w.shape[:1] + (3, 3) + w.shape[2:])
    out[:, 0, 1], out[:, 0, 2], out[:, 1, 2] = -w[:, 2], w[:, 1], -w[:, 0]
    out[:, 1, 0], out[:, 2, 0], out[:, 2, 1] = w[:, 2], -w[:, 1], w[:, 0]
    return out


@dataclass
class JointTerms:
    """How the posed body moves with the local fields through its skeleton (:func:`joint_terms`)."""

    Mv: np.ndarray         # (N_body, 3, 3) each vertex's skinning map, ``M_v = I + sum_k w_vk dA_k``
    W: object              # scipy.sparse.csr_matrix (3 N_body, 12 T): skinning of the bones' transforms' changes
    B: np.ndarray          # (12 T, K) the turned bones' transform changes per unit field strength
    mixed: np.ndarray      # (N_body,) bool: vertices skinned by bones of different transforms


def joint_terms(rig, S: np.ndarray, fields: np.ndarray) -> JointTerms:
    """The exact posed Jacobian of the local fields, beyond their rest moves: through the bones.

    Linear blend skinning poses rest vertex ``x_v`` as ``p_v = x_v + sum_k w_vk (dA_k x_v + t_k)``,
    where bone k's transform ``(I + dA_k, t_k)`` is built from the rest bone ends (heads ``h``, tails
    ``e``) and the pose sliders (``pose.skinning_transforms``). A change of the fields moves ``x_v``
    (``D^T``, carried into the pose by ``M_v``) and the ends, and with them every turned bone:

    1. frame    ``dF_b = [omega_b]x F_b``, ``omega_b = Om_b (de_b - dh_b)``        (:func:`bone_turns`)
    2. local    ``dL_b = F_b (Q_b - I) F_b^T``:  ``d(dL_b) = [omega_b]x dL_b - dL_b [omega_b]x``;
                ``tL_b = -dL_b h_b``:  ``d(tL_b) = -d(dL_b) h_b - dL_b dh_b``
    3. world    ``(I + dA_b, t_b) = (I + dA_p, t_p) o (I + dL_b, tL_b)``, parents first:
                ``d(dA_b) = d(dA_p) (I + dL_b) + (I + dA_p) d(dL_b)``
                ``d(t_b)  = d(t_p) + d(dA_p) tL_b + (I + dA_p) d(tL_b)``;
                a bone the pose does not turn carries its parent's transform, and its change
    4. skin     ``dp_v = M_v dx_v + sum_k w_vk (d(dA_k) x_v + d(t_k))``

    With the frames held (``omega = 0``), step 3's translation is the chain sum of the head moves
    alone, ``sum_c (A_parent(c) - A_c) dh_c``. The frames' turn is most of it at strong poses: at a
    hip flexed 24 degrees the posed column of a torso or upper-leg slider was 60-100 % off without it.

    Parameters
    ----------
    rig : avatar.Rig
    S : (P,) float64 slider values, some pose slider non-zero
    fields : (K, 6 J) float64 the fields' moves of the rest bone ends (``LocalBasis.ends``)

    Returns
    -------
    JointTerms
        ``Mv``; ``W`` (3 N_body, 12 T): vertex v's ``sum_k w_vk [x_v^T (x) I_3 | I_3]`` at the columns of
        the transform bone k carries (T turned bones, each ``dA_b`` row-major then ``t_b``); ``B``
        (12 T, K): step 3 per unit field strength; so the fields' posed Jacobian is
        ``blockdiag(M_v) D^T + W B`` (3 N_body, K).
    """
    import scipy.sparse as sp

    sk, N, K = rig.posing.skeleton, assets.N_BODY, fields.shape[0]
    J, eye = len(sk.parents), np.eye(3)
    V0, ends = rig._rest(np.atleast_2d(rig.values(S)))           # one blend: rest vertices and bone ends
    x = V0[0, :N].astype(np.float64)
    heads, tails = ends[0, 0::2].astype(np.float64), ends[0, 1::2].astype(np.float64)
    frames = pose.bone_frames(heads, tails, sk.rolls)                  # (J, 3, 3)
    Q = pose.euler_xyz(rig.posing.angles(S[None])[0])                 # (J, 3, 3)
    dA = pose.skinning_transforms(sk.parents, heads[None], frames[None], Q[None])[0][0]
    infl, w = sk.influences[:N], sk.weights[:N].astype(np.float64)
    Mv = eye + np.einsum("vk,vkij->vij", w, dA[infl])
    # the turned bones, and the turned bone whose transform each bone carries (-1: none, the identity)
    turned = np.any(Q != eye, axis=(1, 2))
    carrier = np.full(J, -1, np.int64)
    for level in sk.levels:                                           # parents first
        p = sk.parents[level]
        carrier[level] = np.where(turned[level], level, np.where(p >= 0, carrier[np.maximum(p, 0)], -1))
    Tb = np.flatnonzero(turned)
    slot = np.full(J, -1, np.int64)
    slot[Tb] = np.arange(len(Tb))
    # 1.-2. the turned bones' local transforms' changes, per field (K last)
    moves = fields.reshape(K, J, 2, 3)[:, Tb]
    dh, de = moves[:, :, 0], moves[:, :, 1]                           # (K, T, 3)
    omega = np.einsum("tij,ktj->tik", bone_turns(heads[Tb], tails[Tb]), de - dh)   # (T, 3, K)
    F = frames[Tb]
    dL = F @ (Q[Tb] - eye) @ np.swapaxes(F, 1, 2)                     # (T, 3, 3)
    tL = -np.einsum("tij,tj->ti", dL, heads[Tb])                       # (T, 3)
    Wx = _skew(omega)
    ddL = np.einsum("tijk,tjl->tilk", Wx, dL) - np.einsum("tij,tjlk->tilk", dL, Wx)   # (T, 3, 3, K)
    dtL = -np.einsum("tijk,tj->tik", ddL, heads[Tb]) - np.einsum("tij,ktj->tik", dL, dh)  # (T, 3, K)
    # 3. the world transforms' changes, level by level
    gA, gt = np.zeros((len(Tb), 3, 3, K)), np.zeros((len(Tb), 3, K))
    for level in sk.levels:
        own = level[turned[level]]
        if not len(own):
            continue
        i, p = slot[own], sk.parents[own]
        Ap = eye + np.where((p >= 0)[:, None, None], dA[np.maximum(p, 0)], 0.0)   # (n, 3, 3)
        gA[i] = np.einsum("nij,njlk->nilk", Ap, ddL[i])
        gt[i] = np.einsum("nij,njk->nik", Ap, dtL[i])
        c = np.where(p >= 0, carrier[np.maximum(p, 0)], -1)
        has = c >= 0
        if has.any():
            ih, ch = i[has], slot[c[has]]
            gA[ih] += np.einsum("nijk,njl->nilk", gA[ch], eye + dL[ih])
            gt[ih] += gt[ch] + np.einsum("nijk,nj->nik", gA[ch], tL[ih])
    B = np.concatenate([gA.reshape(len(Tb), 9, K), gt], axis=1).reshape(12 * len(Tb), K)
    # 4. W: coordinate i of vertex v takes w_vk x_v at bone k's dA row i and w_vk at its t_i
    cv = carrier[infl]                                                 # (N, 4)
    on = (w > 0) & (cv >= 0)
    base = 12 * np.maximum(slot[np.maximum(cv, 0)], 0)                # (N, 4)
    i3 = np.arange(3)
    cols = np.concatenate([base[:, :, None, None] + 3 * i3[None, None, :, None] + i3[None, None, None, :],
                           base[:, :, None, None] + 9 + i3[None, None, :, None]], axis=3)   # (N, 4, 3, 4)
    vals = np.concatenate([np.broadcast_to(x[:, None, None, :], (N, 4, 3, 3)),
                           np.ones((N, 4, 3, 1))], axis=3) * (w * on)[:, :, None, None]
    rows = np.broadcast_to((3 * np.arange(N))[:, None, None, None] + i3[None, None, :, None], cols.shape)
    keep = np.broadcast_to(on[:, :, None, None], cols.shape)
    W = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(3 * N, 12 * len(Tb)))
    ref = carrier[infl[np.arange(N), np.argmax(w, axis=1)]]
    mixed = np.any((w > 0) & (cv != ref[:, None]), axis=1)
    return JointTerms(Mv, W, B, mixed)


def _block_diagonal(blocks: np.ndarray):
    """(n, 3, 3) blocks -> scipy.sparse.csr_matrix (3n, 3n), block-diagonal."""
    import scipy.sparse as sp

    n = len(blocks)
    r = 3 * np.arange(n)[:, None, None]
    rows = np.broadcast_to(r + np.arange(3)[None, :, None], (n, 3, 3))
    cols = np.broadcast_to(r + np.arange(3)[None, None, :], (n, 3, 3))
    return sp.csr_matrix((blocks.ravel(), (rows.ravel(), cols.ravel())), shape=(3 * n, 3 * n))


def posed_fields(D, Mv: np.ndarray):
    """``D blockdiag(M_v)^T`` (K, 3 N) sparse: the local fields' rest moves carried into the pose (row k:
    field k's ``M_v D_v`` at vertex v's coordinates); ``D`` (K, 3 N) sparse, ``Mv`` (N, 3, 3)."""
    return (D @ _block_diagonal(np.swapaxes(Mv, 1, 2))).tocsr()   # block v of the product's factor: M_v^T


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
