"""Exceptions of mixtile. Every user mistake raises a subclass of MixtileError.

Each error carries the DSL source location (file:line) of the op at fault, the numbers
involved, and, when one is known, the fix. `str(err)` renders all of it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """A DSL source location."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


UNKNOWN_LOC = Loc("<unknown>", 0)


class MixtileError(Exception):
    """Base class of every error mixtile raises on purpose."""

    def __init__(self, message: str, loc: Loc | None = None, fix: str | None = None,
                 where: str | None = None) -> None:
        self.message = message
        self.loc = loc
        self.fix = fix
        self.where = where  # simulator context: block / core / op
        super().__init__(self._render())

    def _render(self) -> str:
        head = f"{self.loc}: " if self.loc and self.loc != UNKNOWN_LOC else ""
        text = f"{head}{self.message}"
        if self.where:
            text += f"\n  at: {self.where}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class TraceError(MixtileError):
    """The kernel body misuses the DSL (a wrong argument, a shape or dtype mismatch)."""


class ArgumentError(MixtileError):
    """run_jit/compile got arguments that do not match the kernel signature."""


class VerifyError(MixtileError):
    """The IR breaks an invariant (after tracing or after a pass)."""


class ParseError(MixtileError):
    """IR text could not be parsed."""


class CapacityError(MixtileError):
    """Tiles need more bytes of an on-chip memory space than the target has."""


class IllegalPathError(MixtileError):
    """A data move between memory spaces the target has no path for."""


class OutOfBoundsError(MixtileError):
    """A GM access outside the tensor."""


class UninitializedReadError(MixtileError):
    """A read of GM bytes that nothing wrote (outputs are poisoned before a run)."""


class UnsupportedError(MixtileError):
    """Valid DSL that this version or this target cannot compile yet."""


class InternalError(MixtileError):
    """A bug in mixtile itself (please report it with the kernel)."""


class DeadlockError(MixtileError):
    """No core can make progress: every unfinished core waits on a flag or a barrier."""


class RaceError(MixtileError):
    """Two cores access overlapping GM elements (one writes) with no order between them."""


class FlagOverflowError(MixtileError):
    """A cross-core flag was set more times than the hardware counts without a wait."""


class SyncallError(MixtileError):
    """A syncall the launch can never complete (grid vs physical cores, wrong core type)."""
