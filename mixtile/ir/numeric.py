"""Numeric helpers shared by op semantics and the simulator.

The simulator keeps every float value in a float32 array whose elements are exactly
representable in the value's storage dtype ("round at every storage point"), so
numpy's fast float32 kernels do the arithmetic. Integers stay in their own dtype.
"""
from __future__ import annotations

import numpy as np

from mixtile.ir.types import DType

_FP8 = frozenset({DType.F8E4M3, DType.F8E5M2})  # conversions saturate (satfinite mode)


def round_to(dtype: DType, x: np.ndarray) -> np.ndarray:
    """Round `x` (computed in f32, or ints) to what `dtype` can store, in compute form."""
    if dtype is DType.F32:
        return x.astype(np.float32, copy=False)
    if dtype.is_float:
        x = np.asarray(x, dtype=np.float32)
        if dtype in _FP8:
            m = dtype.float_max
            x = np.clip(x, -m, m)
        return x.astype(dtype.np).astype(np.float32)
    if dtype is DType.BOOL:
        return np.asarray(x, dtype=np.bool_)
    x = np.asarray(x)
    if x.dtype.kind == "f":
        lo, hi = dtype.int_range
        # in float64: a float32 bound (2**31 - 1 rounds up to 2**31) would wrap on astype
        x = np.clip(np.rint(x.astype(np.float64)), lo, hi)
    return x.astype(dtype.np)


def to_compute(dtype: DType, x: np.ndarray) -> np.ndarray:
    """Storage-form array (e.g. ml_dtypes bfloat16) -> compute form (float32 for floats)."""
    return np.asarray(x, dtype=dtype.compute_np)


def erf(x: np.ndarray) -> np.ndarray:
    """erf in float32 (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7)."""
    x = np.asarray(x, dtype=np.float32)
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
                                                      + t * (-1.453152027 + t * 1.061405429))))
    return (s * (1.0 - poly * np.exp(-a * a))).astype(np.float32)


def pad_value(dtype: DType, pad: float) -> float | int:
    """A pad value in the tile's compute form (ints get an int)."""
    if dtype.is_float:
        return float(np.float32(round_to(dtype, np.array([pad], np.float32))[0]))
    if pad in (float("inf"), float("-inf")):
        lo, hi = dtype.int_range if dtype.is_int else (0, 1)
        return hi if pad > 0 else lo
    return int(pad)
