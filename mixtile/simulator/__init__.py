"""CPU simulator: executes a lowered kernel IR with numpy, with checkers and a cycle model.

    from mixtile.simulator import simulate
    res = simulate(kernel, {"x": x, "w": w}, target)   # res.outputs["y"], res.cycles

Modules: `memory` (GM buffers, poison, GM checks), `checks` (capacity and data paths),
`memops` (load/store/fixpipe/move closures), `interp` (closure compiler and executor),
`driver` (argument binding, `simulate`), `report` (SimResult).
"""
from mixtile.simulator.driver import simulate
from mixtile.simulator.interp import CoreState, Machine, Program, compile_kernel
from mixtile.simulator.memory import GMBuffer, poison
from mixtile.simulator.report import SimResult

__all__ = [
           "CoreState",
           "GMBuffer",
           "Machine",
           "Program",
           "SimResult",
           "compile_kernel",
           "poison",
           "simulate",
]
