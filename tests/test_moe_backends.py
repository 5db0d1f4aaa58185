"""The MoE kernels on the other backends against the simulator: Triton (on a GPU, or its
CPU interpreter with fp16 standing in for bf16: the interpreter's bf16 tl.dot is wrong),
and the emitted Ascend C on the CPU model of the API (bf16; the Ascend C backend has no
fp8 element type)."""
import os

import pytest
import torch

HAS_GPU = torch.cuda.is_available()
if not HAS_GPU and __name__ != "__main__":  # before Triton is imported: it reads it then
    os.environ["TRITON_INTERPRET"] = "1"

import mixtile as mt  # noqa: E402
from tilelang_models.qwen3 import moe_kernels as K  # noqa: E402
from tilelang_models.qwen3.moe import MoeBlock, random_moe_weights  # noqa: E402
from tilelang_models.qwen3.moe_reference import moe_ref  # noqa: E402

gpu = pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU")
DEV = "cuda" if HAS_GPU else "cpu"
# Triton's interpreter converts fp32 -> e4m3 wrongly when rounding carries into the next
# power of two (125.8 -> 64, torch and a GPU give 128): the quantising kernels need a GPU
INTERP_FP8_CAST = "Triton's CPU interpreter rounds fp32 -> e4m3 wrongly across a power of two"


def _steps(T, fp8, gen, E=10, H=256, I=384, k=3, tiles=None, cuda_consts=False,
           routed=0, cuda_tiles=None):
    """(block, steps) on the simulator; with cuda_consts each step's constants are the
    ones MoeBlock picks on CUDA (with cuda_tiles; the inputs stay the simulator's);
    routed: MoeBlock's routed_tokens."""
    w = random_moe_weights(E, H, I, seed=int(torch.randint(1 << 30, (1,), generator=gen)),
                           fp8=fp8)
    blk = MoeBlock(w, k, tiles=tiles or cuda_tiles, routed_tokens=routed)
    x = torch.randn(T, H, generator=gen).bfloat16()
    res = torch.randn(T, H, generator=gen).bfloat16()
    g = (1 + 0.1 * torch.randn(H, generator=gen)).bfloat16()
    steps = blk.steps(x, res, (g, 1e-6))
    if cuda_consts:
        cons = MoeBlock(w, k, target="cuda", routed_tokens=routed,
                        tiles=cuda_tiles).consts(T)
        steps = [(n, kern, args, c, cons[n]) for n, kern, args, c in steps]
    return blk, steps


def _clone(args, dtype_map=None):
    out = []
    for a in args:
        if isinstance(a, torch.Tensor):
            a = a.clone()
            if dtype_map and a.dtype in dtype_map:
                a = a.to(dtype_map[a.dtype])
        out.append(a)
    return out


def _e4m3_steps(x, y):
    """|x - y| in e4m3 steps at the larger magnitude (2^(exponent - 3), subnormal 2^-9)."""
    m = torch.maximum(x.abs(), y.abs()).clamp_min(2.0 ** -6)
    step = torch.exp2(torch.floor(torch.log2(m)) - 3)
    return (x - y).abs() / step


def _agree(kern, name, a, b, rtol, skip=()):
    for x, y, pname in zip(a, b, kern.order):
        if not isinstance(x, torch.Tensor) or pname in skip:
            continue
        if x.dtype == torch.float8_e4m3fn:
            # x / scale rounded to e4m3 on both sides (the Triton backend divides with
            # div_rn, IEEE as numpy; with Triton's `/`, div.full.f32, 32 of 448 moved on
            # an H100): one step at a rounding boundary, on few elements, is the most a
            # one-ulp difference upstream can make
            x, y = x.float().cpu(), y.float().cpu()
            steps = _e4m3_steps(x, y)
            assert float(steps.max()) <= 1.0, f"{name}.{pname}: {float(steps.max())} e4m3 steps"
            frac = float((steps > 0).float().mean())
            assert frac <= 0.01, f"{name}.{pname}: {frac:.2%} of the e4m3 values differ"
            continue
        x, y = x.float().cpu(), y.float().cpu()
        scale = max(float(x.abs().max()), 1e-6) if x.numel() else 1.0
        err = float((x - y).abs().max()) if x.numel() else 0.0
        assert err <= rtol * scale, f"{name}.{pname}: max |sim - other| = {err} ({scale})"


# ---------------------------------------------------------------- Triton

triton = pytest.importorskip("triton")


def _variant(kern):
    """On a GPU the kernel itself; in the interpreter its fp16 variant (test_triton._as)."""
    if HAS_GPU:
        return kern
    from test_triton import _as

    return _as(kern, "f16")


# the GPU's prefill-sized row tiles (MoeBlock.consts on CUDA), at a small size
WIDE = {"sort": dict(TM=32), "gate_up": dict(TM=32, TN=64, TK=128),
        "down": dict(TM=32, TN=64, TK=128)}


# the row moves in a launch of their own (moe_gather), as MoeBlock takes them on CUDA
# above 512 entries (here after the DIRECT sort, which the simulator runs quickly)
GATHER = dict(WIDE, sort=dict(TM=32, MOVE=False), gather=dict(RB=3),
              down=dict(WIDE["down"], YS16=True))  # and moe_down's bf16 workspace


# gate and up in one K loop (moe_gate_up ONE_LOOP)
ONE = dict(WIDE, gate_up=dict(WIDE["gate_up"], ONE_LOOP=True))


@pytest.mark.parametrize("fp8", [False, True])
@pytest.mark.parametrize("T,tiles", [(1, None), (7, None), (40, WIDE), (8, "cuda"),
                                     (40, GATHER), (1, "routed"), (3, "routed"), (40, ONE),
                                     (2, "routed-grouped")],
                         ids=["T1", "T7", "T40-TM32", "T8-cuda-consts", "T40-gather",
                              "T1-routed-cuda-consts", "T3-routed-cuda-consts",
                              "T40-one-k-loop", "T2-routed-grouped-down-cuda-consts"])
def test_moe_kernels_agree_between_simulator_and_triton(T, tiles, fp8, gen):
    """Each launch of the block given the same inputs on both (chained on the simulator).
    The interpreter runs the fp16 variants, and of the FP8 kernels the GEMMs (the fp8 dots
    and the block scales): the others quantise (INTERP_FP8_CAST). routed: MoeBlock's
    one-token form (no sort) at T tokens."""
    gather = tiles is GATHER
    routed = T if tiles in ("routed", "routed-grouped") else 0
    # routed: moe_down_routed (GROUPED False; CUDA's default is moe_down on the
    # entry-order map, the routed-grouped case)
    cuda_tiles = {"down": {"GROUPED": tiles == "routed-grouped"}} if routed else None
    tiles = "cuda" if routed else tiles
    if fp8 and isinstance(tiles, dict):  # the FP8 kernels' K step is the 128 group
        one = tiles["gate_up"].get("ONE_LOOP", False)
        tiles = {"sort": tiles["sort"], "gate_up": dict(TM=32, TN=64, ONE_LOOP=one),
                 "down": dict(TM=32, TN=64, YS16=gather), "gather": tiles.get("gather", {})}
    if T == 7:  # one entry per sort block, as MoeBlock runs decode on a GPU
        tiles = {"sort": dict(TB=1)}
    cuda_consts = tiles == "cuda"  # Triton with MoeBlock's CUDA tiles and grids
    blk, steps = _steps(T, fp8, gen, tiles=None if cuda_consts else tiles,
                        cuda_consts=cuda_consts, routed=routed, cuda_tiles=cuda_tiles)
    half = None if HAS_GPU else {torch.bfloat16: torch.float16}
    ran = 0
    for name, kern, args, consts, *tri_consts in steps:
        if not HAS_GPU and fp8 and kern in (K.moe_sort_fp8, K.moe_gather_fp8,
                                            K.moe_quant):
            mt.run_jit(kern, *args, **consts)  # the next launch's inputs
            continue
        kv = _variant(kern)
        sim, tri = _clone(args, half), _clone(args, half)
        mt.run_jit(kv, *sim, **consts)
        tri = [a.to(DEV) if isinstance(a, torch.Tensor) else a for a in tri]
        mt.run_jit(kv, *tri, target="cuda", **(tri_consts[0] if tri_consts else consts))
        # a sort that leaves its moves to moe_gather does not write xs and sw
        unwritten = ("sw", "xs", "xq", "xqs") if consts.get("MOVE") is False else ()
        _agree(kern, name, sim, tri, 2e-2, unwritten)
        mt.run_jit(kern, *args, **consts)
        ran += 1
    if routed:  # router, [quant_x], gate/up, [quant], down
        assert len(steps) == 3 + 2 * fp8
        assert ran == (3 if fp8 and not HAS_GPU else len(steps))
        return
    assert ran == (3 if fp8 and not HAS_GPU else len(steps))
    assert len(steps) == 4 + gather + fp8  # + moe_gather, + moe_quant


def _sort_inputs(T, E, k, gen):
    """ids with expert 1 in every token's first slot (T tied entries), wts, x, and the
    outputs of moe_sort (tile map for TM = 16)."""
    ids = torch.stack([torch.randperm(E, generator=gen)[:k] for _ in range(T)])
    ids[:, 0] = 1
    ids[:, 1:] = torch.where(ids[:, 1:] == 1, 0, ids[:, 1:])
    N, MT = T * k, K.tile_slots(T * k, E, 16)
    i32 = dict(dtype=torch.int32)
    return [ids.int().reshape(-1), torch.rand(N, generator=gen),
            torch.randn(T, 64, generator=gen).bfloat16(), torch.empty(N, **i32),
            torch.empty(N, 1), torch.empty(MT, **i32), torch.empty(MT, **i32),
            torch.empty(MT, **i32), torch.empty(1, **i32),
            torch.empty(N, 64, dtype=torch.bfloat16)]


def _same_sort(kern, ref, got):
    """Every output of moe_sort equal (the tile map within ntiles)."""
    nt = int(ref[8][0])
    assert int(got[8][0]) == nt
    for i, name in zip((3, 4, 9), ("pos", "sw", "xs")):
        assert torch.equal(ref[i].cpu(), got[i].cpu()), f"{kern.name}.{name} differs"
    for i in (5, 6, 7):
        assert torch.equal(ref[i][:nt].cpu(), got[i][:nt].cpu())


def test_chunked_sort_agrees_between_simulator_and_triton(gen):
    """moe_sort's chunked counting sort (its two phases: two launches on a GPU) at 100
    tokens x top 3 of 20 experts, chunks of 16 entries."""
    args = _sort_inputs(100, 20, 3, gen)
    consts = dict(NE=20, TOPK=3, TE=32, TB=16, TJ=64)
    kv = _variant(K.moe_sort)
    half = None if HAS_GPU else {torch.bfloat16: torch.float16}
    sim, tri = _clone(args, half), _clone(args, half)
    mt.run_jit(kv, *sim, **consts)
    tri = [a.to(DEV) for a in tri]
    mt.run_jit(kv, *tri, target="cuda", **consts)
    _same_sort(kv, sim, tri)
    order = torch.sort(args[0].long(), stable=True).indices  # and against torch
    assert torch.equal(sim[3].long()[order], torch.arange(len(order)))


@pytest.mark.parametrize("T,ks", [(1, 3), (20, 2)])
def test_split_router_agrees_between_simulator_and_triton(T, ks, gen):
    """moe_router with its GEMM split (KS > 0: two launches on a GPU), 40 experts in
    items of 16 (TE 48), K 384 in tiles of 128."""
    E, H, k = 40, 384, 4
    args = [torch.randn(T, H, generator=gen).bfloat16(),
            (1 + 0.1 * torch.randn(H, generator=gen)).bfloat16(),
            (torch.randn(E, H, generator=gen) / 16).bfloat16(),
            torch.empty(T, H, dtype=torch.bfloat16), torch.empty(T, k, dtype=torch.int32),
            torch.empty(T, k), 1e-6]
    consts = dict(NE=E, TOPK=k, TE=48, TK=128, KS=ks, TEB=16)
    kv = _variant(K.moe_router)
    half = None if HAS_GPU else {torch.bfloat16: torch.float16}
    sim, tri = _clone(args, half), _clone(args, half)
    mt.run_jit(kv, *sim, **consts)
    tri = [a.to(DEV) if isinstance(a, torch.Tensor) else a for a in tri]
    mt.run_jit(kv, *tri, target="cuda", GRID=8, **consts)
    torch.testing.assert_close(tri[3].cpu(), sim[3], rtol=0, atol=0)
    same = (tri[4].cpu() == sim[4]).all(-1)
    assert same.float().mean() >= 0.9, f"{int((~same).sum())} of {T} tokens routed apart"
    torch.testing.assert_close(tri[5].cpu()[same], sim[5][same], rtol=1e-5, atol=1e-7)


@pytest.mark.skipif(HAS_GPU, reason="documents the interpreter's cast; a GPU converts right")
def test_the_interpreter_fp8_cast_still_needs_a_gpu():
    """If this starts failing, Triton's interpreter converts fp32 -> e4m3 right and the
    quantising kernels can run under it (drop the skip in the test above)."""
    @mt.kernel
    def q(x: mt.Tensor["R", 128, mt.f32], y: mt.Out["R", 128, mt.f8e4m3]):
        for blk in mt.spmd(1):
            mt.store(y[0:8, 0:128], mt.load(x[0:8, 0:128]).astype(mt.f8e4m3))

    x = torch.full((8, 128), 125.8)
    y = torch.empty(8, 128, dtype=torch.float8_e4m3fn)
    mt.run_jit(q, x, y, target="cuda")
    assert float(y.float()[0, 0]) != 128.0, INTERP_FP8_CAST


@gpu
@pytest.mark.parametrize("fp8", [False, True])
@pytest.mark.parametrize("T", [1, 8, 33, 200])  # 200 x top 4: the chunked sort + gather
def test_moe_block_on_gpu_against_torch(T, fp8, gen):
    E, H, I, k = 16, 1024, 256, 4  # H 1024: MoeBlock splits the router's K in 2
    w = random_moe_weights(E, H, I, seed=int(torch.randint(1 << 30, (1,), generator=gen)),
                           fp8=fp8)
    x = torch.randn(T, H, generator=gen).bfloat16()
    res = torch.randn(T, H, generator=gen).bfloat16()
    # tune=False: Triton's defaults (the numbers do not depend on num_warps / num_stages,
    # and tuning compiles each launch eleven times: this file then ran past 300 s on a
    # fresh H100)
    blk = MoeBlock(w.to("cuda"), k, target="cuda", tune=False)
    assert blk.consts(T)["router"]["KS"] == 2
    assert blk.consts(T)["sort"]["MOVE"] == (T * k <= 512)
    out = blk(x.cuda(), res=res.cuda()).cpu()
    route = blk.routing(T)
    want = moe_ref(x, w.router, w.gate, w.up, w.down, k, res=res, scales=w.scales(),
                   routing=route).float()
    if not fp8:
        torch.testing.assert_close(out.float(), want, rtol=1.6e-2, atol=1e-2)
        return
    # FP8: the tensor cores accumulate the e4m3 products with less precision than the
    # fp32 golden (at 200 tokens on an H100 11% of the bf16 act values differ from the
    # golden's; the simulator 0.02%), a bf16 act value one ulp away can round to the
    # neighbouring e4m3 step (1/16 to 1/8 relative) in moe_quant, and that moves the
    # outputs it feeds: few elements, by up to about 1% of the largest (at 200 tokens
    # 0.03-0.1% of them beyond the elementwise bound)
    d = (out.float() - want).abs()
    assert float(d.max() / want.abs().max()) <= 2e-2
    assert float((d > 1e-2 + 1.6e-2 * want.abs()).float().mean()) <= 1e-2


def test_moe_kernels_compile_for_hopper_without_a_gpu():
    """Triton's own compiler takes every generated launch of the MoE kernels, bf16 and
    e4m3, as they run on an H100/H200, down to PTX for sm_90 (in a child process without
    the interpreter's switch; see compile_for_hopper below)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(__file__)),
                                         env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, __file__], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("ptx ok") == 34, res.stdout


def compile_for_hopper() -> None:
    """Compile each launch of the MoE kernels (bf16, fp8, decode and wide tiles; the
    chunked sort's two phases) for sm_90 with Triton's compiler; prints one "ptx ok"
    line per launch."""
    import tempfile

    from qwen3_gpu_cases import ptx_for_hopper

    cases = [(K.moe_router, dict(NE=128, TOPK=8, TE=128)),
             (K.moe_sort, dict(NE=128, TOPK=8, TE=128)),  # chunked: two launches
             (K.moe_sort, dict(NE=128, TOPK=8, TE=128, TB=1, DIRECT=True)),
             (K.moe_sort_fp8, dict(NE=128, TOPK=8, TE=128, GT=16)),
             (K.moe_sort_fp8, dict(NE=128, TOPK=8, TE=128, GT=16, TB=1, DIRECT=True)),
             (K.moe_gate_up, dict(TM=16, TN=32, TK=128, GRID=128)),
             (K.moe_gate_up_fp8, dict(TM=16, TN=32, GRID=128)),
             (K.moe_down, dict(TOPK=8, TM=64, TN=128, TK=64)),
             (K.moe_down_fp8, dict(TOPK=8, TM=16, TN=64)),
             # MoeBlock's 30B-A3B CUDA constants: the split router (two launches), whole
             # rows copied, the 4096-token bf16 tiles
             (K.moe_router, dict(NE=128, TOPK=8, TE=128, TK=512, KS=4, TEB=16, GRID=32)),
             (K.moe_sort, dict(NE=128, TOPK=8, TE=128, TB=1, DIRECT=True, TH=2048)),
             (K.moe_gate_up, dict(TM=128, TN=64, TK=64, GRID=1056)),
             (K.moe_down, dict(TOPK=8, TM=128, TN=128, TK=64, TC=1024, GRID=1056)),
             (K.moe_sort, dict(NE=128, TOPK=8, TE=128, TM=128, TH=2048, MOVE=False)),
             (K.moe_gather, dict(TOPK=8, RB=8, TH=2048)),
             (K.moe_gather_fp8, dict(TOPK=8, RB=8, GT=16)),
             (K.moe_quant, dict(TR=64)),
             (K.moe_down, dict(TOPK=8, TM=128, TN=128, TK=64, TC=1024, YS16=True)),
             # one token, routed (MoeBlock's CUDA constants)
             (K.moe_gate_up_routed, dict(TM=16, TN=32, TK=128, GRID=256)),
             (K.moe_gate_up_routed_fp8, dict(TM=16, TN=32, GRID=256)),
             (K.moe_down_routed, dict(TM=16, TN=16, TK=256, GRID=128)),
             (K.moe_down_routed_fp8, dict(TM=16, TN=16, GRID=128)),
             (K.moe_down_routed, dict(TM=16, TN=16, TK=256, GRID=128, FLAT=True)),
             (K.moe_down_routed_fp8, dict(TM=16, TN=16, GRID=128, FLAT=True)),
             # gate and up in one K loop
             (K.moe_gate_up, dict(TM=128, TN=64, TK=64, GRID=1056, ONE_LOOP=True)),
             (K.moe_gate_up_fp8, dict(TM=16, TN=32, GRID=128, ONE_LOOP=True))]
    tmp = tempfile.mkdtemp()
    for kern, consts in cases:
        ptx_for_hopper(kern.name, mt.compile(kern, target="cuda", **consts), tmp)


# ---------------------------------------------------------------- Ascend C (CPU model)


@pytest.mark.parametrize("one_loop", [False, True])
def test_moe_kernels_run_as_ascend_c_on_the_cpu_model(one_loop, gen, tmp_path):
    """router (mixed), sort (vector), gate/up (two K loops, or ONE_LOOP) and down (mixed,
    the down with a hard SyncAll between its phases) against the simulator, chained."""
    pytest.importorskip("test_ascendc_cpu")
    from test_ascendc_cpu import GXX, _compare

    if GXX is None:
        pytest.skip("g++ is not installed")
    _, steps = _steps(7, False, gen, tiles={"gate_up": {"ONE_LOOP": one_loop, "TK": 64}})
    for name, kern, args, consts in steps:
        _compare(kern, _clone(args), tmp_path / name, **consts)
        mt.run_jit(kern, *args, **consts)


@pytest.mark.parametrize("T,flat", [(1, False), (3, False), (1, True)])
def test_routed_kernels_run_as_ascend_c_on_the_cpu_model(T, flat, gen, tmp_path):
    """The one-token form: moe_gate_up_routed and moe_down_routed (rows by the routing,
    the slot sum in one launch; flat: one (slot, K step) loop) against the simulator,
    chained after the router."""
    pytest.importorskip("test_ascendc_cpu")
    from test_ascendc_cpu import GXX, _compare

    if GXX is None:
        pytest.skip("g++ is not installed")
    _, steps = _steps(T, False, gen, routed=T, tiles={"down": {"FLAT": flat}})
    assert [s[0] for s in steps] == ["router", "gate_up", "down"]
    for name, kern, args, consts in steps:
        if name != "router":
            _compare(kern, _clone(args), tmp_path / name, **consts)
        mt.run_jit(kern, *args, **consts)


@pytest.mark.parametrize("norm_in", [True, False])
def test_split_router_runs_as_ascend_c_on_the_cpu_model(norm_in, gen, tmp_path):
    """moe_router with KS = 2 (cube phase, SyncAll, vector phase over the lanes' rows)."""
    pytest.importorskip("test_ascendc_cpu")
    from test_ascendc_cpu import GXX, _compare

    if GXX is None:
        pytest.skip("g++ is not installed")
    T, E, H, k = 5, 20, 256, 3
    args = [torch.randn(T, H, generator=gen).bfloat16(),
            (1 + 0.1 * torch.randn(H, generator=gen)).bfloat16(),
            (torch.randn(E, H, generator=gen) / 16).bfloat16(),
            torch.zeros(T, H, dtype=torch.bfloat16), torch.empty(T, k, dtype=torch.int32),
            torch.empty(T, k), 1e-6]
    consts = dict(NE=E, TOPK=k, TE=32, TK=128, KS=2, TEB=16, NORM_IN=norm_in)
    if norm_in:
        _compare(K.moe_router, args, tmp_path / "router", **consts)
        return
    from test_ascendc_cpu import run_cpu  # h3 is not written: compare the routing

    sim = _clone(args)
    mt.run_jit(K.moe_router, *sim, **consts)
    got = run_cpu(K.moe_router, _clone(args), tmp_path / "router", **consts)
    assert torch.equal(got[4], sim[4])
    torch.testing.assert_close(got[5], sim[5], rtol=1e-6, atol=1e-7)


def test_chunked_sort_runs_as_ascend_c_on_the_cpu_model(gen, tmp_path):
    """The chunked counting sort (an AIV-only kernel with a hard SyncAll over the 48 AIV
    cores) against the simulator, exactly."""
    pytest.importorskip("test_ascendc_cpu")
    from test_ascendc_cpu import GXX, run_cpu

    if GXX is None:
        pytest.skip("g++ is not installed")
    args = _sort_inputs(100, 20, 3, gen)
    consts = dict(NE=20, TOPK=3, TE=32, TB=16, TJ=16)
    sim = _clone(args)
    mt.run_jit(K.moe_sort, *sim, **consts)
    _same_sort(K.moe_sort, sim, run_cpu(K.moe_sort, _clone(args), tmp_path, **consts))
    # MOVE = False, then the moves by moe_gather (a vector kernel of cdiv(N, RB) blocks)
    got = run_cpu(K.moe_sort, _clone(args), tmp_path / "nomove", MOVE=False, **consts)
    g = run_cpu(K.moe_gather, [args[1], args[2], got[3], got[4], got[9]],
                tmp_path / "gather", TOPK=3, RB=7)
    got[4], got[9] = g[3], g[4]
    _same_sort(K.moe_sort, sim, got)


@pytest.mark.parametrize("kern,consts", [
    (K.moe_gate_up_fp8, {}), (K.moe_down_fp8, dict(TOPK=8)), (K.moe_quant, {}),
    (K.moe_gather_fp8, dict(TOPK=8)), (K.moe_sort_fp8, dict(NE=8, TOPK=2, TE=16))],
    ids=lambda v: getattr(v, "name", ""))
def test_fp8_kernels_are_refused_by_the_ascend_c_backend(kern, consts):
    with pytest.raises(mt.UnsupportedError, match="no f8e4m3 element type"):
        print(mt.compile(kern, target="npu", **consts).code)


@gpu
@pytest.mark.parametrize("fp8", [False, True])
def test_moe_layers_on_gpu_against_the_reference(fp8, gen):
    """MoeDecodeLayer and MoePrefillLayer (tiny-moe) on CUDA: h2 against the reference's,
    the routing with routing_error, the output against the golden from the layer's own h2
    and routing."""
    from tilelang_models.qwen3.moe_config import get_moe_config
    from tilelang_models.qwen3.moe_layer import (
        MoeDecodeLayer,
        MoePrefillLayer,
        moe_decode_layer_ref,
        moe_prefill_layer_ref,
    )
    from tilelang_models.qwen3.moe_reference import routing_error
    from tilelang_models.qwen3.moe_weights import random_moe_layer
    from tilelang_models.qwen3.paged import make_paged_cache
    from tilelang_models.qwen3.reference import rmsnorm

    cfg = get_moe_config("tiny-moe")
    w = random_moe_layer(cfg, int(torch.randint(1 << 30, (1,), generator=gen)), fp8=fp8)
    wd = w.to("cuda")

    def check(out, h2, route, want, h2_ref):
        h3 = rmsnorm(h2.cpu(), w.attn.post_attention_layernorm, cfg.attn.rms_norm_eps)
        assert routing_error(route[0], h3.bfloat16(), w.moe.router) <= 1e-2
        for got, ref in ((out, want), (h2, h2_ref)):
            got = got.float().cpu()
            assert float((got - ref.float()).abs().max() / ref.float().abs().max()) <= 2e-2

    k, v, bt, sl = make_paged_cache(cfg.attn, [33, 1, 17], 16, 3)
    x = torch.randn(3, cfg.attn.hidden_size, generator=gen).bfloat16()
    kr, vr = k.clone(), v.clone()
    layer = MoeDecodeLayer(cfg, wd, target="cuda", progress=False)
    out = layer(*(t.cuda() for t in (x, k, v, bt, sl)))
    want, h2_ref = moe_decode_layer_ref(cfg, w, x, kr, vr, bt, sl, h2=layer.h2(3),
                                        routing=layer.moe.routing(3))
    check(out, layer.h2(3), layer.moe.routing(3), want, h2_ref)

    new, ctx = [5, 1, 37], [0, 20, 9]
    k, v, bt, _ = make_paged_cache(cfg.attn, [c + n for c, n in zip(ctx, new)], 16, 2,
                                   cached=ctx)
    x = torch.randn(sum(new), cfg.attn.hidden_size, generator=gen).bfloat16()
    cu = torch.tensor([0, *torch.tensor(new).cumsum(0).tolist()], dtype=torch.int32)
    cl = torch.tensor(ctx, dtype=torch.int32)
    kr, vr = k.clone(), v.clone()
    pl = MoePrefillLayer(cfg, wd, target="cuda")
    out = pl(*(t.cuda() for t in (x, cu, cl, k, v, bt)))
    T = sum(new)
    want, h2_ref = moe_prefill_layer_ref(cfg, w, x, cu, cl, kr, vr, bt, h2=pl.h2,
                                         routing=pl.moe.routing(T))
    check(out, pl.h2, pl.moe.routing(T), want, h2_ref)


if __name__ == "__main__":
    compile_for_hopper()
