"""LLVM vector helpers for the rig's compiled loops (``_blend_kernel``, ``_pose_kernel``), written
with llvmlite inside numba intrinsics: ``<LANES x float>`` values, splats, fused multiply-adds."""
from __future__ import annotations

from llvmlite import ir
from numba import types

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
