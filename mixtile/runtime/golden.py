"""Comparing outputs with a golden: error figures and a pass/fail verdict."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mixtile.errors import ArgumentError

# (rtol, atol) that each output dtype warrants
_TOL = {
    torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1e-2),
    torch.float8_e4m3fn: (1.3e-1, 6e-2), torch.float8_e5m2: (2.6e-1, 1.2e-1),
}


def default_tol(dtype: torch.dtype) -> tuple[float, float]:
    return _TOL.get(dtype, (0.0, 0.0))


@dataclass
class Comparison:
    """How one output compares with its golden. unwritten: elements the kernel never
    wrote (the simulator's poison is still there; they are not counted as mismatches)."""

    name: str
    passed: bool
    max_abs_err: float
    max_rel_err: float
    mismatches: int
    numel: int
    rtol: float
    atol: float
    worst_index: tuple | None = None
    unwritten: int = 0
    first_unwritten: tuple | None = None

    def __str__(self) -> str:
        figures = (f"max_abs_err={self.max_abs_err:.3g} max_rel_err={self.max_rel_err:.3g} "
                   f"mismatches={self.mismatches}/{self.numel} (rtol={self.rtol:g}, "
                   f"atol={self.atol:g})" + (f" worst at {self.worst_index}"
                                              if self.mismatches else ""))
        if self.unwritten:
            return (f"{self.name}: NEVER WRITTEN {self.unwritten}/{self.numel} elements "
                    f"(first at {self.first_unwritten}; the kernel stores nothing there); "
                    f"the rest: {figures}")
        return f"{self.name}: {'ok' if self.passed else 'MISMATCH'} {figures}"


def compare(name: str, got: torch.Tensor, want: torch.Tensor, rtol: float | None,
            atol: float | None, unwritten: np.ndarray | None = None) -> Comparison:
    """Compare output `name` with its golden; unwritten: a mask of the elements the
    simulator reports never written (reported as such, not as mismatches, unless the
    golden holds that very value there)."""
    drt, dat = default_tol(got.dtype)
    rtol = drt if rtol is None else rtol
    atol = dat if atol is None else atol
    g = got.detach().to("cpu", torch.float64)
    w = want.detach().to("cpu", torch.float64)
    if g.shape != w.shape:
        raise ArgumentError(f"golden's tensor for output `{name}` has shape "
                            f"{list(w.shape)}; `{name}` has shape {list(g.shape)}",
                            fix="return one tensor per output, in parameter order, each of "
                                "its output's shape")
    diff = (g - w).abs()
    nan_mismatch = torch.isnan(g) != torch.isnan(w)
    same = (g == w) | (torch.isnan(g) & torch.isnan(w))  # equal infinities too
    diff = torch.where(same, torch.zeros_like(diff), diff)
    bad = (diff > atol + rtol * w.abs()) | nan_mismatch
    n_unwritten, first_unwritten = 0, None
    if unwritten is not None:
        never = torch.from_numpy(np.ascontiguousarray(unwritten)).reshape(g.shape) & ~same
        n_unwritten = int(never.sum())
        if n_unwritten:
            first_unwritten = _index(int(torch.argmax(never.to(torch.uint8))), g.shape)
            bad &= ~never
            diff = torch.where(never, torch.zeros_like(diff), diff)
    n_bad = int(bad.sum())
    max_abs = float(diff.nan_to_num(float("inf")).max()) if diff.numel() else 0.0
    rel = diff / w.abs().clamp_min(1e-12)
    max_rel = float(rel.nan_to_num(float("inf")).max()) if rel.numel() else 0.0
    worst = None
    if n_bad:
        flat = int(torch.argmax(torch.where(bad, diff.nan_to_num(float("inf")),
                                            torch.zeros_like(diff))))
        worst = _index(flat, g.shape)
    return Comparison(name, n_bad == 0 and n_unwritten == 0, max_abs, max_rel, n_bad,
                      g.numel(), rtol, atol, worst, n_unwritten, first_unwritten)


def _index(flat: int, shape) -> tuple:
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), shape))


def unwritten_note(masks: dict[str, np.ndarray]) -> dict[str, tuple[int, int]]:
    """{output: (elements never written, elements)} from the simulator's masks."""
    return {name: (int(m.sum()), m.size) for name, m in masks.items()}


@dataclass
class RunResult:
    """What run_jit returns. passed: True / False against the golden; None when no golden
    was given (nothing was compared). unwritten: {output: (elements, of)} that the kernel
    never wrote (the simulator's poison is still there; sim only)."""

    passed: bool | None
    comparisons: list[Comparison] = field(default_factory=list)
    compile_s: float = 0.0
    run_s: float = 0.0
    target: str = "sim"
    cycles: dict = field(default_factory=dict)
    unwritten: dict[str, tuple[int, int]] = field(default_factory=dict)
    timeline: Any = None  # run_jit(timeline=...): the NPU timing model's Timeline

    @property
    def max_abs_err(self) -> float:
        return max((c.max_abs_err for c in self.comparisons), default=0.0)

    @property
    def max_rel_err(self) -> float:
        return max((c.max_rel_err for c in self.comparisons), default=0.0)

    def __bool__(self) -> bool:
        """True only when a golden was compared and every output agreed."""
        return self.passed is True

    def __str__(self) -> str:
        times = f"(compile {self.compile_s * 1e3:.1f} ms, run {self.run_s * 1e3:.1f} ms)"
        if self.passed is None:
            lines = [f"ran on {self.target} {times}; no golden given, nothing compared"]
            lines += [f"  {n}: {k}/{of} elements never written (the simulator's poison is "
                      f"still there)" for n, (k, of) in self.unwritten.items()]
            return "\n".join(lines)
        head = f"{'PASS' if self.passed else 'FAIL'} on {self.target} {times}"
        return "\n".join([head] + [f"  {c}" for c in self.comparisons])
