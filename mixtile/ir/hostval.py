"""Host-side values of a kernel: the index math before its launches (grids, block counts),
evaluated with each op's own `impl` from the tensors' shapes and the scalar arguments.
Both device backends size their launches with it."""
from __future__ import annotations

from mixtile.errors import UnsupportedError
from mixtile.ir.core import Kernel, Value
from mixtile.ir.ops import DIM, LOAD_SCALAR, SPMD


def host_scalars(kernel: Kernel, dims: dict[tuple[str, int], int], scalars: dict) -> dict:
    """{value: number} of the kernel body's top-level scalar ops; `dims` maps
    (tensor name, axis) to its extent, `scalars` the scalar arguments by name."""
    env: dict[Value, object] = {p.value: scalars[p.name] for p in kernel.params
                                if p.name in scalars}
    for op in kernel.body.ops:
        if op.opdef is SPMD:
            continue
        if op.opdef is DIM:
            t = op.operands[0]
            env[op.result] = dims[(t.hint, op.attrs["axis"])]
        elif op.opdef is LOAD_SCALAR:
            raise UnsupportedError("a launch grid that reads GM has no host-side value",
                                   loc=op.loc)
        elif op.results:
            env[op.result] = op.opdef.impl(op.attrs, *(env[v] for v in op.operands))
    return env
