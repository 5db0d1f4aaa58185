"""`@mt.kernel`: a Python function whose body is traced into IR, once per specialisation."""
from __future__ import annotations

import functools
import inspect
from typing import Any

from mixtile.errors import ArgumentError, TraceError
from mixtile.ir.core import Block, Kernel, Param, Value
from mixtile.ir.types import DType, Role, ScalarType, TensorType
from mixtile.language import tracer
from mixtile.language.spec import ScalarSpec, TensorSpec, const
from mixtile.language.tracer import ScalarVal, TensorVal
from mixtile.target import get_target


class KernelFn:
    """A DSL kernel. Call `mt.compile(k, ...)` or `mt.run_jit(k, ...)` to use it."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.name = fn.__name__
        functools.update_wrapper(self, fn)
        sig = inspect.signature(fn)
        self.tensors: list[tuple[str, TensorSpec]] = []
        self.scalars: list[tuple[str, ScalarSpec]] = []
        self.consts: dict[str, Any] = {}  # name -> default (inspect.Parameter.empty if none)
        self.order: list[str] = []  # runtime parameters in call order
        self.written: frozenset[str] = frozenset()  # Out / InOut tensor parameters
        for p in sig.parameters.values():
            ann = p.annotation
            if isinstance(ann, TensorSpec):
                self.tensors.append((p.name, ann))
                self.order.append(p.name)
                if ann.role in (Role.OUT, Role.INOUT):
                    self.written |= {p.name}
            elif isinstance(ann, ScalarSpec):
                self.scalars.append((p.name, ann))
                self.order.append(p.name)
            elif ann is const:
                self.consts[p.name] = p.default
            else:
                raise TraceError(
                    f"kernel `{self.name}` parameter `{p.name}` needs an annotation: "
                    "mt.Tensor[...], mt.Out[...], mt.InOut[...], mt.Scalar[dtype] or mt.const",
                    loc=_def_loc(fn))
        try:
            self._src = inspect.getsource(fn)
        except OSError:
            self._src = self.name

    def resolve_consts(self, given: dict[str, Any]) -> dict[str, Any]:
        unknown = set(given) - set(self.consts)
        if unknown:
            raise ArgumentError(
                f"kernel `{self.name}` has no constant parameter(s) {sorted(unknown)}",
                fix=f"its constants are {sorted(self.consts)}")
        out = {}
        for name, default in self.consts.items():
            if name in given:
                out[name] = given[name]
            elif default is inspect.Parameter.empty:
                raise ArgumentError(f"kernel `{self.name}` needs a value for constant "
                                    f"`{name}`", fix=f"pass {name}=... to run_jit/compile")
            else:
                out[name] = default
        return out

    def trace(self, consts: dict[str, Any], static_dims: dict[str, int] | None = None,
              target=None) -> Kernel:
        """Run the body once on symbolic handles; return the kernel IR."""
        static_dims = static_dims or {}
        body = Block()
        params: list[Param] = []
        handles: dict[str, Any] = {}
        for name in self.order:
            spec = dict(self.tensors).get(name) or dict(self.scalars)[name]
            if isinstance(spec, TensorSpec):
                shape = tuple(static_dims.get(d, d) if isinstance(d, str) else d
                              for d in spec.dims)
                v = Value(TensorType(spec.dtype, shape), None, 0, name)
                params.append(Param(name, v, spec.role))
                handles[name] = TensorVal(v, name)
            else:  # an int scalar is an index value (usable as an offset or a bound)
                st_ = ScalarType(DType.I64 if spec.dtype.is_int else spec.dtype)
                v = Value(st_, None, 0, name)
                params.append(Param(name, v, Role.IN))
                handles[name] = ScalarVal(v)
        st = tracer._state
        saved = (st.stack, st.open)
        st.stack, st.open = [], set()
        st.pending = None
        st.epoch += 1
        saved_target, st.target = st.target, target or get_target(None)
        st.scratch = []
        tracer.push_block(body)
        try:
            self.fn(**handles, **consts)
            tracer.raise_pending()
            params += st.scratch
        finally:
            st.stack, st.open = saved
            st.target = saved_target
            st.pending = None
            st.epoch += 1
        return Kernel(self.name, params, body, {})

    def __call__(self, *args, **kwargs):
        raise TraceError(f"kernel `{self.name}` is not called directly",
                         fix=f"use mt.run_jit({self.name}, *tensors, ...) or "
                             f"mt.compile({self.name}, ...)")

    def __repr__(self) -> str:
        return f"<mt.kernel {self.name}>"


def _def_loc(fn):
    from mixtile.errors import Loc

    code = fn.__code__
    return Loc(code.co_filename, code.co_firstlineno)


def kernel(fn) -> KernelFn:
    """Decorator: make a DSL kernel from a Python function."""
    return KernelFn(fn)
