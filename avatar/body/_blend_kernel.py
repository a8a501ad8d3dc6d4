"""The compiled blend: macro targets and local fields summed in registers, panel by panel.

Step 3 of the rig (``X = W @ Dm + G @ D``, :mod:`avatar.body.rig`) for a chunk of avatars, in
tiles of ``TILE`` avatars and panels of ``PANEL`` consecutive blended coordinates (two 16-float
vectors). For one (tile, panel) the kernel keeps two vectors of accumulators per avatar in registers:

1. macros   acc_m[i] += W[a_i, k] * Dm[panel, k]    over the targets k some avatar of the tile
                                                    weights and that move the panel (bit sets
                                                    of both, intersected word by word)
2. locals   acc_l[i] += G[a_i, f] * Dl[pair]        over the fields f that move the panel
3. store    X[a_i, panel] = (acc_m[i] + acc_l[i]) - floor[a_i] on the y lanes

Each sum is a chain of fused multiply-adds in a fixed order (targets, then fields, by index),
which is how OpenBLAS's kernels sum one row of a product, so the bytes equal those the rig made
with BLAS products before (the same sha256 for posed, rest and preset avatars). A zero term adds
nothing exactly, as a sum that starts at +0.0 never becomes -0.0: a tile may sum targets that
only its other avatars weight, skip the targets that are zero on a panel, and a pair of fields
may cover a panel's two vectors where only one moves. The rig runs two passes: the panels
holding the soles first (the floor is their lowest y), then the others with the floor taken off
as they are stored. An avatar's bytes depend only on its own inputs: not on its tile, chunk or
thread.

Each weight is broadcast once and multiplies both vectors of a row, so a step of the chains is 16
fused multiply-adds for two row loads and eight broadcasts; with one vector a panel the loads
bound the loop, and the y-lane stores of 64 bytes scattered over eight rows cost 2.5x those of
128. The loops are LLVM vector code written with llvmlite (``<16 x float>`` and ``llvm.fma``):
numba's own loops did not keep the accumulators in registers (5-20x slower).

While a block's tiles pass, each (tile, panel) prefetches its share of the next block's macro
targets into L2 (``prefetcht1``): the first tile to read a block otherwise waited on L3 for rows the
hardware could not foresee (they skip the targets a tile does not weight). 1.07-1.12x faster;
prefetching the fields' rows too (which the hardware streams) was slower.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from avatar.body import _vector as vx
from avatar.body._vector import LANES

VECTORS = 2  # vectors a panel: a tile's weight, broadcast once, multiplies both (8 x 2 accumulators); with
             # one, the loads (a row and 8 broadcasts for 8 fused multiply-adds) bound the loop
PANEL = VECTORS * LANES  # coordinates a panel

TILE = 8    # avatars per tile: eight independent chains of fused multiply-adds (12 % faster than 4,
            # though a tile of 8 weights 62 targets where one of 4 weights 59)
GROUP = 32  # tiles at a time: their weights and strengths (about 1 MB) stay in cache...
BLOCK = 16  # ...while blocks of 16 panels (their targets, about 350 kB) pass; each row is written in order


def _accumulators(builder, n: int, pre):
    """``n`` accumulator phis of a loop's head, +0.0 on entry from ``pre`` (a sum that starts at +0 adds
    zeros exactly)."""
    acc = [builder.phi(vx.VEC) for _ in range(n)]
    for a in acc:
        a.add_incoming(ir.Constant(vx.VEC, None), pre)
    return acc


def _fma_step(builder, weights, k, row, acc):
    """acc[i VECTORS + v] + weights[k, i] * row[v] for each avatar i of the tile and vector v of the
    panel's row ``row``: each weight is broadcast once for both vectors. ``weights`` is the tile's
    (columns, TILE) block: a step's eight weights share a cache line."""
    fma = vx.fma(builder)
    d = [builder.load(vx.vector_at(builder, row, ir.Constant(vx.I64, v * LANES)), align=4) for v in range(VECTORS)]
    new = []
    at = builder.gep(weights, [builder.mul(k, ir.Constant(vx.I64, TILE))])
    for i in range(TILE):
        w = vx.splat(builder, builder.load(builder.gep(at, [ir.Constant(vx.I64, i)])))
        new.extend(builder.call(fma, [w, d[v], acc[i * VECTORS + v]]) for v in range(VECTORS))
    return new


def _by_avatar(acc):
    return [acc[i * VECTORS:(i + 1) * VECTORS] for i in range(TILE)]


def _field_chain(builder, weights, index, q0, q1, dbase):
    """Emit ``acc[i][v] = sum_q weights[index[q], i] * D[q][v]`` for q in q0..q1-1, D's rows of
    ``PANEL`` floats from ``dbase`` (a panel's fields). Returns the TILE lists of VECTORS accumulators."""
    pre = builder.block
    head, body, done = (builder.append_basic_block(s) for s in ("head", "body", "done"))
    builder.branch(head)
    builder.position_at_end(head)
    q = builder.phi(vx.I64)
    q.add_incoming(q0, pre)
    acc = _accumulators(builder, TILE * VECTORS, pre)
    builder.cbranch(builder.icmp_signed("<", q, q1), body, done)
    builder.position_at_end(body)
    k = builder.load(builder.gep(index, [q]))
    new = _fma_step(builder, weights, k, builder.gep(dbase, [builder.mul(q, ir.Constant(vx.I64, PANEL))]), acc)
    end = builder.block
    q.add_incoming(builder.add(q, ir.Constant(vx.I64, 1)), end)
    for a, v in zip(acc, new):
        a.add_incoming(v, end)
    builder.branch(head)
    builder.position_at_end(done)
    return _by_avatar(acc)


def _target_chain(builder, weights, tbits, pbits, words, dbase):
    """Emit ``acc[i][v] = sum_k weights[k, i] * D[k][v]`` over the targets k (ascending) set in both
    bit sets ``tbits`` (the tile's weighted targets) and ``pbits`` (those moving the panel), ``words``
    uint64 each; D's rows of ``PANEL`` floats from ``dbase`` (the panel's targets)."""
    pre = builder.block
    head, advance, fetch, body, done = (builder.append_basic_block(s)
                                        for s in ("head", "advance", "fetch", "body", "done"))
    one, bits64 = ir.Constant(vx.I64, 1), ir.Constant(vx.I64, 64)
    builder.branch(head)
    builder.position_at_end(head)       # state: word w, its bits x still to sum
    w, x = builder.phi(vx.I64), builder.phi(vx.I64)
    w.add_incoming(ir.Constant(vx.I64, -1), pre)
    x.add_incoming(ir.Constant(vx.I64, 0), pre)
    acc = _accumulators(builder, TILE * VECTORS, pre)
    builder.cbranch(builder.icmp_unsigned("!=", x, ir.Constant(vx.I64, 0)), body, advance)
    builder.position_at_end(advance)    # the next word, if any
    w1 = builder.add(w, one)
    builder.cbranch(builder.icmp_signed("<", w1, words), fetch, done)
    builder.position_at_end(fetch)
    x1 = builder.and_(builder.load(builder.gep(tbits, [w1])), builder.load(builder.gep(pbits, [w1])))
    w.add_incoming(w1, fetch)
    x.add_incoming(x1, fetch)
    for a in acc:
        a.add_incoming(a, fetch)
    builder.branch(head)
    builder.position_at_end(body)       # the lowest set bit: target 64 w + its index
    cttz = vx.function(builder, "llvm.cttz.i64", vx.I64, [vx.I64, ir.IntType(1)])
    k = builder.add(builder.mul(w, bits64), builder.call(cttz, [x, ir.Constant(ir.IntType(1), 1)]))
    new = _fma_step(builder, weights, k, builder.gep(dbase, [builder.mul(k, ir.Constant(vx.I64, PANEL))]), acc)
    end = builder.block
    w.add_incoming(w, end)
    x.add_incoming(builder.and_(x, builder.sub(x, one)), end)
    for a, v in zip(acc, new):
        a.add_incoming(v, end)
    builder.branch(head)
    builder.position_at_end(done)
    return _by_avatar(acc)


def _y_lanes(builder, phase):
    """1.0 on a vector's y lanes (coordinate mod 3 == 1, the vector starting at ``phase`` mod 3), 0.0
    elsewhere; all 0.0 for phase 3."""
    masks = [ir.Constant(vx.VEC, [float((ph + j) % 3 == 1) if ph < 3 else 0.0 for j in range(LANES)])
             for ph in range(4)]
    out = masks[3]
    for ph in range(3):
        out = builder.select(builder.icmp_signed("==", phase, ir.Constant(phase.type, ph)), masks[ph], out)
    return out


@intrinsic
def _tile_panel(typingctx, W, G, tiles, t, tbits, pbits, words, Dm, p, feats, f0, f1, Dl, X, c0, floor, phase,
                scratch):
    """One (tile, panel): X[a, c0:c0 + PANEL] = macro chain + field chain - floor[a] on the y lanes, for each
    avatar a >= 0 of tile t. The macro chain sums the targets set in both tbits[t] and pbits[p] (``words``
    of them; 0: none). ``phase`` is the panel's first coordinate mod 3 (3: no y lanes). The macro sums wait
    in ``scratch`` (TILE PANEL float32) while the field chain runs: kept in registers, they left too few for
    its accumulators, which LLVM then spilled inside its loop (1.8x slower)."""
    f32, i64, u64 = types.float32, types.int64, types.uint64
    if not (vx.c_array(W, f32) and vx.c_array(G, f32) and vx.c_array(tiles, i64) and vx.c_array(tbits, u64)
            and vx.c_array(pbits, u64) and vx.c_array(Dm, f32) and vx.c_array(feats, i64) and vx.c_array(Dl, f32)
            and vx.c_array(X, f32) and vx.c_array(floor, f32) and vx.c_array(scratch, f32)):
        return None
    sig = types.void(W, G, tiles, t, tbits, pbits, words, Dm, p, feats, f0, f1, Dl, X, c0, floor, phase, scratch)

    def codegen(context, builder, signature, args):
        Wv, Gv, Tv, tv, TBv, PBv, wordsv, Dmv, pv, Fv, f0v, f1v, Dlv, Xv, c0v, Flv, phv, Sv = args
        Wa, Ga, Ta, TB, PB, Da, Fa, La, Xa, Fl, Sa = (context.make_array(signature.args[i])(context, builder, args[i])
                                                      for i in (0, 1, 2, 4, 5, 7, 9, 12, 13, 15, 17))
        shape = lambda a, i: builder.extract_value(a.shape, i)  # noqa: E731
        tile = builder.gep(Ta.data, [builder.mul(tv, shape(Ta, 1))])
        slots = [builder.load(builder.gep(tile, [ir.Constant(vx.I64, i)])) for i in range(TILE)]
        zero = ir.Constant(vx.I64, 0)
        rows = [builder.select(builder.icmp_signed("<", s, zero), zero, s) for s in slots]  # -1: an empty slot
        dm = builder.gep(Da.data, [builder.mul(builder.mul(pv, shape(Da, 1)), ir.Constant(vx.I64, PANEL))])
        tb = builder.gep(TB.data, [builder.mul(tv, shape(TB, 1))])
        pb = builder.gep(PB.data, [builder.mul(pv, shape(PB, 1))])
        wt = builder.gep(Wa.data, [builder.mul(builder.mul(tv, shape(Wa, 1)), ir.Constant(vx.I64, TILE))])
        gt = builder.gep(Ga.data, [builder.mul(builder.mul(tv, shape(Ga, 1)), ir.Constant(vx.I64, TILE))])
        macro = _target_chain(builder, wt, tb, pb, wordsv, dm)
        parked = [vx.vector_at(builder, Sa.data, ir.Constant(vx.I64, j * LANES)) for j in range(TILE * VECTORS)]
        for at, m in zip(parked, (m for ms in macro for m in ms)):
            builder.store(m, at, align=4)
        barrier = ir.FunctionType(ir.VoidType(), [])  # the stores happen here and the loads after: no
        builder.asm(barrier, "", "~{memory}", [], True)  # forwarding that would keep the sums in registers
        local = _field_chain(builder, gt, Fa.data, f0v, f1v, La.data)
        builder.asm(barrier, "", "~{memory}", [], True)
        loaded = iter([builder.load(at, align=4) for at in parked])
        macro = [[next(loaded) for _ in range(VECTORS)] for _ in range(TILE)]
        three = ir.Constant(phv.type, 3)  # the vectors' phases: phase + 16 v mod 3 (3 stays 3: no y lanes)
        ys = [_y_lanes(builder, builder.select(builder.icmp_signed("<", phv, three),
                                               builder.urem(builder.add(phv, ir.Constant(phv.type, v * LANES)), three),
                                               three)) for v in range(VECTORS)]
        for s, r, m, loc in zip(slots, rows, macro, local):
            with builder.if_then(builder.icmp_signed(">=", s, zero)):
                at = builder.gep(Xa.data, [builder.add(builder.mul(s, shape(Xa, 1)), c0v)])
                floor_a = vx.splat(builder, builder.load(builder.gep(Fl.data, [r])))
                for v in range(VECTORS):  # (m + l) - floor on y, - 0 elsewhere: exact, as the sum is never -0
                    value = builder.fsub(builder.fadd(m[v], loc[v]), builder.fmul(floor_a, ys[v]))
                    builder.store(value, vx.vector_at(builder, at, ir.Constant(vx.I64, v * LANES)), align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def blend(W, G, tiles, tbits, Dm, pbits, fptr, feats, Dl, out, side, n_out, n_macro, panels,
          floor):  # pragma: no cover - compiled
    """Blend panels ``panels`` of a chunk: body panels (< n_out) into ``out``, less ``floor`` on y; the
    others into ``side``; macros on panels < n_macro.

    W (nt, Tm, TILE) macro weights and G (nt, K, TILE) field strengths tile by tile (each tile's avatars
    side by side: ``blend.by_tile``), floor (n,), float32; tiles (nt, TILE) avatar rows (-1: empty),
    tbits (nt, words) uint64 the targets each tile weights, as bit sets; Dm (n_macro,
    Tm, PANEL) the macro targets by panel, pbits (n_macro, words) those non-zero on each; panel p's
    fields feats[fptr[p]:fptr[p + 1]] with rows Dl[fptr[p]:...] (pairs, PANEL). out (n, >= PANEL n_out)
    and side (n, PANEL (all panels - n_out)) float32.

    No argument has a default: numba's dispatcher types a call that omits one in Python (150 µs
    holding the GIL, here), where a full call takes 1 µs.
    """
    nt = tiles.shape[0]
    scratch = np.empty(TILE * PANEL, np.float32)
    flat, row = Dm.reshape(-1), Dm.shape[1] * PANEL * 4  # a panel's macro targets: bytes
    for g in range(0, nt, GROUP):  # a group's weights stay in cache while the panels stream past
        share = -(-row // (min(g + GROUP, nt) - g))  # bytes of each next-block panel a tile prefetches
        for b in range(0, len(panels), BLOCK):  # a block's targets stay in cache while the group's tiles pass
            for t in range(g, min(g + GROUP, nt)):
                lo = (t - g) * share
                hi = min(lo + share, row)
                for i in range(b, min(b + BLOCK, len(panels))):  # each avatar's row written in order
                    if i + BLOCK < len(panels) and panels[i + BLOCK] < n_macro:  # the next block's targets
                        vx.prefetch(flat, panels[i + BLOCK] * row + lo, panels[i + BLOCK] * row + hi)  # from L3
                    p = panels[i]
                    X, c0, phase = (out, p * PANEL, p * PANEL % 3) if p < n_out else (side, (p - n_out) * PANEL, 3)
                    words = tbits.shape[1] if p < n_macro else 0
                    _tile_panel(W, G, tiles, t, tbits, pbits, words, Dm, min(p, n_macro - 1), feats, fptr[p],
                                fptr[p + 1], Dl, X, c0, floor, phase, scratch)


@intrinsic
def _panel_step(typingctx, X, at, add, i, acc, by):
    """One panel of a row (PANEL floats of flat X from ``at``) with row i of ``add`` (P, PANEL) float32:
    acc = minnum(acc, x + add[i]) lane by lane when ``by`` is None, else x -= by * add[i] in place."""
    lowering = not isinstance(by, types.NoneType)
    sig = types.void(X, at, add, i, acc, by)

    def codegen(context, builder, signature, args):
        Xa, Aa, Ca = (context.make_array(signature.args[k])(context, builder, args[k]) for k in (0, 2, 4))
        row = builder.gep(Aa.data, [builder.mul(args[3], ir.Constant(vx.I64, PANEL))])
        least = vx.function(builder, f"llvm.minnum.v{LANES}f32", vx.VEC, [vx.VEC] * 2)
        for v in range(VECTORS):
            off = ir.Constant(vx.I64, v * LANES)
            xp = vx.vector_at(builder, Xa.data, builder.add(args[1], off))
            x, m = builder.load(xp, align=4), builder.load(vx.vector_at(builder, row, off), align=4)
            if lowering:
                builder.store(builder.fsub(x, builder.fmul(vx.splat(builder, args[5]), m)), xp, align=4)
            else:
                cp = vx.vector_at(builder, Ca.data, off)
                builder.store(builder.call(least, [builder.load(cp, align=4), builder.fadd(x, m)]), cp, align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def lowest(X, starts, add):  # pragma: no cover - compiled
    """(n,) float32: each row's least value of X (n, m) over the columns starts[i] + j where add[i, j]
    is 0 (add (P, PANEL) float32, +inf elsewhere: x + inf is inf, and ``minnum`` passes over the NaN a
    stale lane may hold). Whole panels as vector code: an indexed loop over the soles' 2,136 y
    coordinates took 4 µs an avatar, the vectors 0.3."""
    out = np.empty(X.shape[0], np.float32)
    acc = np.empty(PANEL, np.float32)
    flat = X.reshape(-1)
    for a in range(X.shape[0]):
        acc[:] = np.inf
        for i in range(starts.shape[0]):
            _panel_step(flat, a * X.shape[1] + starts[i], add, i, acc, None)
        out[a] = acc.min()
    return out


@njit(cache=True, nogil=True)
def lower(X, starts, ys, by):  # pragma: no cover - compiled
    """X[a, starts[i] + j] -= by[a] * ys[i, j] in place (ys (P, PANEL) float32: 1 on the coordinates to
    lower, 0 elsewhere). ``x - 0`` is x for every value the blend stores (never -0), so whole panels
    go as vector code (an indexed loop over the first pass's 2,954 y coordinates took 5 µs an avatar)."""
    flat = X.reshape(-1)
    for a in range(X.shape[0]):
        for i in range(starts.shape[0]):
            _panel_step(flat, a * X.shape[1] + starts[i], ys, i, ys, by[a])


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
            c0, c1, c2, fl = centre[0], centre[1], centre[2], floor[a]
            for v in range(k):  # x - 0 is x for every sum here (never -0): no branch on the axis
                out[a, e * k + v, 0] = side[a, f0 + 3 * v] + (radius * unit[v, 0] + c0)
                out[a, e * k + v, 1] = (side[a, f0 + 3 * v + 1] + (radius * unit[v, 1] + c1)) - fl
                out[a, e * k + v, 2] = side[a, f0 + 3 * v + 2] + (radius * unit[v, 2] + c2)



@njit(cache=True, nogil=True)
def ground(X, side, soles, lifts, ends_by, want_ends, ends, eyes_by, eyes_out, floor):  # pragma: no cover - compiled
    """The first pass's follow-up, avatar by avatar: floor[a] = the least sole y (:func:`lowest`), the
    bone ends when ``want_ends`` (:func:`bone_ends`, from the unfloored rows), the first pass's y
    coordinates floored (:func:`lower`) and the eyeballs placed (:func:`eyeballs`).

    soles = (starts, add) and lifts = (starts, ys) as :func:`lowest` and :func:`lower` take them, ends_by
    = (index, weight, n_body), eyes_by = (helpers, n_helper, fields, unit). One avatar at a time, its
    rows still in L2 from one step to the next, while the next avatar's first-pass panels (which the
    blend wrote long before: L3) are prefetched.
    """
    row_floats = X.shape[1]
    flat = X.reshape(-1)
    for a in range(X.shape[0]):
        if a + 1 < X.shape[0]:
            nxt = (a + 1) * row_floats * 4
            for i in range(lifts[0].shape[0]):
                vx.prefetch(flat, nxt + lifts[0][i] * 4, nxt + lifts[0][i] * 4 + PANEL * 4)
        r = slice(a, a + 1)
        floor[a] = lowest(X[r], soles[0], soles[1])[0]
        if want_ends:
            bone_ends(X[r], side[r], ends_by[0], ends_by[1], ends_by[2], floor[r], ends[r])
        lower(X[r], lifts[0], lifts[1], floor[r])
        eyeballs(side[r], eyes_by[0], eyes_by[1], eyes_by[2], eyes_by[3], floor[r], eyes_out[r])
