"""Hand-written per-core regions (mt.on_core) ordered by user flags, and what the compiler
and the simulator reject about them."""
import pytest
import torch

import mixtile as mt


def _kernel(with_fence=True, reverse_wait=True, flag=2):
    @mt.kernel
    def handwritten(x: mt.Tensor["M", "K", mt.f16], w: mt.Tensor["N", "K", mt.f16],
                    y: mt.Out["M", "N", mt.f32], TM: mt.const = 16, TN: mt.const = 64,
                    TK: mt.const = 32):
        P = mt.target().clusters
        ws = mt.workspace((P, TM, TN), mt.f32)
        for blk in mt.spmd(mt.cdiv(x.shape[0], TM)):
            m0 = blk * TM
            slot = blk % P
            with mt.on_core(mt.CoreType.AIC):
                acc = mt.matmul(mt.load(x[m0:m0 + TM, 0:TK]), mt.load(w[0:TN, 0:TK]),
                                b_trans=True)
                mt.store(ws[slot, 0:TM, 0:TN], acc)
                if with_fence:
                    mt.fence()
                mt.set_flag(flag, to=mt.CoreRole.AIV)
                if reverse_wait:
                    mt.wait_flag(flag + 1)  # the lanes have read the slot
            with mt.on_core(mt.CoreType.AIV) as lane:
                h = TM // 2
                mt.wait_flag(flag)
                t = mt.load(ws[slot, lane * h:lane * h + h, 0:TN])
                mt.set_flag(flag + 1, to=mt.CoreRole.AIC)
                r0 = mt.smin(m0 + lane * h, x.shape[0])  # lane 1 of a ragged last block
                mt.store(y[r0:r0 + h, 0:TN], mt.exp(t * 0.1))

    return handwritten


def _inputs(gen, m=100):
    x = torch.randn(m, 32, generator=gen).half()
    w = torch.randn(64, 32, generator=gen).half()
    return x, w, torch.empty(m, 64)


def _ref(x, w, y):
    return torch.exp(0.1 * (x.float() @ w.float().T))


def test_handwritten_pipeline_vs_torch(gen):
    res = mt.run_jit(_kernel(), *_inputs(gen), golden=_ref, rtol=1e-4, atol=1e-4)
    assert res.passed, str(res)


def test_missing_fence_is_a_race(gen):
    with pytest.raises(mt.RaceError):
        mt.run_jit(_kernel(with_fence=False), *_inputs(gen))


def test_missing_reverse_wait_races_on_the_reused_slot(gen):
    # 60 blocks on 24 clusters: a cluster's next block rewrites its slot before the lanes
    # have read it
    with pytest.raises(mt.RaceError, match="scratch0"):
        mt.run_jit(_kernel(reverse_wait=False), *_inputs(gen, m=16 * 60))


def test_flag_id_clash_with_generated_crossings():
    @mt.kernel
    def k(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
          y: mt.Out["M", "N", mt.bf16], TM: mt.const = 16, TN: mt.const = 64):
        for blk in mt.spmd(1):
            acc = mt.matmul(mt.load(x[0:TM, 0:32]), mt.load(w[0:TN, 0:32]), b_trans=True)
            mt.store(y[0:TM, 0:TN], mt.silu(acc).astype(mt.bf16))
            with mt.on_core(mt.CoreType.AIC):
                mt.set_flag(0, to=mt.CoreRole.AIV)  # BAD: flag 0 carries the crossing
            with mt.on_core(mt.CoreType.AIV):
                mt.wait_flag(0)

    with pytest.raises(mt.TraceError, match="used by this launch's cube<->vector crossings"):
        mt.compile(k)


def test_flag_set_in_a_loop_without_wait_is_caught_at_compile_time():
    @mt.kernel
    def k(x: mt.Tensor["M", mt.f32], y: mt.Out["M", mt.f32]):
        for blk in mt.spmd(1):
            with mt.on_core(mt.CoreType.AIC):
                for i in mt.range(0, x.shape[0]):
                    mt.set_flag(3, to=mt.CoreRole.AIV)  # BAD: never waits
            with mt.on_core(mt.CoreType.AIV):
                mt.store(y[0:8], mt.load(x[0:8]))

    with pytest.raises(mt.FlagOverflowError, match="never waits"):
        mt.compile(k)


def test_flags_only_inside_core_regions():
    @mt.kernel
    def k(x: mt.Tensor["M", mt.f32], y: mt.Out["M", mt.f32]):
        for blk in mt.spmd(1):
            mt.set_flag(3, to=mt.CoreRole.AIV)

    with pytest.raises(mt.TraceError, match="outside mt.on_core"):
        mt.compile(k)


def test_flag_ids_beyond_the_target_are_rejected():
    with pytest.raises(mt.TraceError, match="flag ids 0..10"):
        mt.compile(_kernel(flag=11))


@pytest.mark.parametrize("arch", ["a2", "a5"])
def test_a_move_into_the_other_cores_memory_is_an_illegal_path(arch):
    """Even on A5, where L0C->UB and UB->L1 exist, a hand-written region cannot hand data
    to the other core by a move: the data crosses through GM with the user's flags."""
    @mt.kernel
    def cube_to_ub(x: mt.Tensor["M", "K", mt.f16], w: mt.Tensor["N", "K", mt.f16],
                   y: mt.Out["M", "N", mt.f32], z: mt.Out["M", "N", mt.f32]):
        for blk in mt.spmd(1):
            with mt.on_core(mt.CoreType.AIC):
                acc = mt.matmul(mt.load(x[0:16, 0:32]), mt.load(w[0:64, 0:32]), b_trans=True)
                u = mt.move(acc, mt.UB)  # BAD: UB is the vector cores' memory
                mt.store(y[0:16, 0:64], u)
                mt.store(z[0:16, 0:64], u)

    @mt.kernel
    def vector_to_l1(x: mt.Tensor["M", "K", mt.f32], y: mt.Out["M", "K", mt.f16]):
        for blk in mt.spmd(1):
            with mt.on_core(mt.CoreType.AIV):
                t = mt.move(mt.load(x[0:16, 0:32]).astype(mt.f16), mt.L1)  # BAD: the AIC's L1
                mt.store(y[0:16, 0:32], mt.move(t, mt.UB))

    for k, what in ((cube_to_ub, "on_core(AIC) region moves data L0C -> UB"),
                    (vector_to_l1, "on_core(AIV) region moves data UB -> L1")):
        with pytest.raises(mt.IllegalPathError, match=what.replace("(", r"\(").replace(
                ")", r"\)")) as ei:
            mt.compile(k, {"arch": arch})
        assert "BAD" in open(ei.value.loc.file).readlines()[ei.value.loc.line - 1]
        assert "mt.workspace" in ei.value.fix


def test_a_value_of_one_core_region_used_in_the_other_is_named_as_such():
    @mt.kernel
    def k(x: mt.Tensor["M", "K", mt.f32], y: mt.Out["M", "K", mt.f32]):
        for blk in mt.spmd(1):
            with mt.on_core(mt.CoreType.AIV):
                t = mt.load(x[0:16, 0:32])
            with mt.on_core(mt.CoreType.AIC):
                mt.store(y[0:16, 0:32], t)  # BAD: t lives on the vector core

    with pytest.raises(mt.TraceError, match=r"inside an mt.on_core\(AIV\) region") as ei:
        mt.compile(k)
    assert "BAD" in open(ei.value.loc.file).readlines()[ei.value.loc.line - 1]
