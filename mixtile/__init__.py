"""mixtile: a Python tile language for Ascend-style mixed cube/vector kernels.

    import mixtile as mt

    @mt.kernel
    def k(x: mt.Tensor["M", "N", mt.f32], y: mt.Out["M", "N", mt.f32], T: mt.const = 64):
        ...

    mt.run_jit(k, x, y, target="sim", golden=lambda x, y: x.exp())
"""
from mixtile import errors
from mixtile.errors import (
    ArgumentError,
    CapacityError,
    DeadlockError,
    FlagOverflowError,
    IllegalPathError,
    MixtileError,
    OutOfBoundsError,
    RaceError,
    SyncallError,
    TraceError,
    UninitializedReadError,
    UnsupportedError,
    VerifyError,
)
from mixtile.ir.types import (
    AtomicKind,
    CoreRole,
    CoreType,
    DType,
    MemSpace,
    ReduceKind,
    SplitMode,
    SyncMode,
)
from mixtile.language import *  # noqa: F403
from mixtile.language import __all__ as _lang_all
from mixtile.runtime.autotune import Tuned, autotune
from mixtile.runtime.backends import BACKENDS, Backend, get_backend
from mixtile.runtime.compiler import CompiledKernel, compile
from mixtile.runtime.golden import RunResult
from mixtile.runtime.jit import run_jit
from mixtile.runtime.launcher import Launcher
from mixtile.simulator.trace import Timeline, write_trace
from mixtile.target import A2, A3, A5, Target, get_target

f32, f16, bf16 = DType.F32, DType.F16, DType.BF16
f8e4m3, f8e5m2 = DType.F8E4M3, DType.F8E5M2
i8, i32, i64, bool_ = DType.I8, DType.I32, DType.I64, DType.BOOL
GM, L1, L0A, L0B, L0C, UB, BT = (MemSpace.GM, MemSpace.L1, MemSpace.L0A, MemSpace.L0B,
                                 MemSpace.L0C, MemSpace.UB, MemSpace.BT)

__version__ = "0.1.0"

__all__ = [
    *_lang_all, "errors", "ArgumentError", "CapacityError", "IllegalPathError",
    "MixtileError", "OutOfBoundsError", "TraceError", "UninitializedReadError",
    "UnsupportedError", "VerifyError", "DeadlockError", "FlagOverflowError", "RaceError",
    "SyncallError", "AtomicKind", "CoreRole", "CoreType", "SplitMode", "SyncMode", "DType",
    "MemSpace", "ReduceKind",
    "CompiledKernel", "compile", "RunResult", "run_jit", "Launcher", "Backend", "BACKENDS",
    "get_backend", "A2", "A3", "A5", "Target", "get_target", "autotune", "Tuned",
    "Timeline", "write_trace",
    "f32", "f16", "bf16", "f8e4m3", "f8e5m2", "i8", "i32", "i64", "bool_",
    "GM", "L1", "L0A", "L0B", "L0C", "UB", "BT",
]
