"""The Ascend C backend: lowered per-core programs -> one Ascend C source per kernel.

Input: a kernel after the Ascend C pipeline (`runtime.pipeline.ascendc_pipeline`): memory
spaces, legal paths, per-core `core` regions with ring crossings and flags
(ExpandMixedKernel), a memory plan (PlanMemory) and pipe syncs (InsertPipeSync).
Output: `AscendCKernel` — the source (one `extern "C" __global__ __aicore__` entry, both
core types in one mixed kernel, KERNEL_TYPE_MIX_AIC_1_2), the tiling layout the host
fills (dims and scalar arguments), and the launch facts (kernel type, block count rule).

Layout of the modules: `emitter` walks the IR (launch, core regions, loops, scalars,
buffers, flags); `rules` holds one emission rule per op, keyed by OpDef, for data
movement, the cube and the vector unit; `check` verifies emitted sources structurally.
"""
from __future__ import annotations

from mixtile.codegen.ascendc.emitter import AscendCKernel, generate  # noqa: F401
