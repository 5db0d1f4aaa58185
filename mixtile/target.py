"""The target table: every machine number lives here, never inline."""
from __future__ import annotations

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

A2 = Target("a2", clusters=24, aiv_per_cluster=2, capacity=_A2_CAP, legal_paths=_A2_PATHS)
A3 = Target("a3", clusters=24, aiv_per_cluster=2, capacity=_A2_CAP, legal_paths=_A2_PATHS)
A5 = Target(
    "a5", clusters=18, aiv_per_cluster=2,
    capacity={**_A2_CAP, _S.UB: 248 * KiB, _S.L0C: 256 * KiB},
    legal_paths=_A5_PATHS,
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
