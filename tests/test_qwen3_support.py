"""Support code of the Qwen3 decode-layer model: configs, safetensors / HF checkpoints,
the paged KV cache and the plain-torch golden (checked against an independent per-head
implementation written below)."""
import dataclasses
import json
import math
import os

import pytest
import torch

from tilelang_models.qwen3.config import CONFIGS, Qwen3Config, get_config
from tilelang_models.qwen3.paged import GARBAGE, gather_kv, make_paged_cache
from tilelang_models.qwen3.reference import decode_layer_ref, rope_cos_sin
from tilelang_models.qwen3.weights import (
    LayerWeights,
    expected_shapes,
    hf_names,
    load_hf_layer,
    load_safetensors,
    random_weights,
    safetensors_header,
    save_hf_checkpoint,
    save_safetensors,
)

TINY = CONFIGS["tiny"]

# ----------------------------------------------------------------------------- configs


def test_presets():
    c = get_config("14b")
    assert (c.hidden_size, c.intermediate_size, c.num_attention_heads,
            c.num_key_value_heads, c.head_dim) == (5120, 17408, 40, 8, 128)
    assert (c.q_size, c.kv_size, c.group) == (5120, 1024, 5)
    assert c.rms_norm_eps == 1e-6 and c.rope_theta == 1e6
    assert get_config("Qwen3-8B") is CONFIGS["8b"]
    assert get_config("0.6b").q_size == 2048
    t = get_config("tiny")
    assert (t.hidden_size, t.intermediate_size, t.num_attention_heads,
            t.num_key_value_heads, t.head_dim, t.group) == (256, 512, 4, 2, 64, 2)
    with pytest.raises(ValueError, match="unknown Qwen3 config 'nope'"):
        get_config("nope")


def test_config_from_json(tmp_path):
    d = {"model_type": "qwen3", "hidden_size": 512, "intermediate_size": 1024,
         "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 32,
         "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "num_hidden_layers": 2}
    (tmp_path / "config.json").write_text(json.dumps(d))
    for arg in (tmp_path, tmp_path / "config.json", str(tmp_path)):
        c = get_config(arg)
        assert (c.hidden_size, c.intermediate_size, c.num_attention_heads,
                c.num_key_value_heads, c.head_dim) == (512, 1024, 8, 4, 32)
        assert c.rms_norm_eps == 1e-5 and c.rope_theta == 1e4 and c.group == 2
    d.pop("head_dim")
    (tmp_path / "config.json").write_text(json.dumps(d))
    assert get_config(tmp_path).head_dim == 64  # hidden / heads
    d.pop("rope_theta")
    (tmp_path / "config.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="missing field.*rope_theta"):
        get_config(tmp_path)
    with pytest.raises(ValueError, match="without a config.json"):
        get_config(tmp_path / "..")
    with pytest.raises(ValueError, match="not a multiple"):
        Qwen3Config("bad", 64, 64, 3, 2, 16, 1e-6, 1e6)


# ----------------------------------------------------------------------------- safetensors


def test_safetensors_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    ts = {
        "a.bf16": torch.randn(3, 5, generator=g).bfloat16(),
        "b.f32": torch.randn(7, generator=g),
        "c.i32": torch.randint(-100, 100, (2, 3, 4), generator=g, dtype=torch.int32),
        "d.f16": torch.randn(4, 1, generator=g).half(),
        "e.i64": torch.arange(5),
        "f.empty": torch.empty(0, 3),
        "g.scalar": torch.tensor(2.5),
        "h.view": torch.randn(6, 6, generator=g)[:, 1:4],  # non-contiguous
    }
    p = tmp_path / "x.safetensors"
    save_safetensors(p, ts)
    raw = p.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert (8 + n) % 8 == 0
    header = json.loads(raw[8:8 + n])
    assert header["a.bf16"]["dtype"] == "BF16" and header["c.i32"]["shape"] == [2, 3, 4]
    assert header["__metadata__"] == {"format": "pt"}
    for mmap in (False, True):
        back = load_safetensors(p, mmap=mmap)
        assert set(back) == set(ts)
        for k, t in ts.items():
            assert back[k].dtype == t.dtype and back[k].shape == t.shape
            assert torch.equal(back[k], t), k
    sub = load_safetensors(p, ["c.i32", "a.bf16"])
    assert list(sub) == ["c.i32", "a.bf16"]
    assert torch.equal(sub["a.bf16"], ts["a.bf16"])
    with pytest.raises(KeyError, match="zzz"):
        load_safetensors(p, ["a.bf16", "zzz"])
    assert safetensors_header(p)[1] == 8 + n


def test_safetensors_reads_hand_built_file(tmp_path):
    """A file laid out by hand (other tensor order, unpadded header, metadata-free)."""
    a = torch.tensor([1.0, -2.0, 3.5], dtype=torch.bfloat16)
    b = torch.tensor([[7, 8], [9, 10]], dtype=torch.int32)
    ab, bb = a.view(torch.int16).numpy().tobytes(), b.numpy().tobytes()
    hdr = {"B": {"dtype": "I32", "shape": [2, 2], "data_offsets": [0, len(bb)]},
           "A": {"dtype": "BF16", "shape": [3], "data_offsets": [len(bb), len(bb) + len(ab)]}}
    hb = json.dumps(hdr).encode()
    p = tmp_path / "hand.safetensors"
    p.write_bytes(len(hb).to_bytes(8, "little") + hb + bb + ab)
    got = load_safetensors(p)
    assert torch.equal(got["A"], a) and torch.equal(got["B"], b)
    hdr["A"]["data_offsets"] = [len(bb), len(bb) + 4]
    hb = json.dumps(hdr).encode()
    p.write_bytes(len(hb).to_bytes(8, "little") + hb + bb + ab)
    with pytest.raises(ValueError, match="'A' has data_offsets"):
        load_safetensors(p, ["A"])


# ----------------------------------------------------------------------------- weights / HF


def test_random_weights():
    w = random_weights(TINY, seed=3)
    w.check(TINY)
    assert torch.equal(w.q_proj, random_weights(TINY, seed=3).q_proj)
    assert not torch.equal(w.q_proj, random_weights(TINY, seed=4).q_proj)
    assert abs(w.gate_proj.float().std().item() - 1 / 16) < 0.005  # 1/sqrt(256)
    assert abs(w.down_proj.float().std().item() - 1 / math.sqrt(512)) < 0.005
    assert abs(w.q_norm.float().mean().item() - 1) < 0.05
    assert w.qkv_proj().shape == (256 + 2 * 128, 256)
    assert w.gate_up_proj().shape == (1024, 256)


def _assert_layers_equal(a: LayerWeights, b: LayerWeights):
    """Every tensor of b is bf16 and bit-equal to a's."""
    for (name, x), (_, y) in zip(a.items(), b.items()):
        assert y.dtype == torch.bfloat16 and torch.equal(x, y), name


@pytest.mark.parametrize("shards", [1, 3])
def test_hf_checkpoint_round_trip(tmp_path, shards):
    layers = {0: random_weights(TINY, 0), 1: random_weights(TINY, 1)}
    save_hf_checkpoint(tmp_path, TINY, layers, shards=shards)
    cfgj = json.loads((tmp_path / "config.json").read_text())
    assert cfgj["model_type"] == "qwen3" and cfgj["num_hidden_layers"] == 2
    assert get_config(tmp_path) == dataclasses.replace(TINY, name=tmp_path.name)
    files = sorted(os.listdir(tmp_path))
    if shards == 1:
        assert "model.safetensors" in files
        assert "model.safetensors.index.json" not in files
    else:
        idx = json.loads((tmp_path / "model.safetensors.index.json").read_text())
        wm = idx["weight_map"]
        names = set(hf_names(0).values()) | set(hf_names(1).values())
        assert set(wm) == names
        assert sorted(set(wm.values())) == [f"model-0000{k}-of-00003.safetensors"
                                            for k in (1, 2, 3)]
        assert "model.layers.1.mlp.down_proj.weight" in wm
        assert len({wm[n] for n in hf_names(0).values()}) >= 2  # layer 0 spans shards
        assert idx["metadata"]["total_size"] == sum(
            t.numel() * 2 for w in layers.values() for _, t in w.items())
    for i, w in layers.items():
        _assert_layers_equal(w, load_hf_layer(tmp_path, i))
        _assert_layers_equal(w, load_hf_layer(tmp_path, i, cfg=TINY))
    with pytest.raises(KeyError, match="layer 2"):
        load_hf_layer(tmp_path, 2)


def test_hf_layer_f32_is_converted(tmp_path):
    w = random_weights(TINY, 0)
    save_hf_checkpoint(tmp_path, TINY, {0: w})
    names = hf_names(0)
    save_safetensors(tmp_path / "model.safetensors",
                     {names[f]: t.float() for f, t in w.items()})
    _assert_layers_equal(w, load_hf_layer(tmp_path, 0))


def test_hf_shape_mismatch(tmp_path):
    save_hf_checkpoint(tmp_path, TINY, {0: random_weights(TINY, 0)})
    other = dataclasses.replace(TINY, intermediate_size=384)
    msg = r"model\.layers\.0\.mlp\.gate_proj\.weight: expected shape \[384, 256\].*got \[512, 256\]"
    with pytest.raises(ValueError, match=msg):
        load_hf_layer(tmp_path, 0, cfg=other)
    assert expected_shapes(other)["down_proj"] == (256, 384)


# ----------------------------------------------------------------------------- paged cache


def test_paged_cache_properties():
    lens, bs = [1, 5, 17, 33, 8], 4
    k, v, table, sl = make_paged_cache(TINY, lens, bs, seed=7)
    nb = 1 + sum(math.ceil(L / bs) for L in lens) + 3
    assert k.shape == v.shape == (nb, bs, 2, 64) and k.dtype == torch.bfloat16
    assert table.shape == (5, 9) and table.dtype == torch.int32
    assert sl.dtype == torch.int32 and sl.tolist() == lens
    used = []
    for b, L in enumerate(lens):
        n = math.ceil(L / bs)
        row = table[b].tolist()
        assert all(r == 0 for r in row[n:])
        assert all(row[i + 1] != row[i] + 1 for i in range(n - 1))  # never contiguous
        used += row[:n]
    assert len(used) == len(set(used)) and 0 not in used
    assert sorted(used) != list(range(1, len(used) + 1)) or len(used) < 3
    valid = torch.zeros(nb, bs, dtype=torch.bool)
    for b, L in enumerate(lens):
        for t in range(L - 1):
            valid[table[b, t // bs], t % bs] = True
    for c in (k, v):
        assert (c[~valid] == GARBAGE).all()  # new-token slot, tails, null + extra blocks
        assert c[valid].abs().max() < 10 and c[valid].float().std() > 0.5
    assert not torch.equal(k[valid], v[valid])
    k2, _, t2, _ = make_paged_cache(TINY, lens, bs, seed=7)
    assert torch.equal(k, k2) and torch.equal(table, t2)
    # gather_kv returns the tokens in order
    b, L = 3, 33
    g = gather_kv(k, table, b, L)
    assert g.shape == (L, 2, 64)
    for t in range(L):
        assert torch.equal(g[t], k[table[b, t // bs], t % bs])


# ----------------------------------------------------------------------------- reference


def _hf_style_decode(cfg, w, x, k_cache, v_cache, block_table, seq_lens):
    """Independent golden: token by token, head by head, walking the block table by hand.
    Returns (out, new_k [B, kv, D], new_v [B, kv, D]); does not touch the caches."""
    eps, D, bs = cfg.rms_norm_eps, cfg.head_dim, k_cache.shape[1]
    half = D // 2

    def norm(t, weight):
        var = t.pow(2).mean(-1, keepdim=True)
        return t * torch.rsqrt(var + eps) * weight.float()

    def rope(t, p):  # pairwise form of rotate-half on the two halves
        i = torch.arange(half, dtype=torch.float64)
        ang = (p * cfg.rope_theta ** (-2 * i / D)).float()
        c, s = ang.cos(), ang.sin()
        x1, x2 = t[:half], t[half:]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s])

    bf = torch.bfloat16
    outs, new_ks, new_vs = [], [], []
    for b in range(x.shape[0]):
        L = int(seq_lens[b])
        xb = x[b].float()
        h = norm(xb, w.input_layernorm).to(bf).float()
        q = (h @ w.q_proj.float().T).to(bf).float()
        k = (h @ w.k_proj.float().T).to(bf).float()
        v = (h @ w.v_proj.float().T).to(bf)
        qs, ks = [], []
        for hq in range(cfg.num_attention_heads):
            qs.append(rope(norm(q[hq * D:(hq + 1) * D], w.q_norm), L - 1).to(bf))
        for hk in range(cfg.num_key_value_heads):
            ks.append(rope(norm(k[hk * D:(hk + 1) * D], w.k_norm), L - 1).to(bf))
        new_k = torch.stack(ks)
        new_v = v.view(cfg.num_key_value_heads, D)
        new_ks.append(new_k)
        new_vs.append(new_v)
        o = []
        for hq in range(cfg.num_attention_heads):
            hk = hq // cfg.group
            Ks, Vs = [], []
            for t in range(L - 1):
                blk, off = int(block_table[b, t // bs]), t % bs
                Ks.append(k_cache[blk, off, hk])
                Vs.append(v_cache[blk, off, hk])
            Ks.append(new_k[hk])
            Vs.append(new_v[hk])
            K, V = torch.stack(Ks).float(), torch.stack(Vs).float()
            sc = (K @ qs[hq].float()) / math.sqrt(D)
            e = (sc - sc.max()).exp()
            o.append(((e / e.sum()) @ V).to(bf))
        o = torch.cat(o).float()
        h2 = (o @ w.o_proj.float().T + xb).to(bf).float()
        h3 = norm(h2, w.post_attention_layernorm).to(bf).float()
        gt, up = h3 @ w.gate_proj.float().T, h3 @ w.up_proj.float().T
        a = (gt * torch.sigmoid(gt) * up).to(bf).float()
        outs.append((a @ w.down_proj.float().T + h2).to(bf))
    return torch.stack(outs), torch.stack(new_ks), torch.stack(new_vs)


def _setup(lens=(5, 1, 37), bs=8, seed=0):
    """Tiny-config weights, input and a paged cache with ragged sequences."""
    w = random_weights(TINY, seed)
    k, v, table, sl = make_paged_cache(TINY, list(lens), bs, seed=seed + 1)
    x = torch.randn(len(lens), TINY.hidden_size,
                    generator=torch.Generator().manual_seed(seed + 2)).bfloat16()
    return w, x, k, v, table, sl


def _close(a, b):
    """Equal up to an occasional bf16 rounding flip at an intermediate storage point."""
    torch.testing.assert_close(a.float(), b.float(), atol=2e-2, rtol=2e-2)
    assert (a.float() - b.float()).abs().mean() < 2e-3


def test_reference_matches_per_head_loop():
    w, x, k, v, table, sl = _setup()
    k0, v0 = k.clone(), v.clone()
    exp, new_k, new_v = _hf_style_decode(TINY, w, x, k0, v0, table, sl)
    out = decode_layer_ref(TINY, w, x, k, v, table, sl)
    assert out.dtype == torch.bfloat16 and out.shape == x.shape
    _close(out, exp)
    assert out.float().std() > 0.3 and torch.isfinite(out.float()).all()
    bs = k.shape[1]
    for b, L in enumerate(sl.tolist()):
        blk, off = int(table[b, (L - 1) // bs]), (L - 1) % bs
        _close(k[blk, off], new_k[b])
        assert torch.equal(v[blk, off], new_v[b])  # v is the bf16 projection, no extra math


def test_reference_writes_only_the_new_slot():
    w, x, k, v, table, sl = _setup(lens=(9, 16, 17, 1), bs=4, seed=5)
    k0, v0 = k.clone(), v.clone()
    decode_layer_ref(TINY, w, x, k, v, table, sl)
    written = torch.zeros(k.shape[:2], dtype=torch.bool)
    for b, L in enumerate(sl.tolist()):
        written[table[b, (L - 1) // 4], (L - 1) % 4] = True
    for c, c0 in ((k, k0), (v, v0)):
        assert torch.equal(c[~written], c0[~written])
        assert (c0[written] == GARBAGE).all() and (c[written].abs() < 100).all()


def test_reference_gqa_grouping():
    """Query heads 2h and 2h+1 read kv head h: with o_proj = I and down_proj = 0 the output
    slice of head hq depends on the cache only through kv head hq // 2."""
    w, x, k, v, table, sl = _setup(lens=(12, 7), bs=4, seed=9)
    w = dataclasses.replace(w, o_proj=torch.eye(TINY.hidden_size, dtype=torch.bfloat16),
                            down_proj=torch.zeros_like(w.down_proj))
    D = TINY.head_dim
    base = decode_layer_ref(TINY, w, x, k.clone(), v.clone(), table, sl)
    for which in ("k", "v"):
        for hk in range(TINY.num_key_value_heads):
            k2, v2 = k.clone(), v.clone()
            c = k2 if which == "k" else v2
            c[:, :, hk] = torch.where(c[:, :, hk] == GARBAGE, c[:, :, hk],
                                      -c[:, :, hk].flip(-1))
            out = decode_layer_ref(TINY, w, x, k2, v2, table, sl)
            for hq in range(TINY.num_attention_heads):
                same = torch.equal(out[:, hq * D:(hq + 1) * D], base[:, hq * D:(hq + 1) * D])
                assert same == (hq // TINY.group != hk), (which, hk, hq)


def test_rope_cos_sin():
    cos, sin = rope_cos_sin(TINY, [0, 3, 100])
    assert cos.shape == sin.shape == (3, 64)
    assert torch.equal(cos[0], torch.ones(64)) and torch.equal(sin[0], torch.zeros(64))
    assert torch.equal(cos[:, :32], cos[:, 32:])
    torch.testing.assert_close(sin[1, 1], torch.tensor(math.sin(3 * 1e6 ** (-2 / 64))))
