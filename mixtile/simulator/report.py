"""The result of a simulated run and a small text report of its cycle counts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mixtile.ir.types import Pipe


@dataclass
class SimResult:
    """What `simulate` returns.

    outputs: OUT/INOUT parameter name -> final contents in compute form (float32 for
    floats). cycles: per pipe, summed over all cores. core_cycles: per core name (e.g.
    "AIC3") -> cycles per pipe. blocks: how many grid blocks ran. timeline: the timing
    model's `trace.Timeline` (simulate(..., timing=True)), else None.
    """

    outputs: dict[str, np.ndarray]
    cycles: dict[Pipe, int]
    core_cycles: dict[str, dict[Pipe, int]] = field(default_factory=dict)
    blocks: int = 0
    timeline: Any = None

    @property
    def makespan(self) -> int:
        """A crude end-to-end estimate: the busiest pipe of the busiest core (the pipes of
        a core overlap and the cores run in parallel)."""
        return max((max(c.values(), default=0) for c in self.core_cycles.values()), default=0)

    def summary(self) -> str:
        """A short text table: total cycles per pipe, busiest core, blocks."""
        pipes = [p for p in Pipe if self.cycles.get(p)]
        head = (f"blocks: {self.blocks}, cores: {len(self.core_cycles)}, "
                f"makespan ~{self.makespan} cycles")
        lines = [head]
        lines += [f"  {p.value:>5}: {self.cycles[p]:>12} cycles (all cores)" for p in pipes]
        if self.core_cycles:
            name, cyc = max(self.core_cycles.items(), key=lambda kv: max(kv[1].values()))
            busy = ", ".join(f"{p.value}={cyc[p]}" for p in pipes if cyc.get(p))
            lines.append(f"  busiest core {name}: {busy}")
        return "\n".join(lines)
