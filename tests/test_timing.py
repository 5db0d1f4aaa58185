"""The NPU timing model (mixtile/simulator/timing.py, trace.py): its estimates against
arithmetic, its dependencies, and its Chrome trace."""
import json
import math

import numpy as np
import pytest
import torch

import mixtile as mt
from mixtile.simulator import simulate
from mixtile.simulator.timing import TimingModel
from tilelang_models.kernels.mixed import gemm_bias_silu

A2 = mt.A2.timing
PEAK_FLOP_PER_CYCLE = 2 * 16 * 16 * 16 * mt.A2.aic_count  # 16x16x16 MACs per AIC cycle


@mt.kernel
def gemm_pp(x: mt.Tensor["M", "K", mt.bf16], w: mt.Tensor["N", "K", mt.bf16],
            y: mt.Out["M", "N", mt.f32], TM: mt.const = 128, TN: mt.const = 256,
            TK: mt.const = 64):
    """y = x @ w^T with the next K step's tiles loaded while the cube multiplies this
    step's (both live, so PlanMemory gives them separate L1 and L0 buffers)."""
    M, K = x.shape
    N = w.shape[0]
    gn = mt.cdiv(N, TN)
    for blk in mt.spmd(mt.cdiv(M, TM) * gn):
        m0, n0 = blk // gn * TM, blk % gn * TN
        la = mt.load(x[m0:m0 + TM, 0:TK], space=mt.L1)
        lb = mt.load(w[n0:n0 + TN, 0:TK], space=mt.L1)
        a, b = mt.move(la, mt.L0A), mt.move(lb, mt.L0B)
        acc = mt.zeros((TM, TN), mt.f32)
        for k0 in mt.range(TK, K, TK):
            la = mt.load(x[m0:m0 + TM, k0:k0 + TK], space=mt.L1)
            lb = mt.load(w[n0:n0 + TN, k0:k0 + TK], space=mt.L1)
            an, bn = mt.move(la, mt.L0A), mt.move(lb, mt.L0B)
            acc = mt.matmul(a, b, acc=acc, b_trans=True)
            a, b = an, bn
        acc = mt.matmul(a, b, acc=acc, b_trans=True)
        mt.store(y[m0:m0 + TM, n0:n0 + TN], acc)


@mt.kernel
def copy(x: mt.Tensor["N", "C", mt.f32], y: mt.Out["N", "C", mt.f32], TR: mt.const = 32,
         TC: mt.const = 1024):
    """y = x, 48 AIVs each copying every 48th row tile."""
    N = x.shape[0]
    for blk in mt.spmd(48):
        for r0 in mt.range(blk * TR, N, 48 * TR):
            mt.store(y[r0:r0 + TR, 0:TC], mt.load(x[r0:r0 + TR, 0:TC]))


def test_large_gemm_is_cube_bound_at_flops_over_peak():
    m, n, k = 768, 1024, 16384  # 6 x 4 = 24 output tiles: one per cube core
    ck = mt.compile(gemm_pp)
    x, w = np.zeros((m, k), np.float32), np.zeros((n, k), np.float32)
    tl = simulate(ck.kernel, {"x": x, "w": w}, "a2", timing=True).timeline
    ideal = 2 * m * n * k / PEAK_FLOP_PER_CYCLE
    # over the ideal: per block the accumulator's zeroing, the prologue's loads and the
    # writeback (~2%), and each Mmad's issue overhead (4 of 516 cycles)
    assert ideal <= tl.makespan_cycles <= 1.05 * ideal, (tl.makespan_cycles, ideal)
    assert tl.bound() == "cube"
    assert tl.utilisation()["AIC.M"] > 0.95


def test_serialised_gemm_is_not_cube_bound():
    """The library GEMM's K loop as written (pingpong=False) reuses one L1 and one L0
    buffer per operand (PlanMemory packs them), so each load waits for the previous
    step's move and the cube idles (tests/test_pingpong.py: the default)."""
    from tilelang_models.kernels.gemm import gemm

    m, n, k = 768, 1024, 4096
    ck = mt.compile(gemm, dict(pingpong=False), TM=128, TN=256, TK=64)
    x, w = np.zeros((m, k), np.float32), np.zeros((n, k), np.float32)
    tl = simulate(ck.kernel, {"x": x, "w": w}, "a2", timing=True).timeline
    assert tl.makespan_cycles > 1.5 * 2 * m * n * k / PEAK_FLOP_PER_CYCLE
    assert tl.utilisation()["AIC.M"] < 0.7


def test_large_copy_is_hbm_bound_at_bytes_over_bandwidth():
    rows = 48 * 32 * 16
    x = np.zeros((rows, 1024), np.float32)
    tl = simulate(mt.compile(copy).kernel, {"x": x}, "a2", timing=True).timeline
    ideal = 2 * x.nbytes / A2.hbm_bytes_per_cycle  # read once, written once
    assert ideal <= tl.makespan_cycles <= 1.03 * ideal, (tl.makespan_cycles, ideal)
    assert tl.bound() == "HBM"
    assert tl.summary()["hbm_bytes"] == 2 * x.nbytes


def test_reread_regions_hit_l2():
    """A GEMM reads each x tile once per N tile: only the first read goes to HBM."""
    m, n, k = 256, 1024, 1024
    ck = mt.compile(gemm_pp)
    x, w = np.zeros((m, k), np.float32), np.zeros((n, k), np.float32)
    tl = simulate(ck.kernel, {"x": x, "w": w}, "a2", timing=True).timeline
    out = m * n * 4
    assert tl.model.hbm_bytes == (m * k + n * k) * 2 + out


def _epilogue_args(m, n, k):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(m, k, generator=gen).bfloat16()
    w = torch.randn(n, k, generator=gen).bfloat16()
    return x, w, torch.randn(n, generator=gen), torch.empty(m, n, dtype=torch.bfloat16)


def test_vector_work_waits_on_the_cube(tmp_path):
    """One output tile per cluster: the vector lanes have nothing to do until the cube's
    K loop is done; their wait_flag spans it, with a flow arrow from the AIC's set."""
    x, w, b, y = _epilogue_args(64, 128 * 24, 2048)
    res = mt.run_jit(gemm_bias_silu, x, w, b, y, timeline=tmp_path / "t.json",
                     TM=64, TN=128, TK=128)
    tl = res.timeline
    cube = tl.busy_intervals("AIC0", mt.ir.types.Pipe.M)
    mainloop = cube[-1][1] - cube[0][0]
    for lane in ("AIV0", "AIV1"):
        assert tl.model.clocks[lane].wait > 0.9 * mainloop
    trace = json.loads((tmp_path / "t.json").read_text())
    waits = [e for e in trace["traceEvents"] if e.get("ph") == "X"
             and e["name"].startswith("wait_flag") and e["dur"] * A2.clock_hz / 1e6
             > 0.9 * mainloop]
    assert waits  # a long wait_flag slice on a vector core's S track
    assert {e["cat"] for e in trace["traceEvents"] if e.get("ph") in "sf"} == {"flag"}
    assert trace["otherData"]["wait_us"]["AIV0"] > 0


def _fa_args():
    from tilelang_models.qwen3.config import get_config
    from tilelang_models.qwen3.paged import make_paged_cache

    cfg = get_config("tiny")
    gen = torch.Generator().manual_seed(3)
    hq, kvh, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    lens = [200, 150, 90, 64]
    kc, vc, bt, sl = make_paged_cache(cfg, lens, 16, 2)
    qkv = torch.randn(len(lens), hq + 2 * kvh, d, generator=gen).bfloat16()
    qn = kn = torch.ones(d).bfloat16()
    out = torch.zeros(len(lens), hq, d).bfloat16()
    consts = dict(HQ=hq, KVH=kvh, D=d, BS=16, eps=cfg.rms_norm_eps, theta=cfg.rope_theta,
                  NSPLIT=2)
    return (qkv, qn, kn, kc, vc, bt, sl, out), consts


def test_mixed_overlap_by_pipeline_depth():
    """What the model shows for the ring of ExpandMixedKernel: the lanes hand a slot back
    (FREE) as soon as they have loaded it, so with one slot the cube already computes its
    next tile while the lanes run the epilogue; a 2-slot ring (two FREE credits: the cube
    may run two tiles ahead) changes nothing here, where the cube is the slower side.
    fa_fused's cube and vector take turns at either depth: each QK^T -> softmax -> PV step
    waits for the one before it (its crossings are in the page loop: one credit)."""
    from tilelang_models.qwen3 import kernels as Q

    x, w, b, y = _epilogue_args(512, 1024, 1024)
    fa_args, fa_consts = _fa_args()
    got = {}
    for depth in (1, 2):
        cfg = dict(pipeline_depth=depth)
        got["mixed", depth] = mt.run_jit(gemm_bias_silu, x, w, b, y, compile_cfg=cfg,
                                         timeline=True, TM=64, TN=128, TK=128).timeline
        got["fa", depth] = mt.run_jit(Q.fa_fused, *fa_args, compile_cfg=cfg, timeline=True,
                                      **fa_consts).timeline
    for depth in (1, 2):
        assert got["mixed", depth].overlap() > 0.5
        assert got["fa", depth].overlap() < 0.2
    assert got["fa", 1].makespan_cycles == got["fa", 2].makespan_cycles
    assert math.isclose(got["mixed", 1].overlap(), got["mixed", 2].overlap())


# ---------------------------------------------------------------- the trace's format

_PHASES = {"X": ("name", "ts", "dur", "pid", "tid"), "M": ("name", "pid", "args"),
           "s": ("name", "cat", "id", "ts", "pid", "tid"),
           "f": ("name", "cat", "id", "ts", "pid", "tid")}
_METADATA = {"process_name", "process_sort_index", "thread_name"}


def check_chrome_trace(trace: dict) -> None:
    """The Chrome trace-event format (JSON object form) as Perfetto reads it: a
    traceEvents list of events with a known phase and that phase's fields, numeric
    non-negative times, integer pids and tids, metadata events of known names, and flow
    events in matched start/finish pairs, each inside a slice of its thread; the slices
    of a thread nest or follow each other."""
    assert isinstance(trace, dict) and isinstance(trace["traceEvents"], list)
    assert trace.get("displayTimeUnit", "ms") in ("ms", "ns")
    slices: dict[tuple, list] = {}
    flows: dict[int, dict] = {}
    for e in trace["traceEvents"]:
        ph = e["ph"]
        assert ph in _PHASES, e
        for key in _PHASES[ph]:
            assert key in e, (key, e)
        assert isinstance(e["pid"], int) and isinstance(e.get("tid", 0), int)
        assert isinstance(e["name"], str)
        if ph == "M":
            assert e["name"] in _METADATA and isinstance(e["args"], dict)
            continue
        assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
        if ph == "X":
            assert isinstance(e["dur"], (int, float)) and e["dur"] >= 0
            assert isinstance(e.get("args", {}), dict)
            slices.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
        else:
            assert e["id"] not in flows or ph not in flows[e["id"]], e
            flows.setdefault(e["id"], {})[ph] = e
    for key, ivs in slices.items():  # slices of one thread nest or follow each other;
        ivs.sort()  # the model's never overlap (a pipe runs one op at a time)
        for (a0, b0), (a1, b1) in zip(ivs, ivs[1:]):
            assert a1 >= b0 - 1e-3 or b1 <= b0 + 1e-3, (key, (a0, b0), (a1, b1))
    for fid, pair in flows.items():
        assert set(pair) == {"s", "f"}, fid
        for e in pair.values():
            assert any(a <= e["ts"] <= b for a, b in slices[(e["pid"], e["tid"])]), e
    json.dumps(trace)  # plain JSON values only


def test_trace_is_a_valid_chrome_trace_with_tracks_and_lines(tmp_path):
    from tilelang_models.qwen3 import kernels as Q

    args, consts = _fa_args()  # NSPLIT=2: a syncall between the two phases
    path = tmp_path / "fa.json"
    res = mt.run_jit(Q.fa_fused, *args, timeline=path, **consts)
    trace = json.loads(path.read_text())
    check_chrome_trace(trace)
    ev = trace["traceEvents"]
    procs = {e["args"]["name"].split()[0] for e in ev if e["name"] == "process_name"}
    assert {"AIC0", "AIV0", "AIV1"} <= procs
    threads = {e["args"]["name"] for e in ev if e["name"] == "thread_name"}
    assert {"MTE2", "M", "V", "S"} <= threads
    lines = {e["args"]["line"] for e in ev if e["ph"] == "X"}
    assert any("qwen3/kernels.py:" in ln for ln in lines)
    assert {e["cat"] for e in ev if e["ph"] == "s"} == {"flag", "syncall"}
    s = trace["otherData"]
    assert s["estimate"] is True and s["bound"] in ("HBM", "cube", "vector", "waiting")
    assert s["makespan_us"] == pytest.approx(res.timeline.makespan_us, abs=1e-3)
    assert set(s["utilisation"]) >= {"AIC.M", "AIV.V", "HBM"}


def test_trace_check_rejects_broken_traces():
    good = {"traceEvents": [
        {"name": "load", "ph": "X", "ts": 0.0, "dur": 1.0, "pid": 1, "tid": 1},
        {"name": "flag", "cat": "flag", "ph": "s", "id": 1, "ts": 0.5, "pid": 1, "tid": 1},
        {"name": "flag", "cat": "flag", "ph": "f", "id": 1, "ts": 0.2, "pid": 1, "tid": 1}]}
    check_chrome_trace(good)
    for broken in ({"name": "x", "ph": "X", "ts": 0, "pid": 1, "tid": 1},  # no dur
                   {"name": "x", "ph": "Q", "ts": 0, "pid": 1},  # unknown phase
                   {"name": "x", "ph": "X", "ts": -1, "dur": 1, "pid": 1, "tid": 1}):
        with pytest.raises(AssertionError):
            check_chrome_trace({"traceEvents": [broken]})
    unpaired = {"traceEvents": good["traceEvents"][:2]}
    with pytest.raises(AssertionError):
        check_chrome_trace(unpaired)
    crossing = {"traceEvents": [
        {"name": "a", "ph": "X", "ts": 0.0, "dur": 2.0, "pid": 1, "tid": 1},
        {"name": "b", "ph": "X", "ts": 1.0, "dur": 2.0, "pid": 1, "tid": 1}]}
    with pytest.raises(AssertionError):
        check_chrome_trace(crossing)


def test_png_swimlane_only_with_matplotlib(tmp_path):
    x = torch.zeros(48 * 32, 1024)
    mt.run_jit(copy, x, torch.empty_like(x), timeline=tmp_path / "c.json")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not (tmp_path / "c.png").exists()
    else:
        assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- opt-in, errors

def test_timing_off_runs_no_model(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the timing model ran")

    monkeypatch.setattr(TimingModel, "place", boom)
    monkeypatch.setattr(TimingModel, "__init__", boom)
    x = torch.zeros(48 * 32, 1024)
    res = mt.run_jit(copy, x, torch.empty_like(x))
    assert res.timeline is None
    ck = mt.compile(copy)
    assert simulate(ck.kernel, {"x": x.numpy()}).timeline is None


def test_timeline_off_the_simulator_is_refused():
    x = torch.zeros(32, 1024)
    with pytest.raises(mt.ArgumentError, match='timeline= needs a run of the simulator') as ei:
        mt.run_jit(copy, x, torch.empty_like(x), target="cuda", timeline="t.json")
    assert 'target="sim"' in ei.value.fix
    with pytest.raises(mt.ArgumentError, match="must be a file path"):
        mt.run_jit(copy, x, torch.empty_like(x), timeline=3)


def test_timing_follows_the_machine():
    """a5's table has more HBM bandwidth per die than a2's: a copy is faster there."""
    x = torch.zeros(48 * 32 * 4, 1024)
    t = {arch: mt.run_jit(copy, x, torch.empty_like(x), compile_cfg=dict(arch=arch),
                          timeline=True).timeline.makespan_us for arch in ("a2", "a5")}
    assert t["a5"] < t["a2"]


# ---------------------------------------------------------------- tiles by the model

def test_autotune_picks_the_least_estimate_and_caches(tmp_path):
    from mixtile.runtime import autotune as A
    from tilelang_models.kernels.gemm import gemm

    x = torch.zeros(16, 2048, dtype=torch.bfloat16)
    w = torch.zeros(1024, 2048, dtype=torch.bfloat16)
    y = torch.full((16, 1024), 7.0)
    space = dict(TN=[64, 128, 256], TK=[128, 4096])  # TK=4096 overflows L0A/L0B
    cfg = dict(cache_dir=str(tmp_path))
    t = mt.autotune(gemm, x, w, y, space=space, compile_cfg=cfg, TM=16)
    assert t.from_cache == "" and len(t.estimates) == 6
    ok = [(us, c) for c, us, _ in t.estimates if us is not None]
    assert [c["TK"] for _, c in ok] == [128] * 3
    assert all(n.startswith("CapacityError") for _, us, n in t.estimates if us is None)
    assert t.consts == min(ok, key=lambda e: e[0])[1] and t.best_us == min(ok)[0]
    c0, us0, _ = t.estimates[0]
    again = mt.run_jit(gemm, x, w, y.clone(), compile_cfg=cfg, timeline=True, **c0)
    assert us0 == again.timeline.makespan_us
    assert bool(torch.all(y == 7.0))  # the search ran on copies of the outputs
    assert mt.autotune(gemm, x, w, y, space=space, compile_cfg=cfg, TM=16).from_cache == \
        "memory"
    A._memory.clear()
    disk = mt.autotune(gemm, x, w, y, space=space, compile_cfg=cfg, TM=16)
    assert disk.from_cache == "disk" and disk.consts == t.consts
    other = mt.autotune(gemm, x[:, :1024], w[:, :1024], y, space=space, compile_cfg=cfg,
                        TM=16)
    assert other.from_cache == ""  # another shape: another search


def test_autotune_errors():
    from tilelang_models.kernels.gemm import gemm

    x, w, y = torch.zeros(16, 64), torch.zeros(64, 64), torch.zeros(16, 64)
    with pytest.raises(mt.UnsupportedError, match="no timing model") as ei:
        mt.autotune(gemm, x, w, y, space=dict(TN=[64]), target="cuda")
    assert "gpu_tile_sweep" in ei.value.fix
    with pytest.raises(mt.ArgumentError, match="must name constants"):
        mt.autotune(gemm, x, w, y, space=dict(BM=[64]))


def test_decode_layer_npu_tiles_come_from_the_model():
    from tilelang_models.qwen3.config import get_config
    from tilelang_models.qwen3.decode_layer import NPU_TILE_SPACE, DecodeLayer
    from tilelang_models.qwen3.kernels import gemm_residual
    from tilelang_models.qwen3.weights import random_weights

    cfg = get_config("tiny")
    layer = DecodeLayer(cfg, random_weights(cfg), progress=False)
    h, i = cfg.hidden_size, cfg.intermediate_size
    z = lambda *s: torch.zeros(*s, dtype=torch.bfloat16)  # noqa: E731
    got = layer.gemm_tiles(3)["down"]
    want = mt.autotune(gemm_residual, z(3, i), z(h, i), z(3, h), z(3, h),
                       space=NPU_TILE_SPACE, TM=16)
    assert want.from_cache == "memory"  # the layer ran this very search
    assert got == want.consts
    pinned = DecodeLayer(cfg, random_weights(cfg), progress=False,
                         tiles=dict(down=dict(TM=16, TN=32, TK=32)))
    assert pinned.gemm_tiles(3)["down"] == dict(TM=16, TN=32, TK=32)


def test_layer_cli_writes_one_trace_of_the_five_kernels(tmp_path, capsys):
    from tilelang_models.qwen3.__main__ import main

    path = tmp_path / "layer.json"
    assert main(["--config", "tiny", "--batch", "2", "--seq", "40", "--timeline",
                 str(path)]) == 0
    trace = json.loads(path.read_text())
    check_chrome_trace(trace)
    kernels = trace["otherData"]["kernels"]
    assert [k["kernel"] for k in kernels] == ["rmsnorm_gemm", "fa_fused", "gemm_residual",
                                              "rmsnorm_swiglu", "gemm_residual"]
    labels = {e["args"]["name"].split("(")[1] for e in trace["traceEvents"]
              if e["name"] == "process_name"}
    assert "0: rmsnorm_gemm)" in labels and "4: gemm_residual)" in labels
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["estimated_us"] == pytest.approx(sum(k["makespan_us"] for k in kernels),
                                                abs=0.05)
    assert out["estimated_us"] == pytest.approx(trace["otherData"]["makespan_us"], abs=0.05)
