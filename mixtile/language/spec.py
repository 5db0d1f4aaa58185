"""Parameter annotations of a kernel signature: GM tensors, runtime scalars, constants."""
from __future__ import annotations

from dataclasses import dataclass

from mixtile.ir.types import Dim, DType, Role


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
        if not items or not isinstance(items[-1], DType):
            raise TypeError(f"{cls.__name__}[...] needs dims then a dtype, e.g. "
                            f"{cls.__name__}['M', 'K', mt.bf16]")
        dims = items[:-1]
        for d in dims:
            if not (isinstance(d, str) and d.isidentifier()) and not (
                    isinstance(d, int) and d > 0):
                raise TypeError(f"tensor dim {d!r}: use a positive int (static) or an "
                                f"identifier string (symbolic)")
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
