"""The compiled blend: macro targets and local fields summed in registers, panel by panel.

Step 3 of the rig (``X = W @ Dm + G @ D``, :mod:`avatar.body.rig`) for a chunk of avatars, in
tiles of ``TILE`` avatars and panels of ``LANES`` consecutive blended coordinates. For one
(tile, panel) the kernel keeps two ``LANES``-float accumulators per avatar in vector registers:

1. macros   acc_m[i] += W[a_i, k] * Dm[panel, k]    over the targets k some avatar of the tile
                                                    weights (a zero weight adds nothing)
2. locals   acc_l[i] += G[a_i, f] * Dl[pair]        over the fields f that move the panel
3. store    X[a_i, panel] = (acc_m[i] + acc_l[i]) - floor[a_i] on the y lanes

Each sum is a chain of fused multiply-adds in a fixed order (targets, then fields, by index),
which is how OpenBLAS's kernels sum one row of a product, so the bytes equal those the rig made
with BLAS products before (the same sha256 for posed, rest and preset avatars). A zero term adds
nothing exactly, as a sum that starts at +0.0 never becomes -0.0, so a tile may sum targets that
only its other avatars weight. The rig runs two passes: the panels holding the soles first (the
floor is their lowest y), then the others with the floor taken off as they are stored. An avatar's bytes depend only on its own
inputs: not on its tile, chunk or thread. BLAS had to multiply every row of a cell's merged
targets (55.6 of 176 are non-zero per avatar) and every field of a block (2.3x its non-zero
pairs, then a scatter into the output); here a tile reads only its targets' rows and a panel
only its fields. The loops are LLVM vector code written with llvmlite (``<16 x float>`` and
``llvm.fma``): numba's own loops did not keep the accumulators in registers (5-20x slower).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from avatar.body import _vector as vx
from avatar.body._vector import LANES

TILE = 8    # avatars per tile: eight independent chains of fused multiply-adds (12 % faster than 4,
            # though a tile of 8 weights 62 targets where one of 4 weights 59)
GROUP = 32  # tiles at a time: their weights and strengths (about 1 MB) stay in cache...
BLOCK = 16  # ...while blocks of 16 panels (their targets, about 350 kB) pass; each row is written in order


def _chain(builder, rows, weights, wstride, index, q0, q1, dbase, by_index):
    """Emit ``acc[i] = sum_q weights[rows[i], index[q]] * D[...]`` for q in q0..q1-1.

    D's row is ``dbase + LANES * index[q]`` (``by_index``: a target's row of the panel) or
    ``dbase + LANES * q`` (a field's own pair row). Returns the TILE accumulators.
    """
    fma, pre = vx.fma(builder), builder.block
    head, body, done = (builder.append_basic_block(s) for s in ("head", "body", "done"))
    wrows = [builder.gep(weights, [builder.mul(r, wstride)]) for r in rows]
    builder.branch(head)
    builder.position_at_end(head)
    q = builder.phi(vx.I64)
    q.add_incoming(q0, pre)
    acc = []
    for _ in rows:
        a = builder.phi(vx.VEC)
        a.add_incoming(ir.Constant(vx.VEC, None), pre)  # +0.0: a sum that starts at +0 adds zeros exactly
        acc.append(a)
    builder.cbranch(builder.icmp_signed("<", q, q1), body, done)
    builder.position_at_end(body)
    k = builder.load(builder.gep(index, [q]))
    row = builder.gep(dbase, [builder.mul(k if by_index else q, ir.Constant(vx.I64, LANES))])
    d = builder.load(builder.bitcast(row, vx.VEC.as_pointer()), align=4)
    new = []
    for w_row, a in zip(wrows, acc):
        new.append(builder.call(fma, [vx.splat(builder, builder.load(builder.gep(w_row, [k]))), d, a]))
    end = builder.block
    q.add_incoming(builder.add(q, ir.Constant(vx.I64, 1)), end)
    for a, v in zip(acc, new):
        a.add_incoming(v, end)
    builder.branch(head)
    builder.position_at_end(done)
    return acc


def _y_lanes(builder, phase):
    """1.0 on a panel's y lanes (coordinate mod 3 == 1, the panel starting at ``phase`` mod 3), 0.0
    elsewhere; all 0.0 for phase 3."""
    masks = [ir.Constant(vx.VEC, [float((ph + j) % 3 == 1) if ph < 3 else 0.0 for j in range(LANES)])
             for ph in range(4)]
    out = masks[3]
    for ph in range(3):
        out = builder.select(builder.icmp_signed("==", phase, ir.Constant(phase.type, ph)), masks[ph], out)
    return out


@intrinsic
def _tile_panel(typingctx, W, G, tiles, t, tk, q0, q1, Dm, p, feats, f0, f1, Dl, X, c0, floor, phase):
    """One (tile, panel): X[a, c0:c0 + LANES] = macro chain + field chain - floor[a] on the y lanes, for each
    avatar a >= 0 of tile t. ``phase`` is the panel's first coordinate mod 3 (3: no y lanes)."""
    f32, i64 = types.float32, types.int64
    if not (vx.c_array(W, f32) and vx.c_array(G, f32) and vx.c_array(tiles, i64) and vx.c_array(tk, i64)
            and vx.c_array(Dm, f32) and vx.c_array(feats, i64) and vx.c_array(Dl, f32) and vx.c_array(X, f32)
            and vx.c_array(floor, f32)):
        return None
    sig = types.void(W, G, tiles, t, tk, q0, q1, Dm, p, feats, f0, f1, Dl, X, c0, floor, phase)

    def codegen(context, builder, signature, args):
        Wv, Gv, Tv, tv, tkv, q0v, q1v, Dmv, pv, Fv, f0v, f1v, Dlv, Xv, c0v, Flv, phv = args
        Wa, Ga, Ta, Ka, Da, Fa, La, Xa, Fl = (context.make_array(signature.args[i])(context, builder, args[i])
                                              for i in (0, 1, 2, 4, 7, 9, 12, 13, 15))
        shape = lambda a, i: builder.extract_value(a.shape, i)  # noqa: E731
        tile = builder.gep(Ta.data, [builder.mul(tv, shape(Ta, 1))])
        slots = [builder.load(builder.gep(tile, [ir.Constant(vx.I64, i)])) for i in range(TILE)]
        zero = ir.Constant(vx.I64, 0)
        rows = [builder.select(builder.icmp_signed("<", s, zero), zero, s) for s in slots]  # -1: an empty slot
        dm = builder.gep(Da.data, [builder.mul(builder.mul(pv, shape(Da, 1)), ir.Constant(vx.I64, LANES))])
        macro = _chain(builder, rows, Wa.data, shape(Wa, 1), Ka.data, q0v, q1v, dm, True)
        local = _chain(builder, rows, Ga.data, shape(Ga, 1), Fa.data, f0v, f1v, La.data, False)
        ys = _y_lanes(builder, phv)
        for s, r, m, loc in zip(slots, rows, macro, local):
            with builder.if_then(builder.icmp_signed(">=", s, zero)):
                at = builder.gep(Xa.data, [builder.add(builder.mul(s, shape(Xa, 1)), c0v)])
                lift = builder.fmul(vx.splat(builder, builder.load(builder.gep(Fl.data, [r]))), ys)
                # (m + l) - floor on y, - 0 elsewhere: exact, as the sum is never -0
                builder.store(builder.fsub(builder.fadd(m, loc), lift), builder.bitcast(at, vx.VEC.as_pointer()), align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def blend(W, G, tiles, tptr, tk, Dm, fptr, feats, Dl, out, side, n_out, n_macro, panels, floor,
          group=GROUP, block=BLOCK):  # pragma: no cover - compiled
    """Blend panels ``panels`` of a chunk: body panels (< n_out) into ``out``, less ``floor`` on y; the
    others into ``side``; macros on panels < n_macro.

    W (n, Tm) macro weights, G (n, K) field strengths, floor (n,), float32; tiles (nt, TILE) avatar
    rows (-1: empty), tile t's targets tk[tptr[t]:tptr[t + 1]]; Dm (n_macro, Tm, LANES) the macro
    targets by panel; panel p's fields feats[fptr[p]:fptr[p + 1]] with rows Dl[fptr[p]:...]
    (pairs, LANES). out (n, >= LANES n_out) and side (n, LANES (all panels - n_out)) float32.
    """
    nt = tiles.shape[0]
    for g in range(0, nt, group):  # a group's weights stay in cache while the panels stream past
        for b in range(0, len(panels), block):  # a block's targets stay in cache while the group's tiles pass
            for t in range(g, min(g + group, nt)):
                for i in range(b, min(b + block, len(panels))):  # each avatar's row written in order
                    p = panels[i]
                    X, c0, phase = (out, p * LANES, p * LANES % 3) if p < n_out else (side, (p - n_out) * LANES, 3)
                    q0, q1 = (tptr[t], tptr[t + 1]) if p < n_macro else (0, 0)
                    _tile_panel(W, G, tiles, t, tk, q0, q1, Dm, min(p, n_macro - 1), feats, fptr[p], fptr[p + 1],
                                Dl, X, c0, floor, phase)


@njit(cache=True, nogil=True)
def lowest(X, cols):  # pragma: no cover - compiled
    """(n,) float32: each row's least value over columns ``cols`` of X (n, m) (numpy's fancy gather
    and min took 13 µs an avatar here for the soles)."""
    out = np.empty(X.shape[0], np.float32)
    for a in range(X.shape[0]):
        m = X[a, cols[0]]
        for c in cols[1:]:
            m = min(m, X[a, c])
        out[a] = m
    return out


@njit(cache=True, nogil=True)
def lower(X, cols, by):  # pragma: no cover - compiled
    """X[a, c] -= by[a] for every row a and column c in ``cols``, in place (numpy's fancy
    read-modify-write took 46 µs an avatar for the first pass's y coordinates)."""
    for a in range(X.shape[0]):
        d = by[a]
        for c in cols:
            X[a, c] -= d


@njit(cache=True, nogil=True)
def bone_ends(X, side, index, weight, n_body, floor, out):  # pragma: no cover - compiled
    """out[a, r] = sum_j row(a, index[r, j]) * weight[r, j] in j order, less floor[a] on y.

    A row below ``n_body`` is the body's, read from X (n, >= 3 n_body); the others are the side
    buffer's rows (n, 3 m) from ``n_body`` on. index, weight (E, w), padded with weight 0; out
    (n, E, 3) float32. The same products and sums, in the same order, as numpy's gather of the
    rows and ``w`` sums over them, which cost 130 µs an avatar here.
    """
    for a in range(X.shape[0]):
        for r in range(index.shape[0]):
            for c in range(3):
                acc = np.float32(0.0)
                for j in range(index.shape[1]):
                    k = index[r, j]
                    v = X[a, 3 * k + c] if k < n_body else side[a, 3 * (k - n_body) + c]
                    acc = v * weight[r, j] if j == 0 else acc + v * weight[r, j]
                out[a, r, c] = acc - floor[a] if c == 1 else acc


@njit(cache=True, nogil=True)
def eyeballs(side, helpers, n_helper, fields, unit, floor, out):  # pragma: no cover - compiled
    """Each avatar's two eyeballs: the unit sphere ``unit`` (k, 3) scaled by its helper eyeball's mean
    distance to its centroid and moved there, plus our deformers' fields on it, less the floor on y.

    side (n, m) float32 the blend's side buffer: helper eyeball e in its rows helpers[e] ..
    helpers[e] + n_helper - 1, the fields on the two spheres in its coordinates from ``fields``; out
    (n, 2k, 3) float32. The arithmetic is that of numpy's ``eyes.fit`` on a batch of avatars (both
    means running sums over the helper's vertices) and of ``radius * unit + centre`` in float32,
    so an avatar alone gets the bytes it gets in a batch.
    """
    k = unit.shape[0]
    centre = np.empty(3, np.float32)
    dist = np.empty(n_helper, np.float32)
    for a in range(side.shape[0]):
        for e in range(2):
            h0 = 3 * helpers[e]
            for c in range(3):
                s = side[a, h0 + c]
                for r in range(1, n_helper):
                    s += side[a, h0 + 3 * r + c]
                centre[c] = s / np.float32(n_helper)
            for r in range(n_helper):
                d0 = side[a, h0 + 3 * r] - centre[0]
                d1 = side[a, h0 + 3 * r + 1] - centre[1]
                d2 = side[a, h0 + 3 * r + 2] - centre[2]
                dist[r] = np.sqrt((d0 * d0 + d1 * d1) + d2 * d2)
            s = dist[0]
            for r in range(1, n_helper):
                s += dist[r]
            radius = s / np.float32(n_helper)
            f0 = fields + 3 * e * k
            for v in range(k):
                for c in range(3):
                    placed = radius * unit[v, c] + centre[c]
                    x = side[a, f0 + 3 * v + c] + placed
                    out[a, e * k + v, c] = x - floor[a] if c == 1 else x

