"""The mixtile DSL: what users write inside `@mt.kernel` functions."""
from mixtile.language.api import (
    abs, arange, atomic_add, broadcast_to, col_broadcast, col_max, col_min, col_sum, exp,
    full, gelu, gelu_erf, gelu_tanh, load, log, matmul, maximum, minimum, move, neg,
    reciprocal, reduce, relu, row_broadcast, row_max, row_min, row_sum, rsqrt, sigmoid, silu,
    smax, smin, sqrt, store, tanh, to_float, where, zeros,
)
from mixtile.language.kernel import KernelFn, kernel
from mixtile.language.loops import cdiv, range, spmd
from mixtile.language.spec import InOut, Out, Scalar, Tensor, const

__all__ = [
    "abs", "arange", "atomic_add", "broadcast_to", "col_broadcast", "col_max", "col_min",
    "col_sum", "exp", "full", "gelu", "gelu_erf", "gelu_tanh", "load", "log", "matmul",
    "maximum", "minimum", "move", "neg", "reciprocal", "reduce", "relu", "row_broadcast",
    "row_max", "row_min", "row_sum", "rsqrt", "sigmoid", "silu", "smax", "smin", "sqrt",
    "store", "tanh", "to_float", "where", "zeros", "KernelFn", "kernel", "cdiv", "range",
    "spmd", "InOut", "Out", "Scalar", "Tensor", "const",
]
