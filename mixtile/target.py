"""The target table: every machine number lives here, never inline."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mixtile.ir.types import CoreType, MemSpace

KiB = 1024
_S = MemSpace

# Data paths of A2/A3: cube<->vector data crosses only through GM.
_A2_PATHS = frozenset({
    (_S.GM, _S.L1), (_S.GM, _S.UB), (_S.UB, _S.GM), (_S.L1, _S.L0A), (_S.L1, _S.L0B),
    (_S.L1, _S.BT), (_S.L0C, _S.L1), (_S.L0C, _S.GM),
})
# The memories of each core type: the cube core's, and a vector core's (its UB).
CORE_SPACES = {
    CoreType.AIC: frozenset({_S.L1, _S.L0A, _S.L0B, _S.L0C, _S.BT}),
    CoreType.AIV: frozenset({_S.UB}),
}
_ALIGN = {_S.UB: 32, _S.L1: 32, _S.L0A: 512, _S.L0B: 512, _S.L0C: 1024, _S.BT: 64}
# A5 adds the direct L0C->UB and UB->L1 paths.
_FRACTAL_SPACES = frozenset({_S.L1, _S.L0A, _S.L0B, _S.L0C})
_A5_PATHS = _A2_PATHS | {(_S.L0C, _S.UB), (_S.UB, _S.L1)}


@dataclass(frozen=True)
class Timing:
    """The numbers of the NPU timing model (`mixtile.simulator.timing`) for one machine.

    Each field says where it comes from: a published figure, or an estimate (a guess
    that the model's results depend on; change it here when a measurement says
    otherwise). Cycles are AI-core clock cycles."""

    clock_hz: float
    hbm_bytes_per_s: float  # shared by every core of the die
    l2_bytes: int  # a GM region read again in the same launch is served from L2
    # per-core path bandwidths (bytes per cycle): what one core's pipe moves when HBM
    # is not the limit (an L2 hit, or few cores streaming)
    mte2_bytes_per_cycle: int  # GM/L2 -> L1 or UB
    mte3_bytes_per_cycle: int  # UB -> GM
    mte1_bytes_per_cycle: int  # L1 -> L0A/L0B
    fix_bytes_per_cycle: int  # L0C -> GM/L1 (FIXPIPE)
    vector_bytes_per_cycle: int  # V pipe, per AIV
    flag_cycles: int  # a cross-core set_flag until the waiting core sees it
    syncall_cycles: int  # the last arrival at a syncall until every core leaves it

    @property
    def hbm_bytes_per_cycle(self) -> float:
        return self.hbm_bytes_per_s / self.clock_hz


# A2/A3 (Ascend 910B class), per die.
_A2_TIMING = Timing(
    # estimate: 1.8 GHz is the AI-core clock most often quoted for the 910B; with the
    # published cube rate (16x16x16 MACs per cycle per AI core, 4096, Hot Chips 2019)
    # and 24 cube cores it gives 354 TFLOPS fp16, the range of the published 910B figures
    clock_hz=1.8e9,
    # estimate: 910B parts carry 64 GB HBM2e; third-party spec sheets give 1.2 to
    # 1.6 TB/s for it (no single published figure); 1.6 TB/s used
    hbm_bytes_per_s=1.6e12,
    l2_bytes=192 * 1024 * KiB,  # estimate: 192 MB is the L2 size quoted for the 910B
    mte2_bytes_per_cycle=128,  # estimate (a cube-bound GEMM of 128x256 tiles needs ~96)
    mte3_bytes_per_cycle=64,  # estimate
    mte1_bytes_per_cycle=256,  # estimate
    fix_bytes_per_cycle=128,  # estimate
    # the Ascend C vector API processes one 256-byte repeat (8 blocks of 32 B) per
    # instruction step: 256 B per cycle is the documented repeat width, its rate a guess
    vector_bytes_per_cycle=256,
    flag_cycles=100,  # estimate
    syncall_cycles=1000,  # estimate
)
# A5 (Ascend 950), per die. Estimate: 4 TB/s of HBM per package (HiBL 1.0, as reported
# from Huawei Connect 2025), half of it per die; the clock, L2 and per-core paths are
# carried over from A2 (guesses: no published figures).
_A5_TIMING = dataclasses.replace(_A2_TIMING, hbm_bytes_per_s=2.0e12)


@dataclass(frozen=True)
class Target:
    """One Ascend generation: counts, capacities and legal data paths."""

    name: str
    clusters: int  # per launch domain (die)
    aiv_per_cluster: int
    capacity: dict[MemSpace, int] = field(hash=False)
    legal_paths: frozenset[tuple[MemSpace, MemSpace]]
    cube_block: tuple[int, int, int] = (16, 16, 16)  # M, N, K per cycle per AIC
    # byte alignment of on-chip buffers per space (the Ascend C docs' general address
    # constraints: UB/L1 32 B, L0A/L0B 512 B, L0C and the bias table 64 B; an older Mmad
    # page asks 256 elements for L0C, so 1024 B there - its fractals are 1 KiB anyway)
    align: dict[MemSpace, int] = field(hash=False, default_factory=lambda: dict(_ALIGN))
    flag_limit: int = 15  # cross-core flag sets without a matching wait
    # cross-core flag ids a kernel may use: 0..10 on A2/A3 (the CrossCoreSetFlag docs;
    # higher ids are reported as taken by the hard SyncAll)
    flag_ids: int = 11
    # cost-model constants (cycles): bytes per cycle per pipe
    mte2_bytes_per_cycle: int = 64
    mte3_bytes_per_cycle: int = 64
    mte1_bytes_per_cycle: int = 256
    vector_bytes_per_cycle: int = 256
    fix_bytes_per_cycle: int = 128
    # the timing model's numbers (None: the target has no NPU timing model)
    timing: Timing | None = field(default=None, hash=False, compare=False)

    @property
    def aic_count(self) -> int:
        return self.clusters

    @property
    def aiv_count(self) -> int:
        return self.clusters * self.aiv_per_cluster

    def tile_bytes(self, t) -> int:
        """Bytes a tile occupies in its space: in the cube's spaces (L1, L0A/B/C) a 2-D
        tile is stored in 16x16 fractals (NZ), so both extents round up to 16."""
        if t.space in _FRACTAL_SPACES and len(t.shape) == 2:
            r, c = t.shape
            return -(-r // 16) * 16 * (-(-c // 16) * 16) * t.dtype.itemsize
        return t.nbytes

    def timed(self) -> Target:
        """This target with the timing table's path bandwidths in place of the cost-model
        constants: what the ops' `cost` functions read when the timing model runs."""
        tm = self.timing
        return dataclasses.replace(
            self, mte2_bytes_per_cycle=tm.mte2_bytes_per_cycle,
            mte3_bytes_per_cycle=tm.mte3_bytes_per_cycle,
            mte1_bytes_per_cycle=tm.mte1_bytes_per_cycle,
            vector_bytes_per_cycle=tm.vector_bytes_per_cycle,
            fix_bytes_per_cycle=tm.fix_bytes_per_cycle)

    def align_of(self, space: MemSpace) -> int:
        return self.align.get(space, 32)

    def is_legal(self, src: MemSpace, dst: MemSpace) -> bool:
        return (src, dst) in self.legal_paths

    def routes_from(self, src: MemSpace) -> str:
        """The legal moves out of `src`, as text ("l1->l0a, l1->l0b")."""
        outs = sorted(b.value for a, b in self.legal_paths if a is src)
        return ", ".join(f"{src.value}->{b}" for b in outs) or "none"

    def path_error(self, what: str, src: MemSpace, dst: MemSpace) -> tuple[str, str] | None:
        """The one wording of an illegal data path: (message, fix), or None if legal (or
        a space is not decided yet)."""
        if MemSpace.ANY in (src, dst) or self.is_legal(src, dst):
            return None
        to_dst = sorted(a.value for a, b in self.legal_paths if b is dst)
        paths = ", ".join(sorted(f"{a.value}->{b.value}" for a, b in self.legal_paths))
        return (f"{what} moves data {src.value} -> {dst.value}, which {self.name} has no path "
                f"for (legal routes: {paths})",
                f"route the data through legal paths: out of {src.value}: "
                f"{self.routes_from(src)}; into {dst.value}: from "
                f"{', '.join(to_dst) or 'nothing'}")

    def __str__(self) -> str:
        return self.name


_A2_CAP = {
    _S.L1: 512 * KiB, _S.L0A: 64 * KiB, _S.L0B: 64 * KiB, _S.L0C: 128 * KiB,
    _S.UB: 184 * KiB,  # 192 KiB physical, about 184 KiB usable
    _S.BT: 1 * KiB,
}

A2 = Target("a2", clusters=24, aiv_per_cluster=2, capacity=_A2_CAP, legal_paths=_A2_PATHS,
            timing=_A2_TIMING)
A3 = Target("a3", clusters=24, aiv_per_cluster=2, capacity=_A2_CAP, legal_paths=_A2_PATHS,
            timing=_A2_TIMING)
A5 = Target(
    "a5", clusters=18, aiv_per_cluster=2,
    capacity={**_A2_CAP, _S.UB: 248 * KiB, _S.L0C: 256 * KiB},
    legal_paths=_A5_PATHS, timing=_A5_TIMING,
)  # per die; the chip has 2 dies x 18 clusters

# NVIDIA GPUs through Triton: a "cluster" is a streaming multiprocessor (H100/H200: 132);
# mt.target().clusters sizes persistent launches. Capacities are not planned on this target.
GPU = Target("gpu", clusters=132, aiv_per_cluster=2, capacity=dict(_A2_CAP),
             legal_paths=_A5_PATHS)

TARGETS = {t.name: t for t in (A2, A3, A5, GPU)}
DEFAULT = A2


def get_target(name: str | Target | None) -> Target:
    """Resolve a target by name ("a2", "a3", "a5") or pass a Target through."""
    from mixtile.errors import ArgumentError

    if name is None:
        return DEFAULT
    if isinstance(name, Target):
        return name
    try:
        return TARGETS[name]
    except KeyError:
        raise ArgumentError(f"unknown target {name!r}",
                            fix=f"use one of {sorted(TARGETS)}") from None
