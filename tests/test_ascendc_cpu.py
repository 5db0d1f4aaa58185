"""Emitted Ascend C, executed: each kernel's source is built against a functional CPU
model of the API (tests/ascendc_cpu/kernel_operator.h: one thread per core, real
cross-core flags, SyncAll and atomics, bounds-checked memories) and its outputs are
compared with the simulator's on the same inputs (ragged shapes).

This checks the emitter's index math, tiling, strides, layouts as mixtile reads the
documentation, the ring protocol (a deadlock or a flag counter past 15 aborts) and the
numerics; it does not check the hardware's behaviour (no NPU here).
"""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_args

import mixtile as mt
from mixtile.ir.types import Role, TensorType
from mixtile.runtime.jit import TORCH_DTYPE, check_args
from tilelang_models.kernels import attention as A
from tilelang_models.kernels import examples
from tilelang_models.kernels import gemm as G
from tilelang_models.kernels import mixed as X
from tilelang_models.kernels import vector as V
from tilelang_models.qwen3 import kernels as Q

CPU_DIR = Path(__file__).resolve().parent / "ascendc_cpu"
GXX = shutil.which("g++")
pytestmark = pytest.mark.skipif(GXX is None, reason="g++ is not installed")
_TYPE = {"KERNEL_TYPE_AIV_ONLY": 0, "KERNEL_TYPE_AIC_ONLY": 1, "KERNEL_TYPE_MIX_AIV_1_0": 2,
         "KERNEL_TYPE_MIX_AIC_1_0": 3, "KERNEL_TYPE_MIX_AIC_1_2": 5}
FFTS_ADDR = "0x12345000ULL"  # a stand-in for aclrtGetHardwareSyncAddr's address


def _driver(ak, n_bufs: int) -> str:
    args = ", ".join([FFTS_ADDR] * ak.sync_base + [f"bufs[{i}].data()" for i in range(n_bufs)])
    return f"""#include "kernel.cpp"
#include <fstream>
#include <iterator>
#include <string>

int main(int argc, char** argv)
{{
    // argv: kernel type, blocks, the part's cube cores, then one file per GM argument
    // (the tiling last)
    const int type = std::stoi(argv[1]);
    const long long blocks = std::stoll(argv[2]);
    const long long cores = std::stoll(argv[3]);
    std::vector<std::vector<uint8_t>> bufs;
    for (int i = 4; i < argc; ++i) {{
        std::ifstream f(argv[i], std::ios::binary);
        bufs.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
        uint8_t* lo = bufs.back().data();
        mixtile_cpu::gm_regions().push_back({{lo, lo + bufs.back().size()}});
    }}
    mixtile_cpu::run(type, blocks, [&] {{ {ak.name}({args}); }}, cores);
    for (int i = 4; i < argc; ++i) {{
        std::ofstream f(argv[i], std::ios::binary);
        f.write(reinterpret_cast<const char*>(bufs[i - 4].data()), bufs[i - 4].size());
    }}
    return 0;
}}
"""


def _to_bytes(t: torch.Tensor) -> bytes:
    if t.dtype in (torch.bfloat16, torch.float16):
        return t.contiguous().view(torch.int16).numpy().tobytes()
    return t.contiguous().numpy().tobytes()


def _from_bytes(b: bytes, like: torch.Tensor) -> torch.Tensor:
    if like.dtype in (torch.bfloat16, torch.float16):
        raw = torch.from_numpy(np.frombuffer(b, np.int16).copy())
        return raw.view(like.dtype).reshape(like.shape)
    npdt = {torch.float32: np.float32, torch.int32: np.int32, torch.int64: np.int64}[like.dtype]
    return torch.from_numpy(np.frombuffer(b, npdt).copy()).reshape(like.shape)


def run_cpu(kern, args: list, tmp: Path, edit=None, arch="a2", cores: int = 24,
            launch_type: str | None = None, **consts) -> list:
    """Run `kern` through the emitted Ascend C on the CPU model; returns new tensors.
    `edit(source) -> source` tampers with the source first (tests of the model); `cores`
    is the part's cube core count; `launch_type` launches as another kernel type (as a
    build for the wrong cores would)."""
    tmp.mkdir(parents=True, exist_ok=True)
    ck = mt.compile(kern, dict(arch=arch), target="npu", **consts)
    ak = ck.ascendc
    dims = check_args(kern, tuple(args))
    by_name = dict(zip(kern.order, args))
    shapes, scalars, tensors = {}, {}, []
    for p in ck.kernel.params:
        t = p.value.type
        if not isinstance(t, TensorType):
            scalars[p.name] = by_name[p.name]
            continue
        if p.role is Role.SCRATCH:
            a = torch.zeros([d if isinstance(d, int) else dims[d] for d in t.shape],
                            dtype=TORCH_DTYPE[t.dtype])
        else:
            a = by_name[p.name].clone()
        shapes[p.name] = tuple(a.shape)
        tensors.append((p.name, a))
    ak.check_launch(shapes)  # what the host checks before a launch
    tiling = ak.tiling_values(shapes, scalars)
    src = tmp / "kernel.cpp"
    src.write_text(edit(ak.source) if edit else ak.source)
    (tmp / "main.cpp").write_text(_driver(ak, len(tensors) + 1))
    exe = tmp / "main"
    r = subprocess.run([GXX, "-std=c++17", "-O1", "-pthread", "-I", str(CPU_DIR), "-o",
                        str(exe), str(tmp / "main.cpp")], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    files = []
    for i, (_, a) in enumerate(tensors):
        f = tmp / f"arg{i}.bin"
        f.write_bytes(_to_bytes(a))
        files.append(str(f))
    tf = tmp / "tiling.bin"
    tf.write_bytes(tiling.tobytes())
    files.append(str(tf))
    blocks = ak.block_dim(shapes, scalars)
    ktype = _TYPE[launch_type or ak.kernel_type]
    r = subprocess.run([str(exe), str(ktype), str(blocks), str(cores), *files],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"{ak.name}: {r.stderr[-2000:]}")
    got = {n: _from_bytes(Path(f).read_bytes(), a)
           for (n, a), f in zip(tensors, files)}
    return [got.get(n, a) for n, a in zip(kern.order, args)]


def _compare(kern, args, tmp, rtol=2e-2, arch="a2", **consts):
    sim = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    mt.run_jit(kern, *sim, compile_cfg=dict(arch=arch), **consts)
    cpu = run_cpu(kern, args, tmp, arch=arch, **consts)
    roles = dict(kern.tensors)
    n_out = 0
    for name, s, c in zip(kern.order, sim, cpu):
        spec = roles.get(name)
        if spec is None or spec.role not in (Role.OUT, Role.INOUT):
            continue
        n_out += 1
        s, c = s.float(), c.float()
        assert torch.isfinite(c).all(), f"{name}: non-finite values from the emitted code"
        scale = max(float(s.abs().max()), 1e-6)
        err = float((s - c).abs().max())
        assert err <= rtol * scale, f"{kern.name}.{name}: max |sim - ascendc| = {err} ({scale})"
    assert n_out


def _t(*shape, gen, scale=1.0, dtype=torch.bfloat16):
    return (torch.randn(*shape, generator=gen) * scale).to(dtype)


@pytest.mark.parametrize("kern", [G.gemm_bias_relu_bf16, G.gemm_cast_f16])
def test_cube_gemm_with_fused_epilogue(kern, gen, tmp_path):
    m, n, k = 100, 300, 200  # ragged against 64 x 128 x 128 tiles
    x, w = _t(m, k, gen=gen), _t(n, k, gen=gen, scale=0.07)
    args = [x, w, torch.randn(n, generator=gen)]
    out_dt = torch.bfloat16 if kern is G.gemm_bias_relu_bf16 else torch.float16
    _compare(kern, args + [torch.zeros(m, n, dtype=out_dt)], tmp_path)


def test_split_k_gemm_with_atomic_adds(gen, tmp_path):
    m, n, k = 40, 130, 300
    x, w = _t(m, k, gen=gen), _t(n, k, gen=gen, scale=0.07)
    _compare(G.gemm_splitk, [x, w, torch.zeros(m, n)], tmp_path, rtol=1e-3)


@pytest.mark.parametrize("kern", [X.gemm_bias_silu, X.gemm_bias_gelu_erf, X.gemm_swiglu])
def test_mixed_gemm_with_a_vector_epilogue_through_the_gm_ring(kern, gen, tmp_path):
    m, n, k = 70, 200, 150
    x = _t(m, k, gen=gen)
    if kern is X.gemm_swiglu:
        args = [x, _t(2 * n, k, gen=gen, scale=0.07), torch.zeros(m, n, dtype=torch.bfloat16)]
    else:
        args = [x, _t(n, k, gen=gen, scale=0.07), torch.randn(n, generator=gen),
                torch.zeros(m, n, dtype=torch.bfloat16)]
    _compare(kern, args, tmp_path)


@pytest.mark.parametrize("kern", [V.rmsnorm, V.softmax])
def test_vector_kernels(kern, gen, tmp_path):
    r, c = 13, 200
    if kern is V.rmsnorm:
        args = [_t(r, c, gen=gen), _t(c, gen=gen), torch.zeros(r, c, dtype=torch.bfloat16), 1e-6]
    else:
        args = [torch.randn(r, c, generator=gen), torch.zeros(r, c)]
    _compare(kern, args, tmp_path, rtol=1e-2)


def test_flash_decode_attention(gen, tmp_path):
    g, s, d = 5, 300, 128
    q, k, v = _t(g, d, gen=gen), _t(s, d, gen=gen), _t(s, d, gen=gen)
    _compare(A.flash_decode, [q, k, v, torch.zeros(g, d)], tmp_path)


def test_qwen3_rmsnorm_gemm_vector_to_cube_ring(gen, tmp_path):
    b, h, n = 5, 300, 200
    args = [_t(b, h, gen=gen), _t(h, gen=gen), _t(n, h, gen=gen, scale=0.07),
            torch.zeros(b, n, dtype=torch.bfloat16), 1e-6]
    _compare(Q.rmsnorm_gemm, args, tmp_path, TM=16, TN=128, TK=256)


@pytest.mark.parametrize("kern", [X.gemm_residual, X.gemm_bias_silu_manual,
                                  X.gemm_swiglu_manual])
def test_more_mixed_epilogues(kern, gen, tmp_path):
    m, n, k = 45, 130, 140
    x = _t(m, k, gen=gen)
    if kern is X.gemm_swiglu_manual:
        args = [x, _t(2 * n, k, gen=gen, scale=0.07), torch.zeros(m, n, dtype=torch.bfloat16)]
    elif kern is X.gemm_residual:
        args = [x, _t(n, k, gen=gen, scale=0.07), _t(m, n, gen=gen),
                torch.zeros(m, n, dtype=torch.bfloat16)]
    else:
        args = [x, _t(n, k, gen=gen, scale=0.07), torch.randn(n, generator=gen),
                torch.zeros(m, n, dtype=torch.bfloat16)]
    _compare(kern, args, tmp_path)


@pytest.mark.parametrize("arch", ["a2", "a5"])
def test_qwen3_fused_attention_with_syncall_and_a_paged_cache(arch, tmp_path):
    """fa_fused: q/k norm + RoPE, split-KV over a paged cache, cache write, merge; two
    phases separated by a hard SyncAll over all the clusters (24 on a2, 18 on a5); with
    one split, one phase."""
    from tilelang_models.qwen3.config import get_config
    from tilelang_models.qwen3.paged import make_paged_cache

    cfg = get_config("tiny")
    lens = [40, 17, 3]
    k, v, bt, sl = make_paged_cache(cfg, lens, 16, 4)
    gen = torch.Generator().manual_seed(9)
    nh = cfg.num_attention_heads + 2 * cfg.num_key_value_heads
    qkv = _t(len(lens), nh, cfg.head_dim, gen=gen)
    args = [qkv, _t(cfg.head_dim, gen=gen), _t(cfg.head_dim, gen=gen), k, v, bt, sl,
            torch.zeros(len(lens), cfg.num_attention_heads, cfg.head_dim, dtype=torch.bfloat16)]
    consts = dict(HQ=cfg.num_attention_heads, KVH=cfg.num_key_value_heads, D=cfg.head_dim,
                  BS=16)
    _compare(Q.fa_fused, args, tmp_path, arch=arch, NSPLIT=6, **consts)
    args[3], args[4] = make_paged_cache(cfg, lens, 16, 4)[:2]  # one split: no phase 2
    _compare(Q.fa_fused, args, tmp_path, arch=arch, NSPLIT=1, **consts)


def test_qwen3_rmsnorm_swiglu_and_gemm_residual(gen, tmp_path):
    b, h, i = 5, 300, 130
    args = [_t(b, h, gen=gen), _t(h, gen=gen), _t(i, h, gen=gen, scale=0.07),
            _t(i, h, gen=gen, scale=0.07), torch.zeros(b, i, dtype=torch.bfloat16), 1e-6]
    _compare(Q.rmsnorm_swiglu, args, tmp_path, TM=16, TN=128, TK=256)
    args = [_t(b, h, gen=gen), _t(i, h, gen=gen, scale=0.07), _t(b, i, gen=gen),
            torch.zeros(b, i, dtype=torch.bfloat16)]
    _compare(Q.gemm_residual, args, tmp_path, TM=16, TN=128, TK=128)


def test_the_model_catches_a_missing_cross_core_wait(gen, tmp_path):
    """Drop the AIV's wait for READY: the AIC's sets pile up on the AIV counters and the
    model stops the kernel (past 15 sets a chip freezes; a leftover count is a bug)."""
    m, n, k = 300, 400, 64  # 10 x 4 output blocks over 24 clusters: several per cluster
    args = [_t(m, k, gen=gen), _t(n, k, gen=gen, scale=0.07), torch.randn(n, generator=gen),
            torch.zeros(m, n, dtype=torch.bfloat16)]
    with pytest.raises(RuntimeError, match="flag counter"):
        run_cpu(X.gemm_bias_silu, args, tmp_path,
                edit=lambda src: src.replace("CrossCoreWaitFlag(0);", ""))


def test_the_model_catches_an_on_chip_overflow(gen, tmp_path):
    """A tile moved past its TBuf (an emitter bug the structural checks also flag)."""
    args = [torch.randn(13, 200, generator=gen), torch.zeros(13, 200)]
    with pytest.raises(RuntimeError, match="past the buffer"):
        run_cpu(V.softmax, args, tmp_path,
                edit=lambda src: src.replace("GetWithOffset<float>(2048, 0)",
                                             "GetWithOffset<float>(2048, 12288)", 1))


@pytest.mark.parametrize("name,kern", examples(), ids=[n for n, _ in examples()])
def test_every_example_runs_like_the_simulator(name, kern, gen, tmp_path):
    _compare(kern, random_args(kern, gen), tmp_path)


def test_parameter_names_that_meet_cpp_or_generated_names(gen, tmp_path):
    """Parameters called like C++ keywords or like the emitter's own names still work."""
    @mt.kernel
    def clash(pipe: mt.Tensor["R", "C", mt.f32], v1: mt.Tensor["C", mt.f32],
              r: mt.Out["R", "C", mt.f32], tiling: mt.Scalar[mt.f32], TR: mt.const = 8):
        for blk in mt.spmd(mt.cdiv(pipe.shape[0], TR)):
            r0 = blk * TR
            t = mt.load(pipe[r0:r0 + TR, 0:64]) * mt.load(v1[0:64]) + tiling
            mt.store(r[r0:r0 + TR, 0:64], t)

    src = mt.compile(clash, target="npu").code
    assert "GM_ADDR pipe_, GM_ADDR v1_, GM_ADDR r_, GM_ADDR tiling)" in src
    args = [torch.randn(10, 64, generator=gen), torch.randn(64, generator=gen),
            torch.zeros(10, 64), 0.5]
    _compare(clash, args, tmp_path, rtol=1e-5)


def _elementwise_kernel(fn, name):
    @mt.kernel
    def k(x: mt.Tensor["R", "C", mt.f32], z: mt.Tensor["R", "C", mt.f32],
          y: mt.Out["R", "C", mt.f32], TR: mt.const = 8, TC: mt.const = 64):
        R = x.shape[0]
        for blk in mt.spmd(mt.cdiv(R, TR)):
            r0 = blk * TR
            a, b = mt.load(x[r0:r0 + TR, 0:TC]), mt.load(z[r0:r0 + TR, 0:TC])
            mt.store(y[r0:r0 + TR, 0:TC], fn(a, b))
    k.name = name  # names like exp or div: the entry symbol must not clash with libc
    return k


VECTOR_OPS = {
    "abs": lambda a, b: mt.abs(a) + b, "neg": lambda a, b: mt.neg(a),
    "log": lambda a, b: mt.log(mt.abs(a) + 1.0), "sqrt": lambda a, b: mt.sqrt(mt.abs(a)),
    "recip": lambda a, b: mt.reciprocal(mt.abs(a) + 1.0), "sigmoid": lambda a, b: mt.sigmoid(a),
    "tanh": lambda a, b: mt.tanh(a), "sin": lambda a, b: mt.sin(a), "cos": lambda a, b: mt.cos(a),
    "exp": lambda a, b: mt.exp(a - 3.0), "gelu": lambda a, b: mt.gelu(a),
    "div": lambda a, b: a / (mt.abs(b) + 1.0), "max": lambda a, b: mt.maximum(a, b),
    "scalar_minus": lambda a, b: 1.0 - a, "scalar_over": lambda a, b: 2.0 / (mt.abs(a) + 1.0),
    "where": lambda a, b: mt.where(a < b, a, b), "softplus": lambda a, b: mt.softplus(a * 30.0),
    "where_scalar": lambda a, b: mt.where(a > 0.0, a, 0.0),
    "col_sum": lambda a, b: a - mt.col_sum(a), "col_max": lambda a, b: a - mt.col_max(a),
    "row_min": lambda a, b: a - mt.row_min(a), "row_scale": lambda a, b: a * mt.row_max(b),
    "bcast": lambda a, b: mt.broadcast_to(mt.row_sum(a), (8, 64)) + mt.col_sum(b),
    "casts": lambda a, b: ((a * 10.0).astype(mt.i32).astype(mt.f32)
                           + a.astype(mt.bf16).astype(mt.f32)),
}


@pytest.mark.parametrize("name", sorted(VECTOR_OPS))
def test_vector_ops_run_like_the_simulator(name, gen, tmp_path):
    k = _elementwise_kernel(VECTOR_OPS[name], name)
    args = [torch.randn(13, 64, generator=gen), torch.randn(13, 64, generator=gen),
            torch.zeros(13, 64)]
    _compare(k, args, tmp_path, rtol=1e-3)


def test_kernels_from_the_other_suites_run_like_the_simulator(gen, tmp_path):
    """Odd kernels of the simulator's adversarial suite and the language tests: a carried
    index scalar through nested loops, where with a scalar first, integer index math,
    gathers by GM indices, segment means, static-row GEMMs, LEFT_RIGHT lane splits."""
    import test_adversarial as ADV
    import test_checks as CHK
    import test_language as LANG
    import test_mixed as MIX

    i32 = dict(dtype=torch.int32)
    cases = [
        (ADV.tri_count, [torch.randn(6, generator=gen), torch.zeros(2), 6], {}),
        (ADV.where_mix, [torch.randn(37, generator=gen), torch.zeros(37)], {}),
        (ADV.int_table, [torch.tensor([-7, 0, 5, -1, 13, -128], **i32),
                         torch.zeros(6, 6, **i32)], {}),
        (ADV.seg_mean, [torch.randn(20, 45, generator=gen), torch.tensor([0, 3, 6, 2, 19], **i32),
                        torch.tensor([3, 5, 6, 20, 19], **i32), torch.zeros(5, 45)], {}),
        (ADV.colsum_nested, [torch.randn(9, 17, generator=gen), torch.zeros(17),
                             torch.zeros(1)], {}),
        (ADV.gemm_static_rows, [_t(3, 70, gen=gen), _t(50, 70, gen=gen), torch.zeros(3, 50)], {}),
        (ADV.gemm_varlen, [_t(3, 20, 100, gen=gen), _t(40, 100, gen=gen, scale=0.1),
                           torch.tensor([100, 33, 1], **i32), torch.randn(40, generator=gen),
                           torch.zeros(3, 20, 40, dtype=torch.bfloat16)], {}),
        (CHK.gather, [torch.randn(10, 32, generator=gen), torch.tensor([3, 0, 9, 3], **i32),
                      torch.zeros(4, 32)], {}),
        (LANG.gather_rows_sum, [torch.randn(10, 64, generator=gen),
                                torch.tensor([3, 0, 9, 3], **i32),
                                torch.tensor([2, 5, 1, 7], **i32), torch.zeros(4, 64)], {}),
        (LANG.online_max_sum, [torch.randn(9, 100, generator=gen), torch.zeros(9, 2)], {}),
        (LANG.ops_zoo, [torch.randn(9, 40, generator=gen), torch.zeros(7, 9, 40)], {}),
        (MIX.gemm_bias_silu_lr, [_t(37, 70, gen=gen), _t(50, 70, gen=gen, scale=0.1),
                                 torch.randn(50, generator=gen),
                                 torch.zeros(37, 50, dtype=torch.bfloat16)], {}),
    ]
    failures = []
    for kern, args, consts in cases:
        try:
            _compare(kern, args, tmp_path, rtol=2e-2, **consts)
        except mt.MixtileError as e:  # a kernel the backend refuses, with a reason
            failures.append(f"{kern.name}: refused: {str(e).splitlines()[0]}")
        except (AssertionError, RuntimeError) as e:
            failures.append(f"{kern.name}: {str(e)[:300]}")
    assert not failures, "\n".join(failures)


def test_load_rows_in_a_lane_split_mixed_kernel(gen, tmp_path):
    """mt.load(rows=n) on the vector side of a mixed kernel whose 5 rows are split 3 / 2
    between the lanes (the lanes' limit and rows= meet): like the simulator."""
    from conftest import mixed_rows

    for n in (0, 2, 4):
        args = [_t(5, 32, gen=gen).half(), _t(40, 32, gen=gen).half(), _t(5, 40, gen=gen)
                .float(), n, torch.zeros(5, 40)]
        _compare(mixed_rows, args, tmp_path)


# ------------------------------------------------------------------ what real Ascend C
# setup needs (docs/ascendc.md, "Launch setup"): each fault reintroduced is caught

def _gemm_args(gen, m=100, n=200, k=300):
    return [_t(m, k, gen=gen), _t(n, k, gen=gen, scale=0.07), torch.zeros(m, n)]


def test_the_model_catches_an_event_id_clash_with_a_live_tpipe(gen, tmp_path):
    """The TPipe sets M_MTE1 0-2 on the AIC; the emitted cube code destroys it before
    its own SetFlag<M_MTE1>(EVENT_ID0)."""
    with pytest.raises(RuntimeError, match="SetFlag twice without a WaitFlag"):
        run_cpu(G.gemm, _gemm_args(gen), tmp_path,
                edit=lambda src: src.replace("pipe.Destroy();", ""))


def test_the_model_catches_a_missing_sync_base_address(gen, tmp_path):
    m, n, k = 100, 200, 64
    args = [_t(m, k, gen=gen), _t(n, k, gen=gen, scale=0.07), torch.randn(n, generator=gen),
            torch.zeros(m, n, dtype=torch.bfloat16)]
    with pytest.raises(RuntimeError, match="before AscendC::SetSyncBaseAddr"):
        run_cpu(X.gemm_bias_silu, args, tmp_path,
                edit=lambda src: src.replace("SetSyncBaseAddr(fftsAddr);", ""))


def test_a_cube_only_kernel_is_guarded_against_a_build_for_both_core_types(gen, tmp_path):
    """Built for dav-c220 (both core types) instead of dav-c220-cube, a cube-only kernel
    runs on the AIVs too: its ASCEND_IS_AIC guard keeps them out; without it they issue
    cube instructions."""
    args = _gemm_args(gen)
    want = [a.clone() for a in args]
    mt.run_jit(G.gemm, *want)
    got = run_cpu(G.gemm, args, tmp_path, launch_type="KERNEL_TYPE_MIX_AIC_1_2")
    assert torch.allclose(got[2], want[2], rtol=2e-2, atol=2e-2)
    with pytest.raises(RuntimeError, match="cube instruction\\) on an AIV core"):
        run_cpu(G.gemm, args, tmp_path, launch_type="KERNEL_TYPE_MIX_AIC_1_2",
                edit=lambda src: src.replace("if ASCEND_IS_AIC {", "if (true) {"))


@mt.kernel
def _vector_syncall(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32], T: mt.const = 64):
    P = mt.target().aiv_count
    for blk in mt.spmd(P):
        for i in mt.range(blk, mt.cdiv(x.shape[0], T), P):
            mt.store(y[i * T:i * T + T], mt.load(x[i * T:i * T + T]) * 2.0)
        mt.fence()
        mt.syncall(core_type=mt.CoreType.AIV)
        for i in mt.range(blk, mt.cdiv(x.shape[0], T), P):
            mt.store(y[i * T:i * T + T], mt.load(y[i * T:i * T + T]) + 1.0)


def test_a_vector_kernel_with_syncall_declares_mix_aiv_1_0(gen, tmp_path):
    """The SyncAll docs: a one-unit kernel using it is MIX_AIV_1_0 / MIX_AIC_1_0; the
    model refuses SyncAll in an AIV_ONLY launch."""
    assert mt.compile(_vector_syncall, target="npu").ascendc.kernel_type == \
        "KERNEL_TYPE_MIX_AIV_1_0"
    args = [torch.randn(1000, generator=gen), torch.zeros(1000)]
    _compare(_vector_syncall, args, tmp_path)
    with pytest.raises(RuntimeError, match="SyncAll in an AIV_ONLY"):
        run_cpu(_vector_syncall, args, tmp_path, launch_type="KERNEL_TYPE_AIV_ONLY")


def test_the_model_catches_a_syncall_grid_larger_than_the_part(gen, tmp_path):
    """A kernel compiled for 24 clusters with a hard SyncAll hangs on a 20-core 910B: the
    launch runs in rounds. The runtime compiles for the device's core count instead."""
    args = [torch.randn(1000, generator=gen), torch.zeros(1000)]
    with pytest.raises(RuntimeError, match="more blocks than the part has cores"):
        run_cpu(_vector_syncall, args, tmp_path, cores=20)


@pytest.mark.parametrize("fault,edit,match", [
    ("L0A tile off 512 B", ("l0aBuf.GetWithOffset<bfloat16_t>(8192, 0)",
                            "l0aBuf.GetWithOffset<bfloat16_t>(8192, 256)"), "alignment"),
    ("LoadData repeat 256", ("LoadData2DParams(0, 8, 4,", "LoadData2DParams(0, 256, 4,"),
     "repeatTimes outside 1..255"),
    ("Nd2Nz stride past uint16", ("x_s0, 64, 1, 0)", "x_s0 + 65536, 64, 1, 0)"),
     "outside uint16"),
    ("Fixpipe rows past 8192", ("fp", None), "mSize"),
])
def test_the_model_catches_layout_limits(fault, edit, match, gen, tmp_path):
    old, new = edit

    def tamper(src):
        if new is None:  # the Fixpipe's mSize: the first `.mSize = ...;` assignment
            import re
            return re.sub(r"(\.mSize = )[^;]+;", r"\g<1>9000;", src, count=1)
        assert old in src, old
        return src.replace(old, new, 1)
    with pytest.raises(RuntimeError, match=match):
        run_cpu(G.gemm, _gemm_args(gen), tmp_path, edit=tamper)


@pytest.mark.parametrize("tm,tn,lr", [(32, 64, 0), (17, 64, 0), (32, 64, 1)])
def test_arange_causal_mask_runs_like_the_simulator(tm, tn, lr, gen, tmp_path):
    from test_mixed import CAUSAL

    args = [torch.randn(70, 64, generator=gen).half(), torch.randn(100, 64, generator=gen).half(),
            torch.zeros(70, 100)]
    sim = [a.clone() for a in args]
    mt.run_jit(CAUSAL, *sim, TM=tm, TN=tn, LR=lr)
    got = run_cpu(CAUSAL, args, tmp_path, TM=tm, TN=tn, LR=lr)[2]
    masked = torch.isinf(sim[2])  # -inf above the diagonal
    assert masked.any() and torch.equal(torch.isinf(got), masked)
    assert torch.allclose(got[~masked], sim[2][~masked], rtol=1e-3, atol=1e-3)
