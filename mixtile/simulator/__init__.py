"""CPU simulator: executes a lowered kernel IR with numpy, with checkers and a cycle model.

    from mixtile.simulator import simulate
    res = simulate(kernel, {"x": x, "w": w}, target)   # res.outputs["y"], res.cycles

Every core of every cluster runs as a deterministic cooperative task: a mixed kernel's
block is one cluster's work (its AIC program on the AIC, its AIV program on AIV0 and
AIV1); blocks past the cluster count run as later waves. Synchronisation semantics:

- set_flag(flag, to): AIC -> AIV raises the counter of both lanes (to=AIV) or one; an AIV
  -> AIC set counts once both AIVs of the cluster have set it (A2/A3 mode 2); wait_flag
  blocks until the own counter is > 0 and decrements it. More than `flag_limit` (15)
  pending sets raise FlagOverflowError (the chip would freeze).
- syncall(core_type, mode): a barrier over the launch's cores of that type. HARD needs
  grid == clusters (AIV-only kernels: == AIV cores), SOFT grid <= that; else SyncallError
  when the launch starts. A barrier or flag no core can complete is a DeadlockError.
- GM ordering (race detection, `race`): blocks are unordered. A sync op (a set_flag
  consumed by a wait_flag, or a syncall) orders the earlier GM *reads* of the releasing
  core before the other side, but its GM *writes* only if it executed a fence after them
  and before the sync op. Unordered overlapping accesses (one a write; two atomic adds
  never race; IN tensors never race) raise RaceError.

`checks=False` turns off capacity, data-path, bounds, uninitialised-read, race and flag
overflow checks; deadlocks and impossible syncalls are always errors.

Modules: `memory` (GM buffers, poison, GM checks), `checks` (capacity and data paths),
`memops` (load/store/fixpipe/move closures), `syncops` (flag/fence/syncall closures),
`interp` (closure compiler), `sched` (tasks, waves, scheduler, deadlock), `race`
(happens-before GM race detector), `driver` (argument binding, `simulate`), `report`.
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
