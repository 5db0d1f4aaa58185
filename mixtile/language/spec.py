"""Parameter annotations of a kernel signature: GM tensors, runtime scalars, constants."""
from __future__ import annotations

from dataclasses import dataclass

from mixtile.errors import TraceError
from mixtile.ir.types import Dim, DType, Role
from mixtile.language.tracer import user_loc


@dataclass(frozen=True)
class TensorSpec:
    """A GM tensor parameter: dims (int = static, str = symbolic, bound per call)."""

    dims: tuple[Dim, ...]
    dtype: DType
    role: Role

    def __str__(self) -> str:
        dims = ", ".join(repr(d) for d in self.dims)
        return f"{_ROLE_NAME[self.role]}[{dims}, mt.{self.dtype.short}]"


@dataclass(frozen=True)
class ScalarSpec:
    """A runtime scalar parameter (a float or an int passed at each call)."""

    dtype: DType


class _TensorAnnot:
    role = Role.IN

    def __class_getitem__(cls, item) -> TensorSpec:
        items = item if isinstance(item, tuple) else (item,)
        name = _ROLE_NAME[cls.role]
        if not items or not isinstance(items[-1], DType):
            raise TraceError(f"{name}[{', '.join(map(repr, items))}] needs dims then a dtype",
                             loc=user_loc(), fix=f"e.g. {name}['M', 'K', mt.bf16]")
        dims = items[:-1]
        for i, d in enumerate(dims):
            if isinstance(d, bool) or not ((isinstance(d, str) and d.isidentifier()) or (
                    isinstance(d, int) and d > 0)):
                what = "an empty extent" if d == 0 and isinstance(d, int) else repr(d)
                raise TraceError(
                    f"{name} dim {i} is {what}: a tensor extent is a positive int (static) or "
                    "an identifier string (symbolic, bound at each call)", loc=user_loc(),
                    fix=f"e.g. {name}['M', {d if isinstance(d, int) and d > 0 else 8}, ...]; "
                        "a size known only at run time is a symbolic dim such as 'M'")
        return TensorSpec(tuple(dims), items[-1], cls.role)


class Tensor(_TensorAnnot):
    """`mt.Tensor['M', 'K', mt.bf16]`: an input tensor in GM (the kernel only reads it)."""

    role = Role.IN


class Out(_TensorAnnot):
    """`mt.Out['M', 'N', mt.bf16]`: an output tensor; poisoned before a simulated run."""

    role = Role.OUT


class InOut(_TensorAnnot):
    """`mt.InOut[...]`: read and written (e.g. an accumulator for atomic adds)."""

    role = Role.INOUT


class Scalar:
    """`mt.Scalar[mt.f32]`: a runtime scalar argument."""

    def __class_getitem__(cls, dtype: DType) -> ScalarSpec:
        return ScalarSpec(dtype)


class const:  # noqa: N801 (reads as a keyword in signatures: `TM: mt.const = 128`)
    """Marks a compile-time constant parameter; the kernel is specialised per value."""


_ROLE_NAME = {Role.IN: "mt.Tensor", Role.OUT: "mt.Out", Role.INOUT: "mt.InOut"}
