"""The Triton backend. Without a GPU the generated kernels run in Triton's CPU interpreter
(TRITON_INTERPRET=1) with fp16/fp32 operands (its bf16 tl.dot is wrong); with a GPU the
same tests run on it, plus the bf16 ones marked `gpu`."""
import inspect
import math
import os

import pytest
import torch

HAS_GPU = torch.cuda.is_available()
if not HAS_GPU:  # before Triton is imported: it reads the switch then
    os.environ["TRITON_INTERPRET"] = "1"
triton = pytest.importorskip("triton")

from conftest import mixed_rows, random_args  # noqa: E402
from qwen3_gpu_cases import qwen3_cases  # noqa: E402

import mixtile as mt  # noqa: E402
from tilelang_models.kernels import attention as A  # noqa: E402
from tilelang_models.kernels import examples  # noqa: E402
from tilelang_models.kernels import gemm as G  # noqa: E402
from tilelang_models.kernels import mixed as X  # noqa: E402
from tilelang_models.kernels import vector as V  # noqa: E402

DEV = "cuda" if HAS_GPU else "cpu"
F = torch.nn.functional
gpu = pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU")


def _as(kern, dtype: str = "f16"):
    """The example kernel with its bf16 tensors declared as `dtype` (the interpreter's bf16
    dot is wrong; on a GPU the bf16 originals are tested too)."""
    src = inspect.getsource(kern.fn).replace("mt.bf16", f"mt.{dtype}")
    lines = [ln for ln in src.splitlines() if not ln.strip().startswith("@mt.kernel")]
    ns = dict(vars(inspect.getmodule(kern.fn)))
    new = getattr(mt, dtype)
    for name, cell in zip(kern.fn.__code__.co_freevars, kern.fn.__closure__ or ()):
        ns[name] = new if cell.cell_contents is mt.bf16 else cell.cell_contents
    exec(compile("\n".join(ln[_indent(lines):] for ln in lines), "<variant>", "exec"), ns)
    return mt.kernel(ns[kern.fn.__name__])


def _indent(lines):
    return min(len(ln) - len(ln.lstrip()) for ln in lines if ln.strip())


def _t(*shape, dtype=torch.float32, scale=1.0, gen=None):
    return (torch.randn(*shape, generator=gen) * scale).to(dtype).to(DEV)


def _run(kern, *args, golden, **kw):
    res = mt.run_jit(kern, *args, target="cuda", golden=golden, **kw)
    assert res.passed, str(res)
    return res


@mt.kernel
def _softplus(x: mt.Tensor["R", "C", mt.f32], y: mt.Out["R", "C", mt.f32],
              TR: mt.const = 8, TC: mt.const = 64):
    for blk in mt.spmd(mt.cdiv(x.shape[0], TR)):
        for c0 in mt.range(0, x.shape[1], TC):
            t = mt.load(x[blk * TR:blk * TR + TR, c0:c0 + TC])
            mt.store(y[blk * TR:blk * TR + TR, c0:c0 + TC], mt.softplus(t))


def test_softplus_on_the_simulator_and_triton_against_torch():
    x = _t(13, 100, scale=30)  # |x| up to ~100: the overflow-free form is needed
    for target in ("sim", "cuda"):
        res = mt.run_jit(_softplus, x.cpu() if target == "sim" else x,
                         torch.empty_like(x.cpu() if target == "sim" else x), target=target,
                         golden=lambda x, y: torch.nn.functional.softplus(x))
        assert res.passed, str(res)


@pytest.mark.parametrize("r,c", [(10, 200), (3, 256), (33, 7)])
def test_softmax(r, c):
    _run(V.softmax, _t(r, c, scale=3), _t(r, c), golden=lambda x, y: torch.softmax(x, -1))


@pytest.mark.parametrize("r,h", [(5, 100), (17, 256)])
def test_rmsnorm_f16(r, h):
    k = _as(V.rmsnorm)
    x, w = _t(r, h, dtype=torch.float16), _t(h, dtype=torch.float16)
    y = torch.empty(r, h, dtype=torch.float16, device=DEV)

    def ref(x, w, y, eps):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w.float()).half()

    _run(k, x, w, y, 1e-6, golden=ref, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("m,n,k", [(64, 128, 128), (100, 300, 200), (1, 17, 33)])
def test_gemm_epilogues_f16(m, n, k):
    x, w = _t(m, k, dtype=torch.float16), _t(n, k, dtype=torch.float16, scale=k ** -0.5)
    b = _t(n)
    mm = lambda x, w: x.float() @ w.float().T  # noqa: E731
    y = torch.empty(m, n, device=DEV)
    _run(_as(G.gemm), x, w, y, golden=lambda x, w, y: mm(x, w), rtol=1e-3, atol=1e-3)
    y16 = torch.empty(m, n, dtype=torch.float16, device=DEV)
    _run(_as(G.gemm_bias_relu_bf16), x, w, b, y16,
         golden=lambda x, w, b, y: torch.relu(mm(x, w) + b).half(), rtol=2e-3, atol=2e-3)


def test_gemm_splitk_atomic_f16():
    x, w = _t(37, 300, dtype=torch.float16), _t(70, 300, dtype=torch.float16, scale=0.05)
    y = _t(37, 70)
    _run(_as(G.gemm_splitk), x, w, y, SPLIT=3, golden=lambda x, w, y: y + x.float() @
         w.float().T, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name,act", [("gemm_bias_silu", F.silu),
                                      ("gemm_bias_gelu_erf", F.gelu),
                                      ("gemm_bias_gelu_tanh_manual",
                                       lambda h: F.gelu(h, approximate="tanh"))])
def test_mixed_epilogues_f16(name, act):
    x, w, b = _t(100, 200, dtype=torch.float16), _t(300, 200, dtype=torch.float16,
                                                    scale=0.07), _t(300)
    y = torch.empty(100, 300, dtype=torch.float16, device=DEV)
    _run(_as(getattr(X, name)), x, w, b, y,
         golden=lambda x, w, b, y: act(x.float() @ w.float().T + b).half(), rtol=3e-3,
         atol=3e-3)


def test_swiglu_f16():
    x, w = _t(37, 90, dtype=torch.float16), _t(200, 90, dtype=torch.float16, scale=0.1)
    y = torch.empty(37, 100, dtype=torch.float16, device=DEV)

    def ref(x, w, y):
        h = x.float() @ w.float().T
        return (F.silu(h[:, :100]) * h[:, 100:]).half()

    _run(_as(X.gemm_swiglu), x, w, y, golden=ref, rtol=3e-3, atol=3e-3)


@pytest.mark.parametrize("g,s", [(5, 1000), (8, 64), (7, 17)])
def test_flash_decode_f16(g, s):
    q, k, v = (_t(g, 128, dtype=torch.float16), _t(s, 128, dtype=torch.float16),
               _t(s, 128, dtype=torch.float16))
    out = torch.empty(g, 128, device=DEV)
    ref = lambda q, k, v, o: torch.softmax(q.float() @ k.float().T / math.sqrt(128), -1) \
        @ v.float()  # noqa: E731
    _run(_as(A.flash_decode), q, k, v, out, golden=ref, rtol=1e-2, atol=1e-2)


def test_generated_source_is_viewable_and_cached(tmp_path):
    ck = mt.compile(V.softmax, target="cuda")
    assert "@triton.jit" in ck.code and "tl.program_id(0)" in ck.code
    x, y = _t(4, 20), _t(4, 20)
    cfg = dict(cache_dir=str(tmp_path))
    mt.run_jit(V.softmax, x, y, target="cuda", compile_cfg=cfg)
    files = list(tmp_path.glob("mt_triton_*.py"))
    assert len(files) == 1 and "@triton.jit" in files[0].read_text()


def test_bad_device_for_cuda_target():
    other = "cuda" if DEV == "cpu" else "cpu"
    if other == "cuda" and not torch.cuda.is_available():
        x = torch.empty(4, 8, device="meta")
    else:
        x = torch.empty(4, 8, device=other)
    with pytest.raises(mt.ArgumentError, match="target 'cuda' needs"):
        mt.run_jit(V.softmax, x, x, target="cuda")


@gpu
@pytest.mark.parametrize("m,n,k", [(64, 256, 128), (100, 300, 200)])
def test_bf16_mixed_epilogue_on_gpu(m, n, k):
    x, w, b = _t(m, k, dtype=torch.bfloat16), _t(n, k, dtype=torch.bfloat16, scale=0.07), _t(n)
    y = torch.empty(m, n, dtype=torch.bfloat16, device=DEV)
    _run(X.gemm_bias_silu, x, w, b, y,
         golden=lambda x, w, b, y: F.silu(x.float() @ w.float().T + b).bfloat16())


EXAMPLES = examples()  # (name, kernel) of every example kernel


@pytest.mark.parametrize("name,kern", EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_every_example_agrees_between_simulator_and_triton(name, kern):
    """The same kernel source on the simulator and through Triton gives the same outputs
    (fp16 stands in for bf16 where the interpreter needs it)."""
    kern = _as(kern) if not HAS_GPU else kern
    gen = torch.Generator().manual_seed(7)
    _sim_vs_triton(name, kern, random_args(kern, gen, out=torch.empty), {}, {})


def _sim_vs_triton(name, kern, args, sim_consts, dev_consts):
    """Run kern on the simulator and through Triton on copies of args; every Out/InOut
    tensor must agree (2e-2 of its scale in fp16/bf16, 1e-3 in fp32). Returns the
    simulator's copies."""
    from mixtile.ir.types import Role

    sim = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    dev = [a.clone().to(DEV) if isinstance(a, torch.Tensor) else a for a in args]
    mt.run_jit(kern, *sim, target="sim", **sim_consts)
    mt.run_jit(kern, *dev, target="cuda", **dev_consts)
    roles = dict(kern.tensors)
    for i, pname in enumerate(kern.order):
        spec = roles.get(pname)
        if spec is None or spec.role not in (Role.OUT, Role.INOUT):
            continue
        a, b = sim[i].float(), dev[i].float().cpu()
        tol = 2e-2 if sim[i].dtype in (torch.float16, torch.bfloat16) else 1e-3
        scale = max(float(a.abs().max()), 1.0)
        err = float((a - b).abs().max())
        assert err <= tol * scale, f"{name}.{pname}: max |sim - triton| = {err}"
    return sim


@gpu
def test_autotune_keeps_one_launch_of_effect():
    """autotune times several launch configs of an accumulating (atomic, InOut) kernel at
    its first launch; the outputs are restored around the trials, so y gets one update."""
    x, w = _t(48, 256, dtype=torch.bfloat16), _t(80, 256, dtype=torch.bfloat16, scale=1 / 16)
    y = _t(48, 80)
    want = y + x.float() @ w.float().T
    consts = dict(TM=16, TN=32, TK=64, SPLIT=2)
    mt.run_jit(G.gemm_splitk, x, w, y, target="cuda", tune=True, **consts)
    assert float((y - want).abs().max()) <= 1e-2 * float(want.abs().max())
    # a config was picked and kept
    assert mt.compile(G.gemm_splitk, target="cuda", **consts).launch_configs()


@mt.kernel
def _f2i(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.i32], T: mt.const = 16):
    for b in mt.spmd(mt.cdiv(x.shape[0], T)):
        mt.store(y[b * T:b * T + T], mt.load(x[b * T:b * T + T]).astype(mt.i32))


def test_float_to_int_rounds_half_to_even_and_saturates_on_every_backend():
    """astype(i32) stores like numpy's rint + clip: ties to even, out-of-range values
    saturate (the simulator used to wrap 3e9 through a float32 bound; Triton truncated)."""
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6, -2.6, 3e9, -3e9, 7.0, -7.5,
                      0.49999997, 1e-3, 100.5, 101.5, 2147483520.0, -2147483648.0, 9.5])
    want = torch.round(x.double()).clamp(-2**31, 2**31 - 1).to(torch.int32)
    for target in ("sim", "cuda"):
        y = torch.zeros(len(x), dtype=torch.int32)
        xs = x.to(DEV) if target == "cuda" else x
        ys = y.to(DEV) if target == "cuda" else y
        mt.run_jit(_f2i, xs, ys, target=target)
        assert torch.equal(ys.cpu(), want), (target, ys.cpu().tolist())


@mt.kernel
def _store_then_reload(x: mt.Tensor["M", "N", mt.f32], y: mt.InOut["M", "N", mt.f32],
                       z: mt.Out["M", "N", mt.f32], T: mt.const = 16):
    """Writes y, reads it back, writes it again, in one program (a tile's elements need
    not sit in the same threads for the load as for the store); then a loop that reads
    and writes y every iteration."""
    M, N = x.shape
    for blk in mt.spmd(1):
        mt.store(y[0:T, 0:T], mt.load(x[0:T, 0:T]) * 2.0)
        yt = mt.load(y[0:T, 0:T])
        mt.store(z[0:T, 0:T], yt + mt.row_sum(yt))
        mt.store(y[0:T, 0:T], yt + 1.0)
        for i in mt.range(0, 3):
            mt.store(y[0:T, 0:T], mt.load(y[0:T, 0:T]) + 1.0)


@mt.kernel
def _loops_and_order(x: mt.Tensor["M", "N", mt.f32], y: mt.InOut["M", "N", mt.f32],
                     z: mt.InOut["M", "N", mt.f32], n: mt.Scalar[mt.i32],
                     T: mt.const = 16):
    """y written, then a loop that may run zero times (its own barrier does not order y),
    then y read back; then a loop whose one store moves with the iteration and overlaps
    the previous iteration's rows (a loop-carried write-after-write)."""
    M, N = x.shape
    for blk in mt.spmd(1):
        mt.store(y[0:T, 0:T], mt.load(x[0:T, 0:T]))
        for i in mt.range(0, n):
            mt.store(z[0:T, 0:T], mt.load(z[0:T, 0:T]) + 1.0)
        mt.store(z[T:2 * T, 0:T], mt.load(y[0:T, 0:T]) * 3.0)
        for i in mt.range(0, 3):
            mt.store(y[i * 4:i * 4 + T, 0:T], mt.load(x[0:T, 0:T]) + mt.to_float(i))


def test_gm_program_order_kept_with_cta_barriers():
    """Accesses of one tensor by one program are ordered as written: a CTA barrier before
    a read after a write (RAW), a write after a read or write (WAR, WAW), and at the top of
    a loop that reads and writes it; none where no tensor is both read and written."""
    src = mt.compile(_store_then_reload, target="cuda").code
    body = src.split("def ", 1)[1].splitlines()
    kinds = [("B" if "debug_barrier" in ln else "S" if "tl.store(y" in ln else
              "L" if "tl.load(y" in ln else None) for ln in body]
    seq = "".join(k for k in kinds if k)
    assert seq == "SBLBSBLBS", seq  # store, |, load, |, store, loop: |, load, |, store
    assert "debug_barrier" not in mt.compile(G.gemm, target="cuda").code
    src = mt.compile(_loops_and_order, target="cuda").code
    body = src.split("def ", 1)[1].splitlines()
    kinds = [("B" if "debug_barrier" in ln else "F" if ln.strip().startswith("for ") else
              "S" if "tl.store(y" in ln else "L" if "tl.load(y" in ln else None) for ln in body]
    seq = "".join(k for k in kinds if k)
    # loop 1: barriers at its top and before its z store; then one before y's read (the
    # loop may not run); loop 2: a barrier at its top (its store moves)
    assert seq == "SFBBBLFBS", seq
    x = _t(32, 16)
    y, z = torch.zeros_like(x), torch.zeros_like(x)
    mt.run_jit(_loops_and_order, x, y, z, 0, target="cuda")
    assert torch.allclose(z[16:], 3 * x[:16]) and torch.allclose(y[8:24], x[:16] + 2)
    x = _t(16, 16)
    y, z = torch.zeros_like(x), torch.zeros_like(x)
    mt.run_jit(_store_then_reload, x, y, z, target="cuda")
    assert torch.allclose(z, 2 * x + (2 * x).sum(1, keepdim=True), atol=1e-4)
    assert torch.allclose(y, 2 * x + 4)


@pytest.mark.parametrize("case", range(6))
def test_qwen3_kernels_agree_between_simulator_and_triton(case):
    """The decode layer's GPU kernels (fp16 for bf16 in the interpreter): the simulator
    and Triton give the same outputs, the paged caches included."""
    name, kern, args, consts = qwen3_cases(f16=not HAS_GPU)[case]
    # the NPU's hard syncall needs a block per cluster (GRID 0); a GPU one per work item
    sim = _sim_vs_triton(name, kern, args, dict(consts, **({"GRID": 0} if "GRID" in consts
                                                            else {})), consts)
    if kern.fn.__name__ == "fa_fused":  # the new token's k/v reached the cache
        assert not torch.equal(sim[3], args[3]) and not torch.equal(sim[4], args[4])


def test_qwen3_kernels_compile_for_hopper_without_a_gpu():
    """Triton's own compiler takes every generated phase of the layer's kernels (bf16, as
    they run on an H100/H200) down to PTX for sm_90: source the interpreter would accept
    but the compiler would not is caught here, in CI, with no GPU (in a child process:
    the interpreter's switch is read once per process)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    here = os.path.dirname(__file__)
    res = subprocess.run([sys.executable, os.path.join(here, "qwen3_gpu_cases.py")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("ptx ok") == 7, res.stdout


@mt.kernel
def _stale_scalar(y: mt.InOut["N", mt.f32], z: mt.Out["N", mt.f32]):
    for blk in mt.spmd(mt.target().aiv_count):  # a vector-only kernel: one per AIV
        s = y[blk]  # read before the syncall ...
        mt.store(y[blk:blk + 1], mt.full((1,), 5.0))  # ... then overwritten
        mt.fence()
        mt.syncall(mt.CoreType.AIV, mt.SyncMode.HARD)
        mt.store(z[blk:blk + 1], mt.full((1,), 0.0) + s)  # the old value is meant


def test_scalar_kept_across_a_syncall_from_a_tensor_written_before_it_is_refused():
    """On a GPU each phase is a launch that recomputes the scalars it uses: a scalar load
    from a tensor written before the syncall would see the new value (the simulator keeps
    the old one). The backend refuses it, naming the load's line."""
    with pytest.raises(mt.UnsupportedError) as e:
        _ = mt.compile(_stale_scalar, target="cuda").code
    msg = str(e.value)
    assert "test_triton.py" in msg and "`y`" in msg and "load it again" in msg
    # the simulator runs it as written: z holds y's old values
    y, z = torch.arange(48.0), torch.zeros(48)
    mt.run_jit(_stale_scalar, y, z, target="sim")
    assert torch.equal(z, torch.arange(48.0)) and torch.all(y == 5)


@mt.kernel
def _rows_load(x: mt.Tensor["M", "N", mt.f32], n: mt.Scalar[mt.i32],
               y: mt.Out["M", "N", mt.f32], z: mt.Out["M", "N", mt.f32], T: mt.const = 16):
    """Loads of the first `n` rows (pad -1 past them) and of none, offset into x."""
    M, N = x.shape
    for blk in mt.spmd(mt.cdiv(M, T)):
        t = mt.load(x[blk * T + 3:blk * T + 3 + T, 0:T], rows=n, pad=-1.0)
        mt.store(y[blk * T:blk * T + T, 0:T], t)
        mt.store(z[blk * T:blk * T + T, 0:T], mt.load(x[blk * T:blk * T + T, 0:T], rows=0))


@pytest.mark.parametrize("n", [0, 5, 16, 40])
def test_load_rows_reads_only_the_first_rows_on_every_backend(n):
    """mt.load(region, rows=n): rows past n (and past the tensor's end) hold pad and are
    not read; the simulator and Triton agree, and the values are x's rows."""
    x = _t(45, 16)
    y, z = torch.zeros_like(x), torch.zeros_like(x)
    sim = _sim_vs_triton("rows", _rows_load, [x.cpu(), n, y.cpu(), z.cpu()], {}, {})
    y = sim[2]
    for blk in range(3):
        got = y[blk * 16:blk * 16 + 16]
        src = x.cpu()[blk * 16 + 3:blk * 16 + 3 + min(n, 16)]
        k = src.shape[0]
        assert torch.equal(got[:k], src) and bool((got[k:] == -1).all())
    assert bool((sim[3] == 0).all())


@pytest.mark.parametrize("n", [0, 2, 3, 5])
def test_load_rows_in_a_lane_split_mixed_kernel(n):
    gen = torch.Generator().manual_seed(n)
    a, b = _t(5, 32, dtype=torch.float16, gen=gen), _t(40, 32, dtype=torch.float16, gen=gen)
    r = _t(5, 40, gen=gen)
    y = torch.zeros(5, 40)
    sim = _sim_vs_triton("mixed_rows", mixed_rows, [a.cpu(), b.cpu(), r.cpu(), n, y], {}, {})
    rr = r.cpu().clone()
    rr[n:] = 0
    assert torch.allclose(sim[4], a.cpu().float() @ b.cpu().float().T + rr, atol=1e-3)


@mt.kernel
def _rows_copy(x: mt.Tensor["M", "N", mt.f32], n: mt.Scalar[mt.i32], y: mt.Out["M", "N", mt.f32],
               TM: mt.const = 16, TN: mt.const = 16):
    """y's blocks = x's blocks with only the first n rows of each read (pad 7)."""
    M, N = x.shape
    gn = mt.cdiv(N, TN)
    for blk in mt.spmd(mt.cdiv(M, TM) * gn):
        m0, n0 = blk // gn * TM, blk % gn * TN
        mt.store(y[m0:m0 + TM, n0:n0 + TN], mt.load(x[m0:m0 + TM, n0:n0 + TN], rows=n,
                                                    pad=7.0))


def test_load_rows_property():
    """Random shapes, tiles and row counts: simulator, Triton and the plain definition
    (rows of each block past n, and past the tensor, hold the pad) agree."""
    hyp = pytest.importorskip("hypothesis")
    st = hyp.strategies

    @hyp.settings(max_examples=12, deadline=None, derandomize=True)
    @hyp.given(m=st.integers(1, 40), n_cols=st.integers(1, 40), tm=st.sampled_from([1, 4, 16]),
               tn=st.sampled_from([1, 8, 16]), rows=st.integers(0, 20))
    def check(m, n_cols, tm, tn, rows):
        x = torch.randn(m, n_cols)
        sim = _sim_vs_triton("rows_copy", _rows_copy, [x, rows, torch.zeros(m, n_cols)],
                             dict(TM=tm, TN=tn), dict(TM=tm, TN=tn))
        keep = (torch.arange(m) % tm < rows)[:, None]
        assert torch.equal(sim[2], torch.where(keep, x, torch.full_like(x, 7.0)))

    check()


@pytest.mark.parametrize("tm,tn,lr", [(32, 64, 0), (17, 64, 0), (32, 40, 1)])
def test_arange_causal_mask_on_triton(tm, tn, lr):
    from test_mixed import CAUSAL, _causal_ref

    q, k = _t(70, 64, dtype=torch.float16), _t(100, 64, dtype=torch.float16)
    _run(CAUSAL, q, k, torch.empty(70, 100, device=DEV), TM=tm, TN=tn, LR=lr,
         golden=lambda q, k, y: _causal_ref(q.cpu(), k.cpu(), y).to(q.device))
