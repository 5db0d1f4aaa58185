"""The Ascend C backend: every example and the Qwen3 layer's kernels emit sources that
compile against the declare-only API header (tests/ascendc_api), pass the structural
checks, and match the reviewed golden sources; the extra passes keep the simulator's
results; broken sources are rejected.

Update the golden files after a deliberate emitter change with
`MIXTILE_UPDATE_GOLDEN=1 python -m pytest tests/test_ascendc.py` and review the diff.
"""
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from conftest import random_args
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixtile as mt
from mixtile.codegen.ascendc.check import CodegenCheckError, assert_sound, check
from mixtile.ir.core import Op
from mixtile.ir.types import MemSpace, Pipe, TileType
from tilelang_models.kernels import attention as A
from tilelang_models.kernels import examples
from tilelang_models.kernels import gemm as G
from tilelang_models.kernels import mixed as X
from tilelang_models.kernels import vector as V
from tilelang_models.qwen3 import kernels as Q

HERE = Path(__file__).resolve().parent
API_DIR = HERE / "ascendc_api"
GOLDEN = HERE / "golden" / "ascendc"
GXX = shutil.which("g++")

_ATTN = dict(eps=1e-6, theta=1e6)
# the Qwen3 layer's compile units (tilelang_models/qwen3/decode_layer.py: DecodeLayer.kernels)
# for the tiny and the 14B configuration, decode batch 16, and the CUDA path's variants
QWEN3 = [("rmsnorm_gemm", Q.rmsnorm_gemm, dict(TM=16, TN=128, TK=256)),
         ("gemm_residual", Q.gemm_residual, dict(TM=16, TN=128, TK=128)),
         ("rmsnorm_swiglu", Q.rmsnorm_swiglu, dict(TM=16, TN=128, TK=256)),
         # the CUDA layer's O-proj -> MLP norm hand-off pair (14B: 5120 / 128 = 40 partials)
         ("gemm_residual_sumsq", Q.gemm_residual_sumsq, dict(TM=16, TN=128, TK=128)),
         ("rmsnorm_swiglu_folded", Q.rmsnorm_swiglu_folded,
          dict(NT=40, TM=16, TN=128, TK=256)),
         ("fa_fused_tiny", Q.fa_fused, dict(HQ=4, KVH=2, D=64, BS=16, NSPLIT=6, **_ATTN)),
         ("fa_fused_14b", Q.fa_fused, dict(HQ=40, KVH=8, D=128, BS=128, NSPLIT=1, **_ATTN))]
UNITS = [(n, k, {}) for n, k in examples()] + QWEN3
_QCONSTS = {n: c for n, _, c in QWEN3}


def _emit(kern, arch="a2", **consts):
    return mt.compile(kern, dict(arch=arch), target="npu", **consts).ascendc


def _gxx(sources: dict[str, str], tmp: Path) -> dict[str, str]:
    """g++ -fsyntax-only each source against the API header; {name: stderr} of failures."""
    def one(item):
        name, src = item
        f = tmp / f"{name}.cpp"
        f.write_text(src)
        r = subprocess.run([GXX, "-std=c++17", "-fsyntax-only", "-I", str(API_DIR), str(f)],
                           capture_output=True, text=True, timeout=300)
        return name, (r.stderr if r.returncode else None)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        return {n: e for n, e in ex.map(one, sources.items()) if e is not None}


@pytest.mark.skipif(GXX is None, reason="g++ is not installed")
@pytest.mark.parametrize("arch", ["a2", "a5"])
def test_every_example_and_qwen3_kernel_compiles_against_the_api(arch, tmp_path):
    sources = {name: _emit(k, arch, **c).source for name, k, c in UNITS}
    failures = _gxx(sources, tmp_path)
    assert not failures, "\n\n".join(f"{n}:\n{e[:3000]}" for n, e in failures.items())


@pytest.mark.parametrize("name,kern,consts", UNITS, ids=[u[0] for u in UNITS])
def test_emitted_sources_pass_the_structural_checks(name, kern, consts):
    ak = _emit(kern, **consts)
    assert check(ak) == []  # generate() also asserts it; here the list is shown on failure
    assert ak.kernel_type == {"mix": "KERNEL_TYPE_MIX_AIC_1_2", "aic": "KERNEL_TYPE_AIC_ONLY",
                              "aiv": "KERNEL_TYPE_AIV_ONLY"}[ak.core.value]


# ---------------------------------------------------------------- golden sources

GOLDEN_UNITS = {"gemm_bias_silu": (X.gemm_bias_silu, {}),
                "flash_decode": (A.flash_decode, {}),
                "qwen3_rmsnorm_gemm": (Q.rmsnorm_gemm, dict(TM=16, TN=128, TK=256))}


@pytest.mark.parametrize("name", sorted(GOLDEN_UNITS))
def test_golden_sources_are_stable(name):
    kern, consts = GOLDEN_UNITS[name]
    src = _emit(kern, **consts).source
    path = GOLDEN / f"{name}.cpp"
    if os.environ.get("MIXTILE_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(src)
    assert path.exists(), f"no golden file {path}; run with MIXTILE_UPDATE_GOLDEN=1"
    assert src == path.read_text(), f"{name}: the emitted source changed; review and update"


# ---------------------------------------------------------------- what the source says

def test_mixed_gemm_epilogue_source_has_the_ring_handshake_and_pipe_syncs():
    src = _emit(X.gemm_bias_silu).source
    aic = src[src.index("if ASCEND_IS_AIC"):src.index("if ASCEND_IS_AIV")]
    aiv = src[src.index("if ASCEND_IS_AIV"):]
    # AIC: waits for a free slot, writes it with Fixpipe, signals READY on the FIX pipe
    assert aic.index("CrossCoreWaitFlag(1)") < aic.index("Fixpipe<float, float") < \
        aic.index("CrossCoreSetFlag<2, PIPE_FIX>(0)")
    # AIV: both lanes start with a FREE credit, wait READY, load, hand the slot back
    assert aiv.index("CrossCoreSetFlag<2, PIPE_MTE3>(1)") < aiv.index("CrossCoreWaitFlag(0)")
    assert aiv.index("DataCopyPad(t") < aiv.index("CrossCoreSetFlag<2, PIPE_MTE2>(1)")
    # the K loop: L1 reloads wait for MTE1 to finish reading; the cube waits for MTE1
    assert "WaitFlag<HardEvent::MTE1_MTE2>" in aic and "WaitFlag<HardEvent::MTE1_M>" in aic
    assert "mm" in aic and ".cmatrixInitVal = zero" in aic
    # dependent vector instructions are separated; the store waits for the vector unit
    assert "Silu(" in aiv and "PipeBarrier<PIPE_V>();" in aiv
    assert aiv.index("WaitFlag<HardEvent::V_MTE3>") < aiv.index("DataCopyPad(yGm")


def test_fused_bias_enters_at_the_first_mmad():
    src = _emit(G.gemm_bias_relu_bf16).source
    i_bias = src.index("DataCopy(t", src.index("Nd2NzParams") - 2000)  # bias L1 -> BT
    i_loop = src.index("for (int64_t i", src.index("bool zero"))
    assert src.index("DataCopyParams(1, 8, 0, 0)") < i_loop  # 128 floats = 8 x 64 B to C2
    assert i_bias < i_loop
    assert re.search(r"if \(zero\d+\) \{  // the first step starts from the bias", src)
    assert re.search(r"Mmad\(t\d+, t\d+, t\d+, t\d+, mm\d+\);", src)  # the bias overload
    assert "fp" in src and ".reluEn = true;" in src and "QuantMode_t::F322BF16" in src


def test_tiling_and_launch_facts():
    ak = _emit(X.gemm_bias_silu)
    names = [f.name for f in ak.tiling]
    assert names == ["x_d0", "x_d1", "w_d0", "w_d1", "bias_d0", "y_d0", "y_d1"]
    shapes = {"x": (100, 300), "w": (200, 300), "bias": (200,), "y": (100, 200)}
    assert list(ak.tiling_values(shapes)) == [100, 300, 200, 300, 200, 100, 200]
    assert ak.block_dim(shapes) == min(24, 4 * 2)  # cdiv(100, 32) x cdiv(200, 128) blocks
    assert ak.block_dim({**shapes, "x": (1000, 300), "y": (1000, 200)}) == 24  # persistent
    assert [p[0] for p in ak.params] == ["x", "w", "bias", "y", "ws0"]
    att = _emit(Q.fa_fused, **_QCONSTS["fa_fused_tiny"])
    assert att.has_syncall and att.static_grid == att.clusters == 24
    assert "SyncAll<false>();" in att.source
    eps = next(f for f in _emit(V.rmsnorm).tiling if f.name == "eps")
    assert eps.is_float


def test_a_bf16_vector_op_is_rejected_with_its_line():
    @mt.kernel
    def bad(x: mt.Tensor["R", "C", mt.bf16], y: mt.Out["R", "C", mt.bf16]):
        for b in mt.spmd(1):
            t = mt.load(x[0:8, 0:64])
            mt.store(y[0:8, 0:64], t * t)  # bf16 arithmetic: A2's vector unit has none

    with pytest.raises(mt.UnsupportedError) as ei:
        _emit(bad)
    assert "bf16 arithmetic" in str(ei.value) and ei.value.loc.line > 0
    assert "astype(mt.f32)" in ei.value.fix


def test_storing_a_bool_tile_is_rejected():
    """A comparison's result is a bit mask in UB: written to GM as bytes it would be wrong."""
    @mt.kernel
    def bad(x: mt.Tensor["R", "C", mt.f32], y: mt.Out["R", "C", mt.bool_]):
        for b in mt.spmd(1):
            mt.store(y[0:8, 0:64], mt.load(x[0:8, 0:64]) > 0.0)

    with pytest.raises(mt.UnsupportedError) as ei:
        _emit(bad)
    assert "op `store`" in str(ei.value) and ei.value.loc.line > 0
    assert "mt.where" in ei.value.fix


def test_run_jit_npu_without_cann_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("ASCEND_HOME_PATH", raising=False)
    monkeypatch.delenv("ASCEND_TOOLKIT_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    x = torch.randn(4, 8)
    with pytest.raises(mt.UnsupportedError) as ei:
        mt.run_jit(V.softmax, x, torch.empty(4, 8), target="npu")
    assert "CANN toolkit" in str(ei.value) and "torch_npu" in str(ei.value)
    assert mt.run_jit(V.softmax, x, torch.empty(4, 8), target="auto").target == "sim"


def test_build_command_and_caller(tmp_path):
    from mixtile.runtime import npu

    ak = _emit(X.gemm_bias_silu)
    cmd = npu.build_command(tmp_path / "caller.cpp", tmp_path / "k.so", tmp_path, "a2",
                            ak.kernel_type)
    assert cmd[0] == "bisheng" and "--cce-aicore-arch=dav-c220" in cmd and "-xcce" in cmd
    assert "-cce-aicore-stack-size=0x8000" in cmd
    assert "-DMIXTILE_LEGACY_SYNC_ADDR" in npu.build_command(
        tmp_path / "c.cpp", tmp_path / "k.so", tmp_path, "a2", ak.kernel_type, True)
    caller = npu.caller_source(ak)
    assert ak.sync_base and "aclrtGetHardwareSyncAddr(&addr)" in caller
    assert "gemm_bias_act<<<blockDim, nullptr, stream>>>(ffts, args[0], args[1], args[2], " \
           "args[3], args[4], args[5]);" in caller
    cube = _emit(G.gemm)  # one-unit kernels: built for their own core type, no sync base
    assert not cube.sync_base and "(ffts, " not in npu.caller_source(cube)
    assert "--cce-aicore-arch=dav-c220-cube" in npu.build_command(
        tmp_path / "c.cpp", tmp_path / "k.so", tmp_path, "a2", cube.kernel_type)
    vec = _emit(V.softmax)
    assert "--cce-aicore-arch=dav-c220-vec" in npu.build_command(
        tmp_path / "c.cpp", tmp_path / "k.so", tmp_path, "a2", vec.kernel_type)


def test_both_header_layouts_are_searched(tmp_path):
    from mixtile.runtime import npu

    old = tmp_path / "old"
    (old / "compiler/tikcpp/tikcfw/impl").mkdir(parents=True)
    (old / "include").mkdir()
    new = tmp_path / "new"
    (new / "aarch64-linux/asc/include").mkdir(parents=True)
    (new / "include/ascendc").mkdir(parents=True)
    assert old / "compiler/tikcpp/tikcfw/impl" in npu.include_dirs(old)
    assert {new / "aarch64-linux/asc/include", new / "include/ascendc"} <= set(
        npu.include_dirs(new))


def test_a_syncall_kernel_is_compiled_for_the_parts_core_count():
    """910B SKUs have 20 or 24 cube cores: a hard-SyncAll launch must match the part."""
    from mixtile.runtime import npu

    ak24 = _emit(A.flash_decode)
    assert ak24.has_syncall and ak24.static_grid == 24
    with pytest.raises(mt.UnsupportedError, match="20 cube cores") as ei:
        npu.check_cores(ak24, mt.A2, 20)
    assert "clusters=20" in ei.value.fix
    npu.check_cores(ak24, mt.A2, 24)
    ck20 = mt.compile(A.flash_decode, dict(clusters=20), target="npu")
    assert ck20.target.clusters == 20 and ck20.ascendc.static_grid == 20
    assert check(ck20.ascendc, mt.A2.flag_ids) == []
    npu.check_cores(ck20.ascendc, ck20.target, 20)
    with pytest.raises(mt.ArgumentError, match="positive int"):
        mt.compile(A.flash_decode, dict(clusters=0), target="npu")


# ---------------------------------------------------------------- the structural checker

def _tampered(ak, old: str, new: str, count: int = 1):
    import dataclasses

    assert old in ak.source, old
    return dataclasses.replace(ak, source=ak.source.replace(old, new, count))


def test_checker_rejects_a_set_flag_without_its_wait():
    ak = _emit(X.gemm_bias_silu)
    bad = _tampered(ak, "CrossCoreWaitFlag(0);", "")
    assert any("sets cross-core flag 0 but no AIV waits" in p for p in check(bad))
    with pytest.raises(CodegenCheckError):
        assert_sound(bad)


def test_checker_rejects_a_wait_nobody_sets_and_a_bad_flag_id():
    ak = _emit(X.gemm_bias_silu)
    bad = _tampered(ak, "CrossCoreWaitFlag(0);", "CrossCoreWaitFlag(0);\nCrossCoreWaitFlag(7);")
    assert any("waits on cross-core flag 7 that no AIC sets" in p for p in check(bad))
    bad = _tampered(ak, "CrossCoreSetFlag<2, PIPE_FIX>(0);", "CrossCoreSetFlag<2, PIPE_FIX>(12);")
    assert any("flag 12; ids 0..10" in p for p in check(bad))
    bad = _tampered(ak, "CrossCoreSetFlag<2, PIPE_FIX>(0);", "CrossCoreSetFlag<2, PIPE_MTE3>(0);")
    assert any("AIC issues CrossCoreSetFlag on PIPE_MTE3, a pipe it does not have" in p
               for p in check(bad))


def test_checker_rejects_an_unpaired_event_and_a_tile_past_its_buffer():
    ak = _emit(X.gemm_bias_silu)
    bad = _tampered(ak, "WaitFlag<HardEvent::MTE2_V>(EVENT_ID0);", "")
    assert any("SetFlag<MTE2_V>(EVENT_ID0) is never waited" in p for p in check(bad))
    ub = int(re.search(r"pipe\.InitBuffer\(ubBuf, (\d+)\)", ak.source)[1])
    n = (ub - 8192) // 4 + 8  # 32 bytes too many
    bad = _tampered(ak, "ubBuf.GetWithOffset<float>(128, 8192)",
                    f"ubBuf.GetWithOffset<float>({n}, 8192)")
    assert any(f"ends at {ub + 32}, past the buffer's {ub} bytes" in p for p in check(bad))
    bad = _tampered(ak, "pipe.InitBuffer(l0cBuf, 16384)", "pipe.InitBuffer(l0cBuf, 262144)")
    assert any("exceeds the L0C capacity 131072" in p for p in check(bad))


def test_checker_rejects_a_syncall_kernel_not_sized_to_the_clusters():
    import dataclasses

    ak = _emit(Q.fa_fused, **_QCONSTS["fa_fused_tiny"])
    assert check(ak) == []
    assert any("launches 12 blocks; 24 clusters" in p
               for p in check(dataclasses.replace(ak, static_grid=12)))
    assert any("grid is not a constant" in p
               for p in check(dataclasses.replace(ak, static_grid=None)))


# ---------------------------------------------------------------- the passes it adds

def _sim(kern, pipeline, args, **consts):
    res = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    mt.run_jit(kern, *res, compile_cfg=dict(pipeline=pipeline), **consts)
    return res


@pytest.mark.parametrize("name,kern", examples(), ids=[n for n, _ in examples()])
def test_the_ascendc_pipeline_keeps_the_simulators_results(name, kern, gen):
    """BiasToMmad, the in-place rules and InsertPipeSync change placement and ordering,
    not values: the simulator runs the Ascend C pipeline's IR to the same bits."""
    from mixtile.ir.types import Role

    args = random_args(kern, gen)
    a = _sim(kern, "sim", args)
    b = _sim(kern, "npu", args)
    roles = dict(kern.tensors)
    outs = [i for i, n in enumerate(kern.order)
            if n in roles and roles[n].role in (Role.OUT, Role.INOUT)]
    assert outs
    for i in outs:
        assert torch.equal(a[i], b[i]) and a[i].float().abs().sum() > 0


def _core_sequences(kernel):
    """Each core program as a straight op list, every loop body twice (two trips); the
    guard loop of an unrolled loop (PingPong: zero or one trip) once."""
    def flat(ops):
        out = []
        for op in ops:
            if op.name == "for":
                body = flat(op.regions[0].ops)
                out += body if op.attrs.get("pingpong") == "guard" else body + body
            elif op.name in ("spmd", "core"):
                continue
            else:
                out.append(op)
        return out
    progs = [op.regions[0].ops for op in kernel.walk() if op.name == "core"]
    if not progs:
        progs = [next(op for op in kernel.walk() if op.name == "spmd").regions[0].ops]
    return [flat(p) for p in progs]


def _unordered(kernel, target):
    """An independent check of InsertPipeSync on the unrolled sequence: every two ops on
    different pipes (or both on V) touching one buffer, one of them writing, must have a
    chain of pipe_syncs from the first op's pipe to the second's between them."""
    def bufs(op):
        out = []
        for i, v in enumerate(op.operands + op.results):
            t = v.type
            w = i >= len(op.operands) or (op.name in ("store", "fixpipe") and i == 0)
            d = v.op
            if isinstance(t, TileType) and t.space is not MemSpace.GM and d is not None:
                if d.name == "for":  # a loop result lives at its carried address
                    a = d.attrs["addrs"][d.results.index(v)]
                else:
                    a = d.attrs.get("addr")
                if a is not None:
                    out.append(((t.space, a, a + target.tile_bytes(t)), w))
            elif getattr(t, "shape", None) is not None and not isinstance(t, TileType) \
                    and op.name != "dim":
                out.append((("gm", v.hint), w))
        return out

    def hit(a, b):
        if a[0] == "gm" or b[0] == "gm":
            return a == b
        return a[0] is b[0] and a[1] < b[2] and b[1] < a[2]
    bad = []
    for seq in _core_sequences(kernel):
        for j, op in enumerate(seq):
            pj = op.opdef.pipe_of(op)
            if op.name in ("pipe_sync", "fence", "syncall") or pj is None or pj is Pipe.S:
                continue
            if op.name == "full" and op.results[0].type.space is MemSpace.L0C:
                continue
            for i in range(j - 1, -1, -1):
                prev = seq[i]
                if prev.name in ("fence", "syncall"):
                    break
                pi = prev.opdef.pipe_of(prev)
                if prev.name == "pipe_sync" or pi is None or pi is Pipe.S or \
                        (pi is pj and pj is not Pipe.V):
                    continue
                if prev.name == "full" and prev.results[0].type.space is MemSpace.L0C:
                    continue
                conflict = any(hit(x, y) and (wx or wy) for x, wx in bufs(prev)
                               for y, wy in bufs(op))
                if not conflict:
                    continue
                reach = set()  # pipes whose later ops start after prev completes
                for s in seq[i + 1:j]:
                    if s.name == "pipe_sync" and (s.attrs["src"] is pi or s.attrs["src"] in reach):
                        reach.add(s.attrs["dst"])
                if pj not in reach:
                    bad.append((prev, op))
    return bad


@pytest.mark.parametrize("name,kern,consts", UNITS, ids=[u[0] for u in UNITS])
def test_every_pipe_hazard_is_ordered(name, kern, consts):
    ck = mt.compile(kern, target="npu", **consts)
    assert _unordered(ck.kernel, ck.target) == []


def test_the_hazard_check_catches_each_removed_sync():
    """Every pipe_sync of the mixed GEMM epilogue is needed: drop any one and the
    independent check finds the race it prevented."""
    from mixtile.ir.parser import parse_kernel
    from mixtile.ir.printer import print_kernel

    ck = mt.compile(X.gemm_bias_silu, target="npu")
    text = print_kernel(ck.kernel)
    n = sum(1 for op in ck.kernel.walk() if op.name == "pipe_sync")
    assert n >= 8
    caught = 0
    for idx in range(n):
        k = parse_kernel(text)
        syncs = [op for op in k.walk() if op.name == "pipe_sync"]
        s: Op = syncs[idx]
        s.parent.ops.remove(s)
        caught += bool(_unordered(k, ck.target))
    assert caught == n


def test_qwen3_cli_emits_the_layers_sources(tmp_path):
    from tilelang_models.qwen3.__main__ import main

    assert main(["--config", "tiny", "--batch", "4", "--emit-ascendc", str(tmp_path)]) == 0
    files = sorted(p.name for p in tmp_path.glob("*.cpp"))
    assert files == ["0_rmsnorm_gemm.cpp", "1_fa_fused.cpp", "2_gemm_residual.cpp",
                     "3_rmsnorm_swiglu.cpp", "4_gemm_residual.cpp"]
    assert "SyncAll<false>();" in (tmp_path / "1_fa_fused.cpp").read_text()


def test_the_qwen3_layer_through_the_ascendc_pipeline_matches_bit_for_bit():
    """The whole tiny layer, every kernel lowered by the Ascend C pipeline, on the
    simulator: the same bits as the default pipeline (and the cache writes too)."""
    from tilelang_models.qwen3.config import get_config
    from tilelang_models.qwen3.decode_layer import DecodeLayer
    from tilelang_models.qwen3.paged import make_paged_cache
    from tilelang_models.qwen3.weights import random_weights

    cfg = get_config("tiny")
    w = random_weights(cfg, 3)
    x = torch.randn(3, cfg.hidden_size, generator=torch.Generator().manual_seed(5)).bfloat16()
    outs = []
    for pipeline in ("sim", "npu"):
        k, v, bt, sl = make_paged_cache(cfg, [40, 17, 3], 16, 4)
        layer = DecodeLayer(cfg, w, progress=False, compile_cfg=dict(pipeline=pipeline))
        outs.append((layer(x, k, v, bt, sl), k, v))
    for a, b in zip(*outs):
        assert torch.equal(a, b)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kern=st.sampled_from([G.gemm_bias_relu_bf16, G.gemm_splitk, X.gemm_bias_gelu_erf,
                             X.gemm_swiglu, X.gemm_residual_manual]),
       tm=st.sampled_from([2, 16, 32, 64]), tn=st.sampled_from([16, 64, 128]),
       tk=st.sampled_from([16, 64, 128]))
def test_property_gemm_tiles_emit_sound_sources(kern, tm, tn, tk):
    """Any tile shape: the source passes the structural checks and every pipe hazard is
    ordered (or the tile is refused with a mixtile error, never a crash)."""
    try:
        ck = mt.compile(kern, target="npu", TM=tm, TN=tn, TK=tk)
        ak = ck.ascendc
    except mt.MixtileError:
        return
    assert check(ak) == [] and _unordered(ck.kernel, ck.target) == []


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kern=st.sampled_from([V.rmsnorm, V.softmax, V.silu_mul, A.flash_decode]),
       r=st.sampled_from([1, 2, 7, 8, 16]), c=st.sampled_from([8, 16, 48, 64, 256, 1024]))
def test_property_vector_tiles_emit_sound_sources(kern, r, c):
    consts = {V.rmsnorm: dict(TR=r, TH=c), V.softmax: dict(TR=r, TC=c),
              V.silu_mul: dict(TR=r, TC=c), A.flash_decode: dict(TQ=max(2, r), TS=c)}[kern]
    try:
        ck = mt.compile(kern, target="npu", **consts)
        ak = ck.ascendc
    except mt.MixtileError:
        return
    assert check(ak) == [] and _unordered(ck.kernel, ck.target) == []


def test_a_kernel_with_two_launches_is_refused_with_its_line():
    import test_adversarial as ADV

    with pytest.raises(mt.UnsupportedError) as ei:
        _emit(ADV.two_phase_scale)
    assert "2 spmd launches" in str(ei.value) and ei.value.loc.line > 0
    assert "one kernel per launch" in ei.value.fix


def test_a_row_stride_past_a_16_bit_field_is_refused_before_launch():
    """Nd2NzParams.srcDValue is uint16: a cube load from rows longer than 65535 elements
    would wrap. Static shapes are refused when emitting, symbolic ones at launch."""
    ak = _emit(G.gemm)
    assert ("x", 0, 65535, "Nd2NzParams.srcDValue (uint16)") in ak.stride_limits
    ak.check_launch({"x": (16, 65535), "w": (16, 65535), "y": (16, 16)})
    with pytest.raises(mt.UnsupportedError, match="row stride of 70000 elements"):
        ak.check_launch({"x": (16, 70000), "w": (16, 70000), "y": (16, 16)})

    @mt.kernel
    def wide(x: mt.Tensor[16, 70000, mt.bf16], w: mt.Tensor[16, 70000, mt.bf16],
             y: mt.Out[16, 16, mt.f32]):
        for blk in mt.spmd(1):
            mt.store(y[0:16, 0:16], mt.matmul(mt.load(x[0:16, 0:64]), mt.load(w[0:16, 0:64]),
                                              b_trans=True))

    with pytest.raises(mt.UnsupportedError, match="exceeds Nd2NzParams.srcDValue"):
        mt.compile(wide, target="npu").ascendc  # noqa: B018
