"""The default pass pipeline, as one list read top to bottom."""
from __future__ import annotations

from mixtile.passes import (
    CSE,
    DCE,
    BiasToMmad,
    ClassifyCores,
    ExpandMixedKernel,
    FuseEpilogue,
    InferSpaces,
    InsertPipeSync,
    LegalizePaths,
    PingPong,
    PlanMemory,
    Simplify,
)


def default_pipeline() -> list:
    return [
        Simplify,  # fold index math (sympy), dedupe equal expressions
        CSE,
        DCE,
        InferSpaces,  # tiles get memory spaces; moves inserted
        FuseEpilogue,  # bias/ReLU/cast into the L0C writeback
        DCE,
        LegalizePaths,  # illegal paths routed through legal spaces / GM workspace
        ExpandMixedKernel,  # cube + vector launch -> per-core programs, flags, lane split
        DCE,
        ClassifyCores,  # AIC-only or AIV-only launch
        PingPong,  # loops that load tiles unrolled by two: ping-pong buffers
        PlanMemory,  # addresses by liveness; capacity check per space
    ]


def gpu_pipeline() -> list:
    """For the Triton backend: one program holds cube and vector work, so no memory
    spaces, crossings or plans; only the clean-ups."""
    return [Simplify, CSE, DCE]


def ascendc_pipeline() -> list:
    """For the Ascend C backend: the Ascend pipeline with fused biases moved to the first
    Mmad (dav-c220 has no FIXPIPE bias), then each core's pipes ordered where data flows
    between them (SetFlag/WaitFlag, PipeBarrier)."""
    passes = default_pipeline()
    assert passes[-1] is PlanMemory
    return passes[:-1] + [BiasToMmad, PlanMemory, InsertPipeSync]
