"""LLVM vector helpers for the rig's compiled loops (``_blend_kernel``, ``_pose_kernel``), written
with llvmlite inside numba intrinsics: ``<LANES x float>`` values, splats, fused multiply-adds."""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

LANES = 16  # floats a vector: one 512-bit register (two 256-bit ones on AVX2)
I32, I64, F32 = ir.IntType(32), ir.IntType(64), ir.FloatType()
VEC, IVEC = ir.VectorType(F32, LANES), ir.VectorType(I32, LANES)


def function(builder, name: str, ret, args):
    """The module's declaration of function (or LLVM intrinsic) ``name``, made on first use."""
    return builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(ret, args), name)


def fma(builder):
    """``llvm.fma`` on vectors: ``a * b + c`` rounded once per lane."""
    return function(builder, f"llvm.fma.v{LANES}f32", VEC, [VEC] * 3)


def splat(builder, value):
    """A vector of ``LANES`` copies of the float ``value``."""
    v = builder.insert_element(ir.Constant(VEC, None), value, ir.Constant(I32, 0))
    return builder.shuffle_vector(v, v, ir.Constant(IVEC, [0] * LANES))


def vector_at(builder, base, offset, ty=VEC):
    """A pointer to the vector of type ``ty`` at element ``offset`` of ``base``."""
    return builder.bitcast(builder.gep(base, [offset]), ty.as_pointer())


def c_array(ty, dtype) -> bool:
    """Whether numba type ``ty`` is a C-contiguous array of ``dtype``."""
    return isinstance(ty, types.Array) and ty.layout == "C" and ty.dtype == dtype


@intrinsic
def prefetch(typingctx, a, start, stop):
    """In a compiled loop: ask for the cache lines of flat array ``a``'s bytes ``start``..``stop``
    (``prefetcht1``: into L2), for data the hardware's prefetchers do not foresee."""
    sig = types.void(a, start, stop)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        i8p = ir.IntType(8).as_pointer()
        base = builder.bitcast(arr.data, i8p)
        fetch = function(builder, "llvm.prefetch.p0i8", ir.VoidType(), [i8p, I32, I32, I32])
        pre = builder.block
        head, body, done = (builder.append_basic_block(s) for s in ("head", "body", "done"))
        builder.branch(head)
        builder.position_at_end(head)
        at = builder.phi(I64)
        at.add_incoming(args[1], pre)
        builder.cbranch(builder.icmp_signed("<", at, args[2]), body, done)
        builder.position_at_end(body)
        builder.call(fetch, [builder.gep(base, [at]), ir.Constant(I32, 0), ir.Constant(I32, 2),
                             ir.Constant(I32, 1)])
        at.add_incoming(builder.add(at, ir.Constant(I64, 64)), builder.block)
        builder.branch(head)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen
