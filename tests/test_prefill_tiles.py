"""The prefill layer's GEMM tiles on the NPU targets: picked by the timing model
(mt.autotune) per token bucket, still matching the torch golden, overridable with
tiles=, and fitting a2 and a5 (tilelang_models/qwen3/prefill_layer.py)."""
import itertools

import pytest
import torch
from test_model import _rel  # a sibling test module (tests/ is on the path)

import mixtile as mt
from tilelang_models.qwen3.config import get_config
from tilelang_models.qwen3.kernels import gemm_residual, rmsnorm_gemm, rmsnorm_swiglu
from tilelang_models.qwen3.paged import make_paged_cache
from tilelang_models.qwen3.prefill_layer import (
    GPU_TILES,
    NPU_TILE_SPACE,
    PrefillLayer,
    npu_tile_space,
    token_bucket,
)
from tilelang_models.qwen3.reference import prefill_layer_ref
from tilelang_models.qwen3.weights import random_weights


def test_token_bucket_and_space():
    assert [token_bucket(t) for t in (1, 16, 17, 64, 65, 300, 512, 513, 4096)] == \
        [16, 16, 32, 64, 128, 512, 512, 512, 512]
    assert [npu_tile_space(m)["TM"] for m in (16, 64, 128, 512)] == \
        [(64,), (64,), (64, 128), (64, 128, 256)]


def test_picked_tiles_are_autotune_results():
    """Each projection's tiles are mt.autotune's pick for its kernel on zero tensors of
    the layer's shapes at the bucket's M; another token count of the bucket reuses them."""
    cfg = get_config("tiny")
    layer = PrefillLayer(cfg, random_weights(cfg, 0), compile_cfg=dict(arch="a5"))
    t = layer.gemm_tiles(40)
    m, h, i, q = 64, cfg.hidden_size, cfg.intermediate_size, cfg.q_size
    n = q + 2 * cfg.kv_size
    eps = float(cfg.rms_norm_eps)

    def z(*s):
        return torch.zeros(*s, dtype=torch.bfloat16)

    units = {"qkv": (rmsnorm_gemm, (z(m, h), z(h), z(n, h), z(m, n), eps), {}),
             "o_proj": (gemm_residual, (z(m, q), z(h, q), z(m, h), z(m, h)), {}),
             "mlp_up": (rmsnorm_swiglu, (z(m, h), z(h), z(i, h), z(i, h), z(m, i), eps), {}),
             "down": (gemm_residual, (z(m, i), z(h, i), z(m, h), z(m, h)), {})}
    for name, (kern, args, fixed) in units.items():
        best = mt.autotune(kern, *args, space=npu_tile_space(m), target="sim",
                           compile_cfg=dict(arch="a5"), **fixed)
        assert t[name] == best.consts, name
        assert best.from_cache == "memory"  # the layer ran this very search
        assert sum(us is not None for _, us, _ in best.estimates) > 1
    assert layer.gemm_tiles(33) == t and list(layer._npu_tiles) == [64]


def test_tiles_override_and_cuda_keep_their_tiles():
    cfg = get_config("tiny")
    w = random_weights(cfg, 0)
    mine = dict(TM=128, TN=256, TK=64)
    layer = PrefillLayer(cfg, w, tiles={"o_proj": mine, "attention": dict(TM=32)})
    t = layer.gemm_tiles(20)
    assert t["o_proj"] == mine  # the override wins
    x, cu = torch.zeros(20, cfg.hidden_size).bfloat16(), torch.tensor([0, 20]).int()
    kc, vc, bt, _ = make_paged_cache(cfg, [20], 16, 0, cached=[0])
    steps = {s[0]: s[3] for s in layer.steps(x, cu, torch.zeros(1).int(), kc, vc, bt)}
    assert steps["o_proj"] == mine and steps["attention"]["TM"] == 32
    assert steps["qkv"] == t["qkv"]
    cuda = PrefillLayer.__new__(PrefillLayer)  # no GPU needed to read the CUDA tiles
    cuda.target, cuda.tiles = "cuda", {"down": dict(TK=128)}
    g = cuda.gemm_tiles(4096)
    assert g["qkv"] == GPU_TILES and g["down"] == dict(GPU_TILES, TK=128)


def test_tuned_layer_matches_reference():
    """The layer with the timing model's tiles (a5; two M tiles of 64) against the torch
    golden on the simulator."""
    cfg = get_config("tiny")
    w = random_weights(cfg, 1)
    new, ctx = [5, 70], [9, 0]
    kc, vc, bt, _ = make_paged_cache(cfg, [c + n for c, n in zip(ctx, new)], 16, 2,
                                     cached=ctx)
    x = torch.randn(sum(new), cfg.hidden_size, generator=torch.Generator().manual_seed(3))
    x = x.bfloat16()
    cu = torch.tensor([0, 5, 75], dtype=torch.int32)
    cl = torch.tensor(ctx, dtype=torch.int32)
    kr, vr = kc.clone(), vc.clone()
    want = prefill_layer_ref(cfg, w, x, cu, cl, kr, vr, bt)
    layer = PrefillLayer(cfg, w, compile_cfg=dict(arch="a5"))
    got = layer(x, cu, cl, kc, vc, bt)
    assert layer.gemm_tiles(75) == layer._npu_tiles[128]
    assert _rel(got, want) < 2e-2
    assert _rel(kc, kr) < 1e-2 and _rel(vc, vr) < 1e-2


@pytest.mark.parametrize("arch", ["a2", "a5"])
def test_tuned_tiles_fit_the_npu(arch):
    """The tiles the search picks compile for target npu with the arch (Ascend C), and
    so does every candidate of NPU_TILE_SPACE that the simulator's compile accepts (the
    search skips the others), whatever the shapes make it pick."""
    cfg = get_config("tiny")
    layer = PrefillLayer(cfg, random_weights(cfg, 0), compile_cfg=dict(arch=arch))
    t = layer.gemm_tiles(100)
    kerns = {"qkv": rmsnorm_gemm, "o_proj": gemm_residual, "mlp_up": rmsnorm_swiglu,
             "down": gemm_residual}
    cfg_a = dict(arch=arch)
    for name, consts in t.items():
        assert mt.compile(kerns[name], cfg_a, target="npu", **consts).ascendc.source
    names = list(NPU_TILE_SPACE)
    for kern, fixed in ((rmsnorm_gemm, {}), (gemm_residual, {}), (rmsnorm_swiglu, {})):
        fits = 0
        for vals in itertools.product(*NPU_TILE_SPACE.values()):
            consts = dict(zip(names, vals), **fixed)
            try:
                mt.compile(kern, cfg_a, target="sim", **consts)
            except mt.MixtileError:
                continue
            fits += 1
            assert mt.compile(kern, cfg_a, target="npu", **consts).ascendc.source
        assert fits >= 4
