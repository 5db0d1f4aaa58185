"""Enums and value types of the mixtile IR: dtypes, memory spaces, units, pipes."""
from __future__ import annotations

import enum
from dataclasses import dataclass

import ml_dtypes
import numpy as np


class DType(enum.Enum):
    """Element types. `np` is the numpy dtype used for *storage* in GM and on chip."""

    F32 = ("f32", 4, np.float32)
    F16 = ("f16", 2, np.float16)
    BF16 = ("bf16", 2, ml_dtypes.bfloat16)
    F8E4M3 = ("f8e4m3", 1, ml_dtypes.float8_e4m3fn)
    F8E5M2 = ("f8e5m2", 1, ml_dtypes.float8_e5m2)
    I8 = ("i8", 1, np.int8)
    I32 = ("i32", 4, np.int32)
    I64 = ("i64", 8, np.int64)
    BOOL = ("bool", 1, np.bool_)

    def __init__(self, short: str, itemsize: int, npdt) -> None:
        self.short = short
        self.itemsize = itemsize
        self.np = np.dtype(npdt)

    @property
    def is_float(self) -> bool:
        return self in _FLOATS

    @property
    def is_int(self) -> bool:
        return self in (DType.I8, DType.I32, DType.I64)

    @property
    def int_range(self) -> tuple[int, int]:
        """(min, max) of an integer dtype: a float converted to it saturates there."""
        info = np.iinfo(self.np)
        return int(info.min), int(info.max)

    @property
    def f32_int_bounds(self) -> tuple[float, float]:
        """The f32 values nearest the int range inside it: a float past them saturates."""
        lo, hi = self.int_range
        f_hi = np.float32(hi)
        if int(f_hi) > hi:  # 2**31 - 1 rounds up to 2**31 in f32
            f_hi = np.nextafter(f_hi, np.float32(0))
        return float(np.float32(lo)), float(f_hi)

    @property
    def float_max(self) -> float:
        """The largest finite value of a float dtype (fp8 conversions saturate to it, the
        chip's satfinite mode)."""
        return float(ml_dtypes.finfo(self.np).max)

    @property
    def compute_np(self) -> np.dtype:
        """numpy dtype the simulator computes in: f32 for every float, the int itself else."""
        return np.dtype(np.float32) if self.is_float else self.np

    def __repr__(self) -> str:
        return f"mt.{self.short}"

    @classmethod
    def parse(cls, text: str) -> DType:
        return _BY_SHORT[text]


_FLOATS = frozenset({DType.F32, DType.F16, DType.BF16, DType.F8E4M3, DType.F8E5M2})
_BY_SHORT = {d.short: d for d in DType}


class MemSpace(enum.Enum):
    """Where a value lives. ANY is the unresolved space of a tile before InferSpaces."""

    GM = "GM"
    L1 = "L1"
    L0A = "L0A"
    L0B = "L0B"
    L0C = "L0C"
    UB = "UB"
    BT = "BT"  # bias table
    ANY = "ANY"

    def __repr__(self) -> str:
        return f"mt.{self.value}"


class Unit(enum.Enum):
    """Which kind of core executes an op."""

    CUBE = "cube"
    VECTOR = "vector"
    MTE = "mte"
    SCALAR = "scalar"
    CONTROL = "control"


class Pipe(enum.Enum):
    """Hardware pipes; each runs concurrently with the others, ordered by flags."""

    MTE2 = "MTE2"  # GM -> on-chip
    MTE1 = "MTE1"  # L1 -> L0A/L0B/BT
    M = "M"  # cube
    V = "V"  # vector
    MTE3 = "MTE3"  # UB -> GM
    FIX = "FIX"  # L0C writeback
    S = "S"  # scalar


class Role(enum.Enum):
    """How a kernel parameter is used: read, written, or both."""

    IN = "in"
    OUT = "out"
    INOUT = "inout"
    SCRATCH = "scratch"  # a GM workspace the compiler adds; allocated by the runtime


class CoreType(enum.Enum):
    """The cores a kernel (or a per-core program) runs on."""

    AIC = "aic"
    AIV = "aiv"
    MIX = "mix"
    NONE = "none"  # only scalar work


class ReduceKind(enum.Enum):
    SUM = "sum"
    MAX = "max"
    MIN = "min"


class SyncMode(enum.Enum):
    """syncall: HARD is the hardware barrier (grid must equal the physical cores);
    SOFT polls a zeroed GM workspace (grid <= cores, every participant resident)."""

    HARD = "hard"
    SOFT = "soft"


class SplitMode(enum.Enum):
    """How a split_aiv region divides vector work between the two AIV lanes."""

    UP_DOWN = "up_down"  # each lane takes half of the tile rows (lane 0 the first half)
    LEFT_RIGHT = "left_right"  # each lane takes half of the columns
    NONE = "none"  # both lanes run the whole body; the program divides work by lane id


class CoreRole(enum.Enum):
    """One core of a cluster (AIV: both vector lanes), as a cross-core flag target."""

    AIC = "AIC"
    AIV0 = "AIV0"
    AIV1 = "AIV1"
    AIV = "AIV"


class AtomicKind(enum.Enum):
    NONE = "none"
    ADD = "add"


# ---------------------------------------------------------------- value types

Dim = int | str  # a static extent, or the name of a symbolic dim bound per call


@dataclass(frozen=True)
class ScalarType:
    """A scalar in a register: an index (i64) or a float/int value."""

    dtype: DType

    def __str__(self) -> str:
        return "index" if self.dtype is DType.I64 else self.dtype.short


INDEX = ScalarType(DType.I64)


@dataclass(frozen=True)
class TensorType:
    """A tensor in GM; dims are ints or symbolic names."""

    dtype: DType
    shape: tuple[Dim, ...]

    def __str__(self) -> str:
        dims = "x".join(str(d) for d in self.shape)
        return f"tensor<{dims}x{self.dtype.short}>" if dims else f"tensor<{self.dtype.short}>"


@dataclass(frozen=True)
class TileType:
    """An on-chip tile: static shape, element type and memory space."""

    dtype: DType
    shape: tuple[int, ...]
    space: MemSpace = MemSpace.ANY

    @property
    def nbytes(self) -> int:
        n = self.dtype.itemsize
        for d in self.shape:
            n *= d
        return n

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def with_space(self, space: MemSpace) -> TileType:
        return TileType(self.dtype, self.shape, space)

    def with_dtype(self, dtype: DType) -> TileType:
        return TileType(dtype, self.shape, self.space)

    def __str__(self) -> str:
        dims = "x".join(str(d) for d in self.shape)
        return f"tile<{dims}x{self.dtype.short}, {self.space.value}>"


Type = ScalarType | TensorType | TileType
