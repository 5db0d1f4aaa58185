"""The mixtile DSL: what users write inside `@mt.kernel` functions.

The elementwise functions (mt.exp, mt.maximum, ...) are made from the op registry: every
op declared with a `surface` is here under its name (`api.GENERATED` lists them)."""
from mixtile.language import api as _api
from mixtile.language.api import (
    arange,
    atomic_add,
    broadcast_to,
    col_broadcast,
    col_max,
    col_min,
    col_sum,
    full,
    gelu,
    load,
    matmul,
    move,
    reduce,
    row_broadcast,
    row_max,
    row_min,
    row_sum,
    smax,
    smin,
    store,
    to_float,
    where,
    zeros,
)
from mixtile.language.kernel import KernelFn, kernel
from mixtile.language.loops import cdiv, range, spmd
from mixtile.language.mixed import (
    aic_gather,
    aiv_shard,
    fence,
    on_core,
    set_flag,
    split_aiv,
    syncall,
    target,
    wait_flag,
    workspace,
)
from mixtile.language.spec import InOut, Out, Scalar, Tensor, const

globals().update({_n: getattr(_api, _n) for _n in _api.GENERATED})

__all__ = [
    "arange", "atomic_add", "broadcast_to", "col_broadcast", "col_max", "col_min", "col_sum",
    "full", "gelu", "load", "matmul", "move", "reduce", "row_broadcast", "row_max", "row_min",
    "row_sum", "smax", "smin", "store", "to_float", "where", "zeros", "KernelFn", "kernel",
    "cdiv", "range", "spmd", "aic_gather", "aiv_shard", "fence", "split_aiv", "syncall",
    "target", "workspace", "on_core", "set_flag", "wait_flag", "InOut", "Out", "Scalar",
    "Tensor", "const",
    *_api.GENERATED,
]
