"""The compiled loops of posing (numba; compiled once, cached on disk): frames, forward kinematics.

Each loop runs over (avatar, bone) with the arithmetic numpy's stacked array code did, operation
for operation: products and sums rounded one by one, and each 3x3 product a chain of fused
multiply-adds from zero, as OpenBLAS's small ``gemm`` sums it (what ``np.matmul`` called). So
the results are numpy's to the bit, while the numpy versions' dozens of passes over (n, J, 3, 3)
temporaries cost about 220 µs an avatar here and these loops a few.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from avatar.body import _vector as vx
from avatar.body._vector import LANES  # vertices a block

PREFETCH_LINES = 3  # cache lines of the next avatar's vertices each block prefetches (at least 14,472 x 12 B
                    # over 1,215 blocks)


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (``llvm.fma.f64``); numba has no fused multiply-add of its own."""
    if not all(isinstance(x, types.Float) and x.bitwidth == 64 for x in (a, b, c)):
        return None

    def codegen(context, builder, signature, args):
        f64 = ir.DoubleType()
        fn = builder.module.globals.get("llvm.fma.f64") or ir.Function(
            builder.module, ir.FunctionType(f64, [f64] * 3), "llvm.fma.f64")
        return builder.call(fn, args)

    return types.float64(types.float64, types.float64, types.float64), codegen


@njit(cache=True, nogil=True, inline="always")
def mm(a, b, out):  # pragma: no cover - compiled
    """out = a @ b for 3x3 ``a``, ``b`` (out may not alias either)."""
    for i in range(3):
        for k in range(3):
            out[i, k] = fma(a[i, 2], b[2, k], fma(a[i, 1], b[1, k], fma(a[i, 0], b[0, k], 0.0)))


@njit(cache=True, nogil=True, inline="always")
def mv(a, v, out):  # pragma: no cover - compiled
    """out = a @ v for a 3x3 ``a`` and a 3-vector ``v`` (the order OpenBLAS's ``gemv`` sums in)."""
    for i in range(3):
        out[i] = fma(a[i, 2], v[2], fma(a[i, 0], v[0], a[i, 1] * v[1]))


@njit(cache=True, nogil=True)
def frames(heads, tails, roll_c, roll_s, C, out):  # pragma: no cover - compiled
    """Blender's bone frames in our axes, :func:`avatar.body.pose.bone_frames`'s rule.

    heads, tails (m, J, 3) float64; roll_c, roll_s (J,) the rolls' cosines and sines; C (3, 3) our
    axes to Blender's; out (m, J, 3, 3).
    """
    d, u = np.empty(3), np.empty(3)
    R, roll, RR = np.empty((3, 3)), np.zeros((3, 3)), np.empty((3, 3))
    CT = np.ascontiguousarray(C.T)
    for a in range(heads.shape[0]):
        for j in range(heads.shape[1]):
            for c in range(3):
                u[c] = tails[a, j, c] - heads[a, j, c]
            mv(C, u, d)
            norm = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
            norm = max(norm, 1e-12)
            x, y, z = d[0] / norm, d[1] / norm, d[2] / norm
            alt = x * x + z * z
            theta = 1.0 + y if y >= 0 else alt / (1.0 - y)
            k = 1.0 / max(theta, 1e-300)
            if y < 0 and alt <= 1e-24:  # straight down Blender's -y: half a turn about z
                R[:] = 0.0
                R[0, 0], R[1, 1], R[2, 2] = -1.0, -1.0, 1.0
            else:
                R[0, 0], R[0, 1], R[0, 2] = 1 - x * x * k, x, -x * z * k
                R[1, 0], R[1, 1], R[1, 2] = -x, y, -z
                R[2, 0], R[2, 1], R[2, 2] = -x * z * k, z, 1 - z * z * k
            roll[0, 0], roll[0, 2], roll[1, 1], roll[2, 0], roll[2, 2] = roll_c[j], roll_s[j], 1.0, -roll_s[j], roll_c[j]
            mm(R, roll, RR)
            mm(CT, RR, out[a, j])


@njit(cache=True, nogil=True)
def euler(angles, out):  # pragma: no cover - compiled
    """Rotations ``Rz @ Ry @ Rx`` of angles (m, 3) radians about x, y, z into out (m, 3, 3)."""
    for a in range(angles.shape[0]):
        cx, cy, cz = np.cos(angles[a, 0]), np.cos(angles[a, 1]), np.cos(angles[a, 2])
        sx, sy, sz = np.sin(angles[a, 0]), np.sin(angles[a, 1]), np.sin(angles[a, 2])
        R = out[a]
        R[0, 0], R[0, 1], R[0, 2] = cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx
        R[1, 0], R[1, 1], R[1, 2] = sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx
        R[2, 0], R[2, 1], R[2, 2] = -sy, cy * sx, cy * cx


@njit(cache=True, nogil=True)
def transforms(parents, heads, F, Q, dA, t):  # pragma: no cover - compiled
    """Forward kinematics, :func:`avatar.body.pose.skinning_transforms`'s rule.

    parents (J,) parents first, -1 at the root; heads (n, J, 3); F, Q (n, J, 3, 3) rest frames
    and local rotations; out dA (n, J, 3, 3) and t (n, J, 3), float64. A bone its avatar does not
    turn carries its parent's transform exactly (zero at the root).
    """
    FD, dl, tl, prod, pv = np.empty((3, 3)), np.empty((3, 3)), np.empty(3), np.empty((3, 3)), np.empty(3)
    D, FT = np.empty((3, 3)), np.empty((3, 3))
    for a in range(heads.shape[0]):
        for j in range(heads.shape[1]):
            p = parents[j]
            turned = False
            for r in range(3):
                for c in range(3):
                    D[r, c] = Q[a, j, r, c] - (1.0 if r == c else 0.0)
                    FT[r, c] = F[a, j, c, r]
                    turned |= D[r, c] != 0.0
            if not turned:
                for r in range(3):
                    t[a, j, r] = t[a, p, r] if p >= 0 else 0.0
                    for c in range(3):
                        dA[a, j, r, c] = dA[a, p, r, c] if p >= 0 else 0.0
                continue
            mm(F[a, j], D, FD)
            mm(FD, FT, dl)                     # R (Q - I) R^T: a rotation's change about the origin
            mv(dl, heads[a, j], tl)
            for r in range(3):
                tl[r] = -tl[r]                 # ...about the bone's head
            if p < 0:
                dA[a, j], t[a, j] = dl, tl
                continue
            mm(dA[a, p], dl, prod)             # (I + dAp)(I + dl) - I
            mv(dA[a, p], tl, pv)               # (I + dAp) tl + tp
            for r in range(3):
                t[a, j, r] = (t[a, p, r] + tl[r]) + pv[r]
                for c in range(3):
                    dA[a, j, r, c] = (dA[a, p, r, c] + dl[r, c]) + prod[r, c]


# -- linear blend skinning ----------------------------------------------------------------------
def _gather(builder, base, index):
    """<LANES x float> of ``base[index[l]]`` for an <LANES x i32> index (``vgatherdps``)."""
    ptrs = builder.gep(base, [index], source_etype=vx.F32)
    ptrs.type = ir.VectorType(base.type, LANES)  # llvmlite types a vector GEP as a scalar one
    mask = ir.Constant(ir.VectorType(ir.IntType(1), LANES), [1] * LANES)
    fn = vx.function(builder, f"llvm.masked.gather.v{LANES}f32.v{LANES}p0", vx.VEC,
                     [ptrs.type, vx.I32, mask.type, vx.VEC])
    return builder.call(fn, [ptrs, ir.Constant(vx.I32, 4), mask, ir.Constant(vx.VEC, None)])


def _arrays(context, builder, signature, args, which):
    return [context.make_array(signature.args[i])(context, builder, args[i]) for i in which]


@intrinsic
def _skin_block(typingctx, V, v0, perm, G, g0, bones, K, w, blk, buf, low, floored):
    """One block of LANES slots: buf[c, slot] = v_c + sum_k w_k ((dA_k v)_c + t_kc) for the block's
    vertices v = V[v0 + 3 perm[slot]] and its bones, which every vertex of the block shares.

    V, G flat float32 (an avatar's rows from v0, its 12-float bone rows from g0); perm (S,) int32;
    bones (B, 4) int32 and K (B,) int64 the block's bones and their count; w (4, S) float32 the
    slots' weights; buf (3, S) float32. When ``floored``, low (LANES,) float32 becomes its least y
    lane by lane (``llvm.minnum``).
    """
    sig = types.void(V, v0, perm, G, g0, bones, K, w, blk, buf, low, floored)

    def codegen(context, builder, signature, args):
        _, v0v, _, _, g0v, _, _, _, blkv, _, _, floor = args
        Va, Pa, Ga, Ba, Ka, Wa, Oa, La = _arrays(context, builder, signature, args, (0, 2, 3, 5, 6, 7, 9, 10))
        S = builder.extract_value(Wa.shape, 1)
        fused = vx.fma(builder)
        s0 = builder.mul(blkv, ir.Constant(vx.I64, LANES))
        at = builder.mul(builder.load(vx.vector_at(builder, Pa.data, s0, vx.IVEC), align=4), ir.Constant(vx.IVEC, [3] * LANES))
        base = builder.gep(Va.data, [v0v])
        xyz = [_gather(builder, base, builder.add(at, ir.Constant(vx.IVEC, [c] * LANES))) for c in range(3)]
        x, y, z = xyz
        acc = [cgutils.alloca_once_value(builder, ir.Constant(vx.VEC, None)) for _ in range(3)]  # +0.0
        count = builder.load(builder.gep(Ka.data, [blkv]))
        row = builder.gep(Ba.data, [builder.mul(blkv, ir.Constant(vx.I64, 4))])
        for k in range(4):  # the block's bones in ascending index, as many as its vertices have
            with builder.if_then(builder.icmp_signed(">", count, ir.Constant(vx.I64, k))):
                wk = builder.load(vx.vector_at(builder, Wa.data, builder.add(builder.mul(ir.Constant(vx.I64, k), S), s0)), align=4)
                j = builder.sext(builder.load(builder.gep(row, [ir.Constant(vx.I64, k)])), vx.I64)
                gj = builder.gep(Ga.data, [builder.add(g0v, builder.mul(j, ir.Constant(vx.I64, 12)))])
                g = [vx.splat(builder, builder.load(builder.gep(gj, [ir.Constant(vx.I64, c)]))) for c in range(12)]
                for r in range(3):  # ((dA v)_r + t_r), fused as LLVM fused the scalar loop before
                    a0, a1, a2, tr = g[4 * r: 4 * r + 4]
                    inner = builder.fadd(builder.call(fused, [a2, z, builder.call(fused, [a0, x, builder.fmul(a1, y)])]), tr)
                    builder.store(builder.call(fused, [wk, inner, builder.load(acc[r])]), acc[r])
        for c in range(3):
            out = vx.vector_at(builder, Oa.data, builder.add(builder.mul(ir.Constant(vx.I64, c), S), s0))
            posed = builder.fadd(xyz[c], builder.load(acc[c]))
            builder.store(posed, out, align=4)
            if c == 1:
                with builder.if_then(floor):
                    least = vx.function(builder, f"llvm.minnum.v{LANES}f32", vx.VEC, [vx.VEC] * 2)
                    at = vx.vector_at(builder, La.data, ir.Constant(vx.I64, 0))
                    builder.store(builder.call(least, [builder.load(at, align=4), posed]), at, align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _unpermute(typingctx, buf, pos, i0, out, o0, lift):
    """out[o0 + 3 i + c] = buf[c, pos[i]] (+ lift on y) for the LANES vertices i from i0: three
    gathers, one interleaved store."""
    sig = types.void(buf, pos, i0, out, o0, lift)

    def codegen(context, builder, signature, args):
        _, _, i0v, _, o0v, liftv = args
        Ba, Pa, Oa = _arrays(context, builder, signature, args, (0, 1, 3))
        S = builder.extract_value(Ba.shape, 1)
        at = builder.load(vx.vector_at(builder, Pa.data, i0v, vx.IVEC), align=4)
        xyz = [_gather(builder, builder.gep(Ba.data, [builder.mul(ir.Constant(vx.I64, c), S)]), at) for c in range(3)]
        xyz[1] = builder.fadd(xyz[1], vx.splat(builder, liftv))
        pair = builder.shuffle_vector(xyz[0], xyz[1], ir.Constant(ir.VectorType(vx.I32, 2 * LANES), list(range(2 * LANES))))
        third = builder.shuffle_vector(xyz[2], xyz[2], ir.Constant(ir.VectorType(vx.I32, 2 * LANES), list(range(LANES)) * 2))
        order = [c * LANES + lane for lane in range(LANES) for c in range(3)]
        rows = builder.shuffle_vector(pair, third, ir.Constant(ir.VectorType(vx.I32, 3 * LANES), order))
        builder.store(rows, vx.vector_at(builder, Oa.data, builder.add(o0v, builder.mul(i0v, ir.Constant(vx.I64, 3))),
                                         ir.VectorType(vx.F32, 3 * LANES)), align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def skin(V, G, perm, pos, bones, K, w, body_blocks, buf, out, lift):  # pragma: no cover - compiled
    """``out[b, i] = V[b, i] + sum_k w[i, k] (dA[b, j] V[b, i] + t[b, j]) + (0, lift[b], 0)``, j the
    vertex's k-th bone and lift[b] what puts the lowest posed body vertex on y = 0.

    V, out (n, N, 3) float32 (out may be V); G (n, J, 12) float32 each bone's ``[dA | t]`` by rows;
    the slot tables of :func:`avatar.body.pose.skin_slots` (the body's in the first ``body_blocks``
    blocks); buf (3, S) float32 scratch; lift (n,) float32 out.

    Vertices sharing the same bones share blocks of slots, so a block reads each bone's transform
    once, for all its lanes. Each vertex's sum runs over its bones in ascending index, a chain of
    fused multiply-adds from +0.0. A vertex's result depends on its own inputs only.
    """
    n, N = V.shape[0], V.shape[1]
    Vf, Gf, Of = V.reshape(-1), G.reshape(-1), out.reshape(-1)
    full = N // LANES * LANES
    low = np.empty(LANES, np.float32)
    ahead = 16 * PREFETCH_LINES  # floats of the next avatar prefetched a block
    for b in range(n):
        low[:] = np.inf
        nxt = 3 * N * (b + 1)
        for blk in range(K.shape[0]):  # every vertex of the avatar into the slots...
            _skin_block(Vf, 3 * N * b, perm, Gf, 12 * G.shape[1] * b, bones, K, w, blk, buf, low, blk < body_blocks)
            at = nxt + blk * ahead  # the next avatar's rows arrive meanwhile (they come from L3 or farther:
            if b + 1 < n and at < nxt + 3 * N:  # gathers on them stalled the loop)
                vx.prefetch(Vf, 4 * at, 4 * (at + ahead))
        lift[b] = -low.min()
        for i0 in range(0, full, LANES):  # ...then back in vertex order, on the floor
            _unpermute(buf, pos, i0, Of, 3 * N * b, lift[b])
        for i in range(full, N):
            for c in range(3):
                out[b, i, c] = buf[c, pos[i]] + lift[b] if c == 1 else buf[c, pos[i]]
