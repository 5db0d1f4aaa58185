"""The pass manager: runs passes in order, verifies, times and records the IR after each.

A pass is a function `(Kernel, PassContext) -> Kernel` wrapped into a `Pass` with the
`@compiler_pass("Name")` decorator. A mixtile error a pass raises (a user mistake with
its DSL location) goes through unchanged; any other exception is a compiler bug and is
re-raised as `InternalError` naming the pass and, when it can be found, the op.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from mixtile.errors import InternalError, MixtileError, VerifyError
from mixtile.ir.core import Kernel, Op
from mixtile.passes.verify import verify as verify_kernel
from mixtile.target import Target

_BUG_FIX = "this is a bug in mixtile; please report it with the kernel (mt.compile dump_passes)"


@dataclass
class PassContext:
    """What every pass sees: the target and the compile options (dump_passes, dump_dir...)."""

    target: Target
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pass:
    """A named kernel transformation; calling it runs the function."""

    name: str
    fn: Callable[[Kernel, PassContext], Kernel]

    def __call__(self, kernel: Kernel, ctx: PassContext) -> Kernel:
        out = self.fn(kernel, ctx)
        return kernel if out is None else out

    def __repr__(self) -> str:
        return f"<Pass {self.name}>"


def compiler_pass(name: str) -> Callable[[Callable[[Kernel, PassContext], Kernel]], Pass]:
    """Decorator: `@compiler_pass("Simplify") def Simplify(kernel, ctx): ...` makes a Pass."""

    def wrap(fn: Callable[[Kernel, PassContext], Kernel]) -> Pass:
        p = Pass(name, fn)
        object.__setattr__(p, "__doc__", fn.__doc__)
        return p

    return wrap


def as_pass(p: Pass | Callable[[Kernel, PassContext], Kernel]) -> Pass:
    """A Pass as is; a plain function becomes a Pass named after it."""
    if isinstance(p, Pass):
        return p
    name = getattr(p, "__name__", type(p).__name__)
    return Pass("".join(w.capitalize() for w in name.split("_")) or name, p)


def _culprit_op(tb: TracebackType | None) -> Op | None:
    """The op a failing pass was working on: the innermost frame's local `op` (or any Op)."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for f in reversed(frames):
        loc = f.f_locals
        v = loc.get("op")
        if isinstance(v, Op):
            return v
        for v in loc.values():
            if isinstance(v, Op):
                return v
    return None


def internal_error(pass_name: str, exc: BaseException) -> InternalError:
    """An InternalError for an unexpected exception raised inside pass `pass_name`."""
    op = _culprit_op(exc.__traceback__)
    at = f" at `{op.name}`" if op is not None else ""
    text = None
    if op is not None:
        try:
            from mixtile.ir.printer import print_op

            text = print_op(op)
        except Exception:  # the op may be half-built; the message still names it
            text = None
    return InternalError(f"internal error in pass {pass_name}{at}: {type(exc).__name__}: "
                         f"{exc}", loc=op.loc if op is not None else None, fix=_BUG_FIX,
                         where=text)


class PassManager:
    """Runs `passes` in order over a kernel.

    - verify: run the verifier on the input and after every pass;
    - keep_ir: keep the printed IR after each pass in `ir_after` (a pass that runs twice
      gets `Name#2`, ...); `ir_initial` holds the input's text;
    - dump_dir (or ctx.options dump_passes + dump_dir): write `00_initial.mlir`,
      `01_after_<Pass>.mlir`, ... (parse_kernel reads them back).
    `timings` lists (pass name, seconds) of the passes themselves; `verify_seconds` and
    `print_seconds` total the verifier and printer time.
    """

    def __init__(self, passes: list[Pass], ctx: PassContext, verify: bool = True,
                 keep_ir: bool = True, dump_dir: str | Path | None = None) -> None:
        self.passes = [as_pass(p) for p in passes]
        self.ctx = ctx
        self.verify = verify
        self.keep_ir = keep_ir
        if dump_dir is None and ctx.options.get("dump_passes"):
            dump_dir = ctx.options.get("dump_dir") or "mixtile_dump"
        self.dump_dir = Path(dump_dir) if dump_dir is not None else None
        self.timings: list[tuple[str, float]] = []
        self.ir_after: dict[str, str] = {}
        self.ir_initial: str | None = None
        self.verify_seconds = 0.0
        self.print_seconds = 0.0
        self.dumped: list[Path] = []

    # ------------------------------------------------------------ helpers

    def _text(self, kernel: Kernel) -> str:
        from mixtile.ir.printer import print_kernel

        t0 = time.perf_counter()
        text = print_kernel(kernel, locs=True)
        self.print_seconds += time.perf_counter() - t0
        return text

    def _verify(self, kernel: Kernel, after: str | None) -> None:
        t0 = time.perf_counter()
        try:
            verify_kernel(kernel, self.ctx.target)
        except VerifyError as e:
            if after is None:
                raise
            raise type(e)(f"IR invalid after pass {after}: {e.message}", loc=e.loc,
                          fix=e.fix or _BUG_FIX, where=e.where) from e
        except MixtileError as e:
            if after is None:
                raise
            raise type(e)(f"after pass {after}: {e.message}", loc=e.loc, fix=e.fix,
                          where=e.where) from e
        except Exception as e:
            raise internal_error(f"Verify (after {after or 'input'})", e) from e
        finally:
            self.verify_seconds += time.perf_counter() - t0

    def _record(self, index: int, label: str, key: str, kernel: Kernel) -> None:
        if not (self.keep_ir or self.dump_dir is not None):
            return
        text = self._text(kernel)
        if self.keep_ir:
            if key == "initial":
                self.ir_initial = text
            else:
                self.ir_after[key] = text
        if self.dump_dir is not None:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
            path = self.dump_dir / f"{index:02d}_{label}.mlir"
            path.write_text(text)
            self.dumped.append(path)

    def _key(self, name: str) -> str:
        if name not in self.ir_after:
            return name
        n = 2
        while f"{name}#{n}" in self.ir_after:
            n += 1
        return f"{name}#{n}"

    # ------------------------------------------------------------ running

    def run(self, kernel: Kernel) -> Kernel:
        """Run every pass in order; returns the final kernel."""
        if self.verify:
            self._verify(kernel, None)
        self._record(0, "initial", "initial", kernel)
        for i, p in enumerate(self.passes, start=1):
            t0 = time.perf_counter()
            try:
                out = p.fn(kernel, self.ctx)
            except MixtileError:
                raise
            except Exception as e:
                raise internal_error(p.name, e) from e
            self.timings.append((p.name, time.perf_counter() - t0))
            if out is not None:
                kernel = out
            if self.verify:
                self._verify(kernel, p.name)
            self._record(i, f"after_{p.name}", self._key(p.name), kernel)
        return kernel

    def report(self) -> str:
        """The timings as a small table (ms)."""
        rows = [f"{name:<16} {s * 1e3:8.3f} ms" for name, s in self.timings]
        rows.append(f"{'(verify)':<16} {self.verify_seconds * 1e3:8.3f} ms")
        rows.append(f"{'(print)':<16} {self.print_seconds * 1e3:8.3f} ms")
        return "\n".join(rows)
