"""Flash-attention decode (split-KV + merge after a hard syncall) and its broken twins:
each failure that on a chip is a hang or silently wrong numbers gets its own error."""
import inspect
import math

import pytest
import torch

import mixtile as mt
from tilelang_models.kernels.attention import flash_decode


def _ref(q, k, v, out):
    return torch.softmax((q.float() @ k.float().T) / math.sqrt(q.shape[1]), -1) @ v.float()


def _inputs(gen, g, s, d=128):
    return (torch.randn(g, d, generator=gen).bfloat16(),
            torch.randn(s, d, generator=gen).bfloat16(),
            torch.randn(s, d, generator=gen).bfloat16(), torch.empty(g, d))


@pytest.mark.parametrize("g,s,tq", [(5, 1000, 8), (8, 64, 8), (1, 3000, 8), (7, 17, 8),
                                    (3, 1537, 8), (5, 700, 5)])
def test_flash_decode_vs_torch(gen, g, s, tq):
    res = mt.run_jit(flash_decode, *_inputs(gen, g, s), TQ=tq, golden=_ref, rtol=2e-2,
                     atol=2e-2)
    assert res.passed, str(res)


def test_flash_decode_structure():
    k = mt.compile(flash_decode).kernel
    names = [op.name for op in k.walk()]
    assert k.attrs["core"] is mt.CoreType.MIX
    assert names.count("syncall") == 2  # one in the AIC program, one in the AIV program
    assert names.count("core") == 2 and "split_aiv" not in names  # inlined into AIV


def _variant(edit):
    """flash_decode with one source line changed: a broken twin."""
    src = inspect.getsource(flash_decode.fn)
    src = edit(src)
    ns = {"mt": mt, "math": math}
    exec(compile(src.replace("@mt.kernel\n", ""), inspect.getsourcefile(flash_decode.fn),
                 "exec"), ns)
    return mt.kernel(ns["flash_decode"])


def test_hard_syncall_on_fewer_blocks_than_clusters():
    k = _variant(lambda s: s.replace("mt.spmd(P)", "mt.spmd(P - 1)"))
    with pytest.raises(mt.SyncallError, match="23 blocks on 24 clusters"):
        mt.compile(k)


def test_blocks_in_waves_never_meet_at_a_soft_barrier(gen):
    k = _variant(lambda s: s.replace("mt.spmd(P)", "mt.spmd(P + 6)").replace(
        "mt.SyncMode.HARD", "mt.SyncMode.SOFT"))
    with pytest.raises(mt.SyncallError, match="30 blocks on 24 clusters"):
        mt.compile(k)


def test_handoff_across_syncall_without_fence_races(gen):
    k = _variant(lambda s: s.replace("        mt.fence()\n", ""))
    with pytest.raises(mt.RaceError, match="part_"):
        mt.run_jit(k, *_inputs(gen, 5, 300))


def test_two_lanes_on_the_same_rows_race(gen):
    k = _variant(lambda s: s.replace("r = blk * 2 + lane", "r = blk * 2 + lane * 0"))
    with pytest.raises(mt.RaceError, match="AIV0.*AIV1|AIV1.*AIV0"):
        mt.run_jit(k, *_inputs(gen, 5, 300))


def test_flag_set_past_the_limit_without_a_wait_freezes(gen):
    from mixtile.simulator import simulate

    ck = mt.compile(flash_decode)
    aic = next(op for op in ck.kernel.walk() if op.name == "core"
               and op.attrs["core"] is mt.CoreType.AIC)
    for op in list(aic.regions[0].walk()):
        if op.name == "wait_flag" and op.attrs["flag"] % 2:  # FREE: slot reuse unguarded
            op.parent.ops.remove(op)
    q, k, v, _ = _inputs(gen, 5, 24 * 64 * 20)  # 20 KV tiles per cluster
    args = {"q": q.float().numpy(), "k": k.float().numpy(), "v": v.float().numpy()}
    with pytest.raises(mt.FlagOverflowError):
        simulate(ck.kernel, args, ck.target)


def test_flash_decode_on_a5_sizes_its_launch_from_the_target(gen):
    res = mt.run_jit(flash_decode, *_inputs(gen, 5, 999), compile_cfg=dict(arch="a5"),
                     golden=_ref, rtol=2e-2, atol=2e-2)
    assert res.passed, str(res)
    k = mt.compile(flash_decode, compile_cfg=dict(arch="a5")).kernel
    assert next(p for p in k.params if p.name == "part_m").value.type.shape[0] == 18
