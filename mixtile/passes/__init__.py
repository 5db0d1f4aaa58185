"""Compiler passes and the pass manager. Add a pass: one import line below (sorted)."""
from mixtile.passes.bias_to_mmad import BiasToMmad  # noqa: F401
from mixtile.passes.classify_cores import classify_cores
from mixtile.passes.cse_dce import CSE, DCE  # noqa: F401
from mixtile.passes.expand_mixed import expand_mixed_kernel
from mixtile.passes.fuse_epilogue import fuse_epilogue
from mixtile.passes.infer_spaces import infer_spaces
from mixtile.passes.insert_pipe_sync import InsertPipeSync  # noqa: F401
from mixtile.passes.legalize_paths import legalize_paths
from mixtile.passes.manager import (  # noqa: F401
    Pass,
    PassContext,
    PassManager,
    as_pass,
    compiler_pass,
)
from mixtile.passes.ping_pong import PingPong  # noqa: F401
from mixtile.passes.plan_memory import PlanMemory  # noqa: F401
from mixtile.passes.simplify import Simplify  # noqa: F401
from mixtile.passes.verify import verify  # noqa: F401

# passes written as plain functions (as_pass keeps a Pass as it is)
ClassifyCores = as_pass(classify_cores)
ExpandMixedKernel = as_pass(expand_mixed_kernel)
FuseEpilogue = as_pass(fuse_epilogue)
InferSpaces = as_pass(infer_spaces)
LegalizePaths = as_pass(legalize_paths)
