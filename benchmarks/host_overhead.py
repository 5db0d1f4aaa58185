"""Host time per launch of mixtile's CUDA path for one Qwen3 layer step (tiny config,
batch 3): `mt.run_jit` (checks and compile-cache lookup on every call), a bound launcher
(`mt.compile(...).bind(*args)`, checked once) and the Triton kernels called directly with
the same argument lists, measured in the same run; ratios against the direct calls.

    python benchmarks/host_overhead.py [--steps 300] [--repeat 5]

With a GPU the launches are real and the time is the host's (the loop is timed without
waiting for the GPU: the tiny layer's kernels take less time than their launches). Without
one, Triton's driver is replaced by a stand-in: each phase is compiled for sm_90 as for an
H100 (ptxas included), Triton's Python launch path runs in full (argument binding,
specialisation, kernel-cache lookup) and only the final C launcher call is a no-op, so
what is timed is mixtile's part plus Triton's own dispatch. Prints a table, then a JSON line.
"""
import argparse
import dataclasses
import json
import os
import time

import torch

HAS_GPU = torch.cuda.is_available()
os.environ.pop("TRITON_INTERPRET", None)  # compiled Triton, never the interpreter

import mixtile as mt  # noqa: E402
from mixtile.runtime import backends  # noqa: E402
from tilelang_models.qwen3.config import get_config  # noqa: E402
from tilelang_models.qwen3.decode_layer import DecodeLayer  # noqa: E402
from tilelang_models.qwen3.paged import make_paged_cache  # noqa: E402
from tilelang_models.qwen3.weights import random_weights  # noqa: E402


def _stand_in_driver() -> None:
    """Triton's active driver replaced by one that compiles for sm_90 and launches
    nothing; mixtile's cuda backend told to take CPU tensors."""
    from triton.backends.compiler import GPUTarget
    from triton.runtime.driver import driver

    class Utils:
        def load_binary(self, name, kernel, shared, device):
            return 1, 1, 32, 0, 1024  # module, function, registers, spills, max threads

        def get_device_properties(self, device):
            return {"max_shared_mem": 232448, "multiprocessor_count": 132,
                    "max_num_regs": 65536, "warpSize": 32}

        def unload_module(self, module):
            pass

    class StandIn:
        utils = Utils()

        def get_current_device(self):
            return 0

        def get_current_stream(self, device=None):
            return 0

        def get_current_target(self):
            return GPUTarget("cuda", 90, 32)

        def launcher_cls(self, src, metadata):
            return lambda *args: None  # the C launch: not timed

    driver.set_active(StandIn())
    cuda = backends.BACKENDS["cuda"]
    backends.BACKENDS["cuda"] = dataclasses.replace(cuda, device=lambda: "cpu",
                                                    missing=lambda: [])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    if not HAS_GPU:
        _stand_in_driver()
    dev = "cuda" if HAS_GPU else "cpu"
    cfg = get_config("tiny")
    w = random_weights(cfg, 0)
    w = type(w)(**{k: t.to(dev) for k, t in w.items()})
    layer = DecodeLayer(cfg, w, target="cuda", progress=False, tune=False)
    k, v, bt, sl = (t.to(dev) for t in make_paged_cache(cfg, [30, 20, 7], 16, 1))
    x = torch.randn(3, cfg.hidden_size, device=dev).bfloat16()
    layer(x, k, v, bt, sl)  # compile, load, choose launch configs
    steps = layer.steps(x, k, v, bt, sl)
    launchers = [mt.compile(kern, layer.compile_cfg, target="cuda", **consts).bind(*args)
                 for _, kern, args, consts in steps]
    for launch, (_, _, args, _) in zip(launchers, steps):
        launch(*args)  # the first call fixes each phase's grid and launch config
    direct = [(fn, grid, w_, s_, launch._run.args_for(args))
              for launch, (_, _, args, _) in zip(launchers, steps)
              for fn, grid, w_, s_ in launch._run.plan]

    def run_jit():
        for s in steps:
            layer.run_step(*s)

    def bound():
        for launch, (_, _, args, _) in zip(launchers, steps):
            launch(*args)

    def triton_direct():
        for fn, grid, warps, stages, flat in direct:
            fn[(grid,)](*flat, num_warps=warps, num_stages=stages)

    def timed(fn) -> float:
        fn()
        if HAS_GPU:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            fn()
        dt = (time.perf_counter() - t0) / a.steps * 1e6
        if HAS_GPU:
            torch.cuda.synchronize()
        return dt

    best = {f.__name__: float("inf") for f in (run_jit, bound, triton_direct)}
    for _ in range(a.repeat):  # interleaved, best of `repeat`
        for f in (run_jit, bound, triton_direct):
            best[f.__name__] = min(best[f.__name__], timed(f))
    n_calls, n_launch = len(steps), len(direct)
    floor = best["triton_direct"]
    print(f"per layer step: {n_calls} kernel calls, {n_launch} Triton launches "
          f"({'GPU' if HAS_GPU else 'stand-in driver, no launches'})")
    for name, us in best.items():
        print(f"  {name:<14} {us:8.1f} us/step  {us / n_launch:6.1f} us/launch  "
              f"{us / floor:5.2f}x of direct")
    print(json.dumps({"bench": "host_overhead", "gpu": HAS_GPU, "kernel_calls": n_calls,
                      "launches": n_launch,
                      **{f"us_per_step_{k}": round(v, 1) for k, v in best.items()},
                      "run_jit_vs_direct": round(best["run_jit"] / floor, 2),
                      "bound_vs_direct": round(best["bound"] / floor, 2)}))


if __name__ == "__main__":
    main()
