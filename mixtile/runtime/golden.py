"""Comparing outputs with a golden: error figures and a pass/fail verdict."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

# (rtol, atol) that each output dtype warrants
_TOL = {
    torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1e-2),
    torch.float8_e4m3fn: (1.3e-1, 6e-2), torch.float8_e5m2: (2.6e-1, 1.2e-1),
}


def default_tol(dtype: torch.dtype) -> tuple[float, float]:
    return _TOL.get(dtype, (0.0, 0.0))


@dataclass
class Comparison:
    """How one output compares with its golden."""

    name: str
    passed: bool
    max_abs_err: float
    max_rel_err: float
    mismatches: int
    numel: int
    rtol: float
    atol: float
    worst_index: tuple | None = None

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "MISMATCH"
        return (f"{self.name}: {verdict} max_abs_err={self.max_abs_err:.3g} "
                f"max_rel_err={self.max_rel_err:.3g} mismatches={self.mismatches}/{self.numel}"
                f" (rtol={self.rtol:g}, atol={self.atol:g})"
                + (f" worst at {self.worst_index}" if not self.passed else ""))


def compare(name: str, got: torch.Tensor, want: torch.Tensor, rtol: float | None,
            atol: float | None) -> Comparison:
    drt, dat = default_tol(got.dtype)
    rtol = drt if rtol is None else rtol
    atol = dat if atol is None else atol
    g = got.detach().to("cpu", torch.float64)
    w = want.detach().to("cpu", torch.float64)
    if g.shape != w.shape:
        return Comparison(name, False, float("inf"), float("inf"), g.numel(), g.numel(),
                          rtol, atol)
    diff = (g - w).abs()
    nan_mismatch = torch.isnan(g) != torch.isnan(w)
    same = (g == w) | (torch.isnan(g) & torch.isnan(w))  # equal infinities too
    diff = torch.where(same, torch.zeros_like(diff), diff)
    bad = (diff > atol + rtol * w.abs()) | nan_mismatch
    n_bad = int(bad.sum())
    max_abs = float(diff.nan_to_num(float("inf")).max()) if diff.numel() else 0.0
    rel = diff / w.abs().clamp_min(1e-12)
    max_rel = float(rel.nan_to_num(float("inf")).max()) if rel.numel() else 0.0
    worst = None
    if n_bad:
        flat = int(torch.argmax(torch.where(bad, diff.nan_to_num(float("inf")),
                                            torch.zeros_like(diff))))
        worst = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), g.shape))
    return Comparison(name, n_bad == 0, max_abs, max_rel, n_bad, g.numel(), rtol, atol, worst)


@dataclass
class RunResult:
    """What run_jit returns: pass/fail against the golden, error figures, timings."""

    passed: bool
    comparisons: list[Comparison] = field(default_factory=list)
    compile_s: float = 0.0
    run_s: float = 0.0
    target: str = "sim"
    cycles: dict = field(default_factory=dict)

    @property
    def max_abs_err(self) -> float:
        return max((c.max_abs_err for c in self.comparisons), default=0.0)

    @property
    def max_rel_err(self) -> float:
        return max((c.max_rel_err for c in self.comparisons), default=0.0)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        head = f"{'PASS' if self.passed else 'FAIL'} on {self.target} " \
               f"(compile {self.compile_s * 1e3:.1f} ms, run {self.run_s * 1e3:.1f} ms)"
        return "\n".join([head] + [f"  {c}" for c in self.comparisons])
