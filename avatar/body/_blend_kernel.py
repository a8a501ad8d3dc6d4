"""The compiled blend: macro targets and local fields summed in registers, panel by panel.

Step 3 of the rig (``X = W @ Dm + G @ D``, :mod:`avatar.body.rig`) for a chunk of avatars, in
tiles of ``TILE`` avatars and panels of ``LANES`` consecutive blended coordinates. For one
(tile, panel) the kernel keeps two ``LANES``-float accumulators per avatar in vector registers:

1. macros   acc_m[i] += W[a_i, k] * Dm[panel, k]    over the targets k some avatar of the tile
                                                    weights (a zero weight adds nothing)
2. locals   acc_l[i] += G[a_i, f] * Dl[pair]        over the fields f that move the panel
3. store    X[a_i, panel] = acc_m[i] + acc_l[i]

Each sum is a chain of fused multiply-adds in a fixed order (targets, then fields, by index),
which is how OpenBLAS's kernels sum one row of a product, so the bytes equal those of the
BLAS products this replaces (``tests/test_body.py``). An avatar's bytes depend only on its own
inputs: not on its tile, chunk or thread. BLAS had to multiply every row of a cell's merged
targets (55.6 of 176 are non-zero per avatar) and every field of a block (2.3x its non-zero
pairs, then a scatter into the output); here a tile reads only its targets' rows and a panel
only its fields. The loops are LLVM vector code written with llvmlite (``<16 x float>`` and
``llvm.fma``): numba's own loops did not keep the accumulators in registers (5-20x slower).
"""
from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

TILE = 4    # avatars per tile: four independent chains of fused multiply-adds (6 and 8 ran no faster:
            # their tiles weight more targets)
LANES = 16  # floats per panel: one 512-bit vector (two 256-bit ones on AVX2)
GROUP = 64  # tiles at a time: their weights and strengths (about 1 MB) stay in cache...
BLOCK = 16  # ...while blocks of 16 panels (their targets, about 350 kB) pass; each row is written in order

_I64, _F32 = ir.IntType(64), ir.FloatType()
_VEC = ir.VectorType(_F32, LANES)


def _c_array(ty, dtype) -> bool:
    return isinstance(ty, types.Array) and ty.layout == "C" and ty.dtype == dtype


def _fma(builder):
    name = f"llvm.fma.v{LANES}f32"
    fn = builder.module.globals.get(name)
    return fn or ir.Function(builder.module, ir.FunctionType(_VEC, [_VEC] * 3), name)


def _chain(builder, rows, weights, wstride, index, q0, q1, dbase, by_index):
    """Emit ``acc[i] = sum_q weights[rows[i], index[q]] * D[...]`` for q in q0..q1-1.

    D's row is ``dbase + LANES * index[q]`` (``by_index``: a target's row of the panel) or
    ``dbase + LANES * q`` (a field's own pair row). Returns the TILE accumulators.
    """
    fma, pre = _fma(builder), builder.block
    head, body, done = (builder.append_basic_block(s) for s in ("head", "body", "done"))
    wrows = [builder.gep(weights, [builder.mul(r, wstride)]) for r in rows]
    builder.branch(head)
    builder.position_at_end(head)
    q = builder.phi(_I64)
    q.add_incoming(q0, pre)
    acc = []
    for _ in rows:
        a = builder.phi(_VEC)
        a.add_incoming(ir.Constant(_VEC, None), pre)  # +0.0: a sum that starts at +0 adds zeros exactly
        acc.append(a)
    builder.cbranch(builder.icmp_signed("<", q, q1), body, done)
    builder.position_at_end(body)
    k = builder.load(builder.gep(index, [q]))
    row = builder.gep(dbase, [builder.mul(k if by_index else q, ir.Constant(_I64, LANES))])
    d = builder.load(builder.bitcast(row, _VEC.as_pointer()), align=4)
    new = []
    for w_row, a in zip(wrows, acc):
        w = builder.load(builder.gep(w_row, [k]))
        splat = builder.insert_element(ir.Constant(_VEC, None), w, ir.Constant(ir.IntType(32), 0))
        splat = builder.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))
        new.append(builder.call(fma, [splat, d, a]))
    end = builder.block
    q.add_incoming(builder.add(q, ir.Constant(_I64, 1)), end)
    for a, v in zip(acc, new):
        a.add_incoming(v, end)
    builder.branch(head)
    builder.position_at_end(done)
    return acc


@intrinsic
def _tile_panel(typingctx, W, G, tiles, t, tk, q0, q1, Dm, p, feats, f0, f1, Dl, X, c0):
    """One (tile, panel): X[a, c0:c0 + LANES] = macro chain + field chain, for each avatar a >= 0 of tile t."""
    f32, i64 = types.float32, types.int64
    if not (_c_array(W, f32) and _c_array(G, f32) and _c_array(tiles, i64) and _c_array(tk, i64)
            and _c_array(Dm, f32) and _c_array(feats, i64) and _c_array(Dl, f32) and _c_array(X, f32)):
        return None
    sig = types.void(W, G, tiles, t, tk, q0, q1, Dm, p, feats, f0, f1, Dl, X, c0)

    def codegen(context, builder, signature, args):
        Wv, Gv, Tv, tv, tkv, q0v, q1v, Dmv, pv, Fv, f0v, f1v, Dlv, Xv, c0v = args
        Wa, Ga, Ta, Ka, Da, Fa, La, Xa = (context.make_array(signature.args[i])(context, builder, args[i])
                                          for i in (0, 1, 2, 4, 7, 9, 12, 13))
        shape = lambda a, i: builder.extract_value(a.shape, i)  # noqa: E731
        tile = builder.gep(Ta.data, [builder.mul(tv, shape(Ta, 1))])
        slots = [builder.load(builder.gep(tile, [ir.Constant(_I64, i)])) for i in range(TILE)]
        zero = ir.Constant(_I64, 0)
        rows = [builder.select(builder.icmp_signed("<", s, zero), zero, s) for s in slots]  # -1: an empty slot
        dm = builder.gep(Da.data, [builder.mul(builder.mul(pv, shape(Da, 1)), ir.Constant(_I64, LANES))])
        macro = _chain(builder, rows, Wa.data, shape(Wa, 1), Ka.data, q0v, q1v, dm, True)
        local = _chain(builder, rows, Ga.data, shape(Ga, 1), Fa.data, f0v, f1v, La.data, False)
        for s, m, loc in zip(slots, macro, local):
            with builder.if_then(builder.icmp_signed(">=", s, zero)):
                at = builder.gep(Xa.data, [builder.add(builder.mul(s, shape(Xa, 1)), c0v)])
                builder.store(builder.fadd(m, loc), builder.bitcast(at, _VEC.as_pointer()), align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def blend(W, G, tiles, tptr, tk, Dm, fptr, feats, Dl, out, side, n_out, n_macro, group=GROUP, block=BLOCK):  # pragma: no cover
    """Blend a chunk: panels 0..n_out-1 into ``out``, the rest into ``side``; macros on panels < n_macro.

    W (n, Tm) macro weights, G (n, K) field strengths, float32; tiles (nt, TILE) avatar rows
    (-1: empty), tile t's targets tk[tptr[t]:tptr[t + 1]]; Dm (n_macro, Tm, LANES) the macro
    targets by panel; panel p's fields feats[fptr[p]:fptr[p + 1]] with rows Dl[fptr[p]:...]
    (pairs, LANES). out (n, >= LANES n_out) and side (n, LANES (panels - n_out)) float32.
    """
    nt, n_panels = tiles.shape[0], len(fptr) - 1
    for g in range(0, nt, group):  # a group's weights stay in cache while the panels stream past
        for b in range(0, n_panels, block):  # a block's targets stay in cache while the group's tiles pass
            for t in range(g, min(g + group, nt)):
                for p in range(b, min(b + block, n_panels)):  # each avatar's row written in order
                    X, c0 = (out, p * LANES) if p < n_out else (side, (p - n_out) * LANES)
                    q0, q1 = (tptr[t], tptr[t + 1]) if p < n_macro else (0, 0)
                    _tile_panel(W, G, tiles, t, tk, q0, q1, Dm, min(p, n_macro - 1), feats, fptr[p], fptr[p + 1],
                                Dl, X, c0)
