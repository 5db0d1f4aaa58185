"""Checking a call's arguments against a kernel's signature and a backend's device."""
from __future__ import annotations

import torch

from mixtile.errors import ArgumentError
from mixtile.ir.types import DType
from mixtile.language.kernel import KernelFn
from mixtile.language.spec import ScalarSpec

TORCH_DTYPE = {
    DType.F32: torch.float32, DType.F16: torch.float16, DType.BF16: torch.bfloat16,
    DType.F8E4M3: torch.float8_e4m3fn, DType.F8E5M2: torch.float8_e5m2,
    DType.I8: torch.int8, DType.I32: torch.int32, DType.I64: torch.int64,
    DType.BOOL: torch.bool,
}


def check_args(kfn: KernelFn, args: tuple, backend=None) -> dict[str, int]:
    """Check count, types, dtypes, ranks and shapes, then (given a Backend) that every
    tensor is on the backend's device type and all on one device, then that no output
    overlaps another argument; return the symbolic dim bindings. The device check comes
    before the overlap check: addresses on different devices are not comparable."""
    if len(args) != len(kfn.order):
        sig = ", ".join(kfn.order)
        raise ArgumentError(f"kernel `{kfn.name}` takes {len(kfn.order)} runtime arguments "
                            f"({sig}), got {len(args)}",
                            fix="pass tensors in signature order; constants as keywords")
    specs = dict(kfn.tensors) | dict(kfn.scalars)
    dims: dict[str, tuple[int, str]] = {}
    for name, a in zip(kfn.order, args):
        spec = specs[name]
        if isinstance(spec, ScalarSpec):
            check_scalar(name, spec, a)
            continue
        if not isinstance(a, torch.Tensor):
            raise ArgumentError(f"argument `{name}` must be a torch.Tensor ({spec}), "
                                f"got {type(a).__name__}")
        want = TORCH_DTYPE[spec.dtype]
        if a.dtype != want:
            raise ArgumentError(f"argument `{name}` has dtype {a.dtype}, the kernel declares "
                                f"{spec}", fix=f"pass {name}.to({want})")
        if a.dim() != len(spec.dims):
            raise ArgumentError(f"argument `{name}` has {a.dim()} dims {list(a.shape)}, the "
                                f"kernel declares {len(spec.dims)}: {spec}")
        for axis, (d, n) in enumerate(zip(spec.dims, a.shape)):
            if isinstance(d, int) and d != n:
                raise ArgumentError(f"argument `{name}` axis {axis} is {n}, the kernel "
                                    f"declares a static {d}: {spec}")
            if isinstance(d, str):
                if n == 0:
                    raise ArgumentError(f"argument `{name}` axis {axis} (`{d}`) is empty")
                if d in dims and dims[d][0] != n:
                    raise ArgumentError(
                        f"dim `{d}` is {dims[d][0]} in `{dims[d][1]}` but {n} in `{name}`",
                        fix="tensors sharing a dim name must agree on its size")
                dims[d] = (n, name)
    if backend is not None:
        check_devices(kfn, args, backend.name, backend.device())
    spans = [(name, a, 0 if a.is_meta else a.data_ptr(), extent(a))
             for name, a in zip(kfn.order, args) if isinstance(a, torch.Tensor)]
    check_overlap(kfn, spans)
    return {d: n for d, (n, _) in dims.items()}


def check_scalar(name: str, spec: ScalarSpec, a) -> None:
    ok = isinstance(a, (int, float)) and not isinstance(a, bool)
    if not ok or (isinstance(a, float) and not spec.dtype.is_float):
        raise ArgumentError(f"argument `{name}` must be a Python "
                            f"{'number' if spec.dtype.is_float else 'int'}, "
                            f"got {type(a).__name__}")


def check_devices(kfn: KernelFn, args: tuple, target: str, device: str) -> None:
    """Every tensor argument on a `device` device, all on the same one."""
    first = None
    for name, a in zip(kfn.order, args):
        if not isinstance(a, torch.Tensor):
            continue
        if a.device.type != device:
            raise ArgumentError(
                f"argument `{name}` is on {a.device.type}; target {target!r} needs "
                f"{device} tensors", fix=f"move the arguments with .{device}()")
        if first is None:
            first = (name, a.device)
        elif a.device != first[1]:
            raise ArgumentError(f"argument `{name}` is on {a.device} but `{first[0]}` is on "
                                f"{first[1]}: one launch runs on one device",
                                fix=f"move the arguments to {first[1]}")


def extent(a: torch.Tensor) -> int:
    """Bytes from a tensor's first element to the end of its last (views and expanded
    strides included; 0 for an empty or meta tensor)."""
    if a.is_meta or not a.numel():
        return 0
    if a.is_contiguous():
        return a.numel() * a.element_size()
    return (sum((d - 1) * st for d, st in zip(a.shape, a.stride())) + 1) * a.element_size()


def check_overlap(kfn: KernelFn, spans: list[tuple]) -> None:
    """Refuse a tensor the kernel writes (Out/InOut) that shares memory with another
    tensor argument on its device; spans: (name, tensor, address, extent) of each tensor
    argument. The targets disagree on such a call: the simulator reads every input as it
    was before the call, a GPU program may read an element after another thread wrote it
    (its barriers order accesses of one parameter, not of two aliases), an NPU likewise
    across cores."""
    if not kfn.written:
        return
    for i, (n1, a1, lo1, e1) in enumerate(spans):
        for n2, a2, lo2, e2 in spans[i + 1:]:
            if not e1 or not e2 or lo1 >= lo2 + e2 or lo2 >= lo1 + e1 \
                    or a1.device != a2.device:
                continue
            if n1 not in kfn.written and n2 not in kfn.written:
                continue
            w = n1 if n1 in kfn.written else n2
            raise ArgumentError(
                f"arguments `{n1}` and `{n2}` of kernel `{kfn.name}` overlap in memory "
                f"(bytes {max(lo1, lo2) - lo1}..{min(lo1 + e1, lo2 + e2) - lo1} of `{n1}`), "
                f"and the kernel writes `{w}`: the result would depend on the target and on "
                f"timing",
                fix=f"pass `{w}` a tensor of its own (torch.empty_like(...)) and copy it "
                    f"back after the call if it must land in place")
