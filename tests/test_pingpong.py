"""PingPong (mixtile/passes/ping_pong.py): loops that load on-chip tiles, unrolled by two
so that PlanMemory gives the halves their own buffers. The arithmetic is unchanged (the
same bits with and without it, odd trip counts included), the emitted Ascend C runs on
the CPU model of the API, the timing model shows the loads under the multiplies, and
tiles too large to double still compile (one buffer each, as before)."""
import numpy as np
import pytest
import torch

import mixtile as mt
from mixtile.simulator import simulate
from tilelang_models.kernels import gemm as G
from tilelang_models.kernels import mixed as X
from tilelang_models.qwen3 import kernels as Q


def _guards(kernel):
    return [op.attrs.get("held") for op in kernel.walk() if op.attrs.get("pingpong") == "guard"]


def _t(*shape, gen, scale=1.0, dtype=torch.bfloat16):
    return (torch.randn(*shape, generator=gen) * scale).to(dtype)


def _run_both(kern, args, **consts):
    """The outputs with pingpong on and off (simulator, a2)."""
    outs = []
    for pp in (True, False):
        a = [x.clone() if isinstance(x, torch.Tensor) else x for x in args]
        mt.run_jit(kern, *a, compile_cfg=dict(pingpong=pp), **consts)
        outs.append(a)
    return outs


@pytest.mark.parametrize("k", [128, 3 * 128 + 5, 4 * 128, 7 * 128 - 1],
                         ids=["1-step", "4-steps-ragged", "4-steps", "7-steps"])
def test_unrolled_k_loop_gives_the_same_bits(k, gen):
    """One K step (left as written), odd and even step counts, a ragged last step."""
    m, n = 70, 200
    x, w = _t(m, k, gen=gen), _t(n, k, gen=gen, scale=0.07)
    on, off = _run_both(G.gemm, [x, w, torch.zeros(m, n)], TM=64, TN=128, TK=128)
    assert torch.equal(on[2], off[2])
    ck = mt.compile(G.gemm, target="npu", TM=64, TN=128, TK=128)
    assert _guards(ck.kernel) == ["all"]  # K is symbolic: the loop is unrolled


@pytest.mark.parametrize("name", ["gemm_swiglu", "gemm_residual", "rmsnorm_gemm"])
def test_unrolled_mixed_kernels_give_the_same_bits(name, gen):
    m, n, k = 37, 160, 5 * 64 + 3
    if name == "gemm_swiglu":
        kern, consts = X.gemm_swiglu, dict(TM=32, TN=64, TK=64)
        args = [_t(m, k, gen=gen), _t(2 * n, k, gen=gen, scale=0.07),
                torch.zeros(m, n, dtype=torch.bfloat16)]
    elif name == "gemm_residual":
        kern, consts = X.gemm_residual, dict(TM=32, TN=64, TK=64)
        args = [_t(m, k, gen=gen), _t(n, k, gen=gen, scale=0.07), _t(m, n, gen=gen),
                torch.zeros(m, n, dtype=torch.bfloat16)]
    else:
        kern, consts = Q.rmsnorm_gemm, dict(TM=16, TN=64, TK=64)
        args = [_t(m, k, gen=gen), _t(k, gen=gen), _t(n, k, gen=gen, scale=0.07),
                torch.zeros(m, n, dtype=torch.bfloat16), 1e-6]
    ck = mt.compile(kern, target="npu", **consts)
    assert _guards(ck.kernel), "the kernel's K loop was not unrolled"
    on, off = _run_both(kern, args, **consts)
    for a, b in zip(on, off):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)


def test_pingpong_false_keeps_every_loop_as_written():
    ck = mt.compile(G.gemm, target="npu", compile_cfg=dict(pingpong=False),
                    TM=64, TN=128, TK=128)
    assert _guards(ck.kernel) == []
    assert not any(op.attrs.get("pingpong") for op in ck.kernel.walk())


def test_tiles_too_large_to_double_still_compile(gen):
    """TN 128 x TK 256: a w tile is 64 KiB of L0B, all of a2's, so the L0 tiles cannot be
    doubled; the L1 loads can (held = "loads"), and the results agree."""
    ck = mt.compile(G.gemm, target="npu", TM=64, TN=128, TK=256)
    assert _guards(ck.kernel) == ["loads"]
    peak = ck.kernel.attrs["mem_peak"]
    assert all(peak[s] <= ck.target.capacity[s] for s in peak)
    m, n, k = 64, 128, 3 * 256
    x, w = _t(m, k, gen=gen), _t(n, k, gen=gen, scale=0.07)
    on, off = _run_both(G.gemm, [x, w, torch.zeros(m, n)], TM=64, TN=128, TK=256)
    assert torch.equal(on[2], off[2])


@pytest.mark.parametrize("arch", ["a2", "a5"])
def test_the_timeline_shows_the_loads_under_the_multiplies(arch):
    """The same GEMM + residual with and without PingPong: with it the cube waits less
    (M busier, MTE2 busier) and the estimate drops by more than a fifth."""
    m, n, k = 256, 1024, 2048
    x, w, r = (np.zeros(s, np.float32) for s in ((m, k), (n, k), (m, n)))
    tl = {}
    for pp in (False, True):
        ck = mt.compile(X.gemm_residual, dict(arch=arch, pingpong=pp), TM=64, TN=128, TK=128)
        tl[pp] = simulate(ck.kernel, {"x": x, "w": w, "res": r}, arch, timing=True).timeline
    assert tl[True].makespan_cycles < 0.8 * tl[False].makespan_cycles
    u_on, u_off = tl[True].utilisation(), tl[False].utilisation()
    assert u_on["AIC.M"] > 1.3 * u_off["AIC.M"]
    assert u_on["AIC.MTE2"] > 1.3 * u_off["AIC.MTE2"]


def test_the_emitted_pingpong_loop_runs_on_the_cpu_model(gen, tmp_path):
    """An odd number of K steps (the last guard runs no trip) through the emitted Ascend
    C on the CPU model of the API, against the simulator."""
    pytest.importorskip("test_ascendc_cpu")
    from test_ascendc_cpu import GXX, _compare

    if GXX is None:
        pytest.skip("g++ is not installed")
    m, n, k = 70, 200, 5 * 64 + 9
    x, w = _t(m, k, gen=gen), _t(n, k, gen=gen, scale=0.07)
    _compare(G.gemm, [x, w, torch.zeros(m, n)], tmp_path, rtol=1e-3, TM=64, TN=128, TK=64)
    r = _t(m, n, gen=gen)
    _compare(X.gemm_residual, [x, w, r, torch.zeros(m, n, dtype=torch.bfloat16)],
             tmp_path, TM=32, TN=64, TK=64)


def test_the_emitted_syncs_keep_most_of_the_gain():
    """Under the npu pipeline the timing model honours the emitted pipe_syncs (a WaitFlag
    waits for every earlier op of its source pipe): never faster than ordering by buffers
    alone, and the unrolled loop still beats the loop as written by a quarter."""
    m, n, k = 256, 1024, 2048
    x, w = np.zeros((m, k), np.float32), np.zeros((n, k), np.float32)
    t = {}
    for pipeline in ("sim", "npu"):
        for pp in (False, True):
            ck = mt.compile(G.gemm, dict(pipeline=pipeline, pingpong=pp),
                            TM=128, TN=256, TK=64)
            syncs = sum(op.name == "pipe_sync" for op in ck.kernel.walk())
            assert (syncs > 0) == (pipeline == "npu")
            tl = simulate(ck.kernel, {"x": x, "w": w}, "a2", timing=True).timeline
            t[pipeline, pp] = tl.makespan_cycles
    assert t["npu", True] >= t["sim", True] and t["npu", False] >= t["sim", False]
    assert t["npu", True] > 1.05 * t["sim", True]  # the syncs cost something here
    assert t["npu", True] < 0.75 * t["npu", False]
