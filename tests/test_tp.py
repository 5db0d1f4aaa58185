"""Tensor parallelism (tilelang_models/qwen3/tp.py) on gloo with the simulator: two ranks
started by torchrun (--standalone: a free port) against one device.

Run as a script under torchrun, this file is the ranks' side of the checks:
    torchrun --standalone --nproc-per-node 2 tests/test_tp.py checks OUTDIR
    torchrun --standalone --nproc-per-node 2 tests/test_tp.py fail OUTDIR
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import mixtile as mt
from tilelang_models.qwen3 import tp as T
from tilelang_models.qwen3.config import Qwen3Config, get_config

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 240  # a whole torchrun launch; ranks that hang are killed with their group


def _torchrun(args: list[str], tmp_path: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    """Run `torchrun --standalone --nproc-per-node nproc ARGS` from the repository root
    (PYTHONPATH set for the ranks); on a timeout the whole process group is killed and
    the test fails with the output so far."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", TORCHELASTIC_ERROR_FILE=str(tmp_path / "error.json"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", *args]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"{' '.join(cmd)}: no result after {TIMEOUT_S} s\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def _ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if r.returncode:
        pytest.fail(f"{' '.join(r.args)} exited {r.returncode}\n--- stdout\n{r.stdout[-2000:]}"
                    f"\n--- stderr\n{r.stderr[-4000:]}")
    return r


def _rel(got, want) -> float:
    return float((got.float() - want.float()).abs().max() / want.float().abs().max())


# ------------------------------------------------------------------ one process

def test_bad_tp_size_is_refused():
    tiny = get_config("tiny")  # 2 KV heads, intermediate 512
    with pytest.raises(mt.ArgumentError, match=r"size 3 does not divide num_key_value_heads "
                                               r"2(.|\n)*one of \[1, 2\]"):
        T.tp_config(tiny, 3)
    odd = Qwen3Config("odd", 256, 510, 8, 4, 32, 1e-6, 1e6)
    with pytest.raises(mt.ArgumentError, match=r"size 4 does not divide intermediate_size "
                                               r"510(.|\n)*one of \[1, 2\]"):
        T.tp_config(odd, 4)
    with pytest.raises(mt.ArgumentError, match="int >= 1"):
        T.tp_config(tiny, 0)
    with pytest.raises(mt.ArgumentError, match="vocabulary of 3 rows over 4 ranks"):
        T.vocab_range(3, 0, 4)
    # the CLI refuses before loading anything: a size the config cannot take, then a size
    # without its processes
    from tilelang_models.qwen3.__main__ import main
    with pytest.raises(mt.ArgumentError, match="size 4 does not divide num_key_value_heads 2"):
        main(["--config", "tiny", "--tp", "4"])
    with pytest.raises(mt.ArgumentError, match="--tp 2 with 1 process(.|\n)*torchrun "
                                               "--nproc-per-node 2"):
        main(["--config", "tiny", "--tp", "2"])


def test_tp_config_and_vocab_split():
    r = T.tp_config(get_config("14b"), 8)
    assert (r.num_attention_heads, r.num_key_value_heads, r.intermediate_size,
            r.hidden_size, r.head_dim) == (5, 1, 2176, 5120, 128)
    parts = [T.vocab_range(1001, k, 3) for k in range(3)]
    assert parts == [(0, 334), (334, 334), (668, 333)]


def test_shards_of_a_checkpoint(tmp_path):
    """load_hf_model_tp (one layer at a time) gives each rank the share that
    shard_model_weights cuts from the whole model; a ragged vocabulary (11 rows: 6 + 5)."""
    from tilelang_models.qwen3.model import get_model_config, load_hf_model
    from tilelang_models.qwen3.weights import (
        _hf_config_dict,
        hf_names,
        random_weights,
        save_safetensors,
    )
    cfg = get_config("tiny")
    g = torch.Generator().manual_seed(0)
    named = {n: t for i in range(2)
             for (f, t), n in zip(random_weights(cfg, i).items(), hf_names(i).values())}
    for n, shape in (("model.embed_tokens.weight", (11, 256)), ("lm_head.weight", (11, 256)),
                     ("model.norm.weight", (256,))):
        named[n] = torch.randn(shape, generator=g).bfloat16()
    save_safetensors(tmp_path / "model.safetensors", named)
    (tmp_path / "config.json").write_text(json.dumps(
        dict(_hf_config_dict(cfg, 2), vocab_size=11, tie_word_embeddings=False)))
    mcfg = get_model_config(tmp_path)
    full = load_hf_model(tmp_path, mcfg)
    for r in range(2):
        tp = T.TPGroup(r, 2)
        got, want = T.load_hf_model_tp(tmp_path, mcfg, tp), T.shard_model_weights(full, mcfg, tp)
        assert got.lm_head.shape == (6 - r, 256)
        assert torch.equal(got.lm_head, named["lm_head.weight"][6 * r:6 * r + 6 - r])
        assert torch.equal(got.embed, want.embed) and torch.equal(got.norm, want.norm)
        for lg, lw in zip(got.layers, want.layers):
            for (name, a), (_, b) in zip(lg.items(), lw.items()):
                assert torch.equal(a, b), (r, name)
        assert got.layers[0].q_proj.shape == (128, 256)  # 2 of 4 heads of 64


def test_lm_head_argmax_max_lowers_for_every_backend():
    """The new head kernel (ids and row maxima) compiles to Triton and Ascend C too; its
    values are checked on the simulator by the ranks below (test_tp_argmax_*)."""
    from tilelang_models.qwen3 import head as Hd
    for target, consts, store in (("cuda", dict(NT=4, GRID=8), "tl.store(vals "),
                                  ("npu", dict(NT=4), "DataCopyPad(valsGm[")):
        code = mt.compile(Hd.lm_head_argmax_max, target=target, **consts).code
        assert store in code, target  # the row maxima leave the kernel


def test_tp_gpu_benchmark_plan(capsys):
    """benchmarks/tp_gpu.py imports and computes its floors' bytes without a GPU: a rank's
    share of Qwen3-32B at TP=8 (64 layers of 8 heads, 1 KV head, 3200 MLP columns, and
    18992 LM head rows)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("tp_gpu", ROOT / "benchmarks" / "tp_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(["--plan", "--configs", "32b", "--tp", "8", "--batches", "32", "--ctx", "4096"])
    row = json.loads(capsys.readouterr().out.strip())
    H, d = 5120, 128
    layer = H * (8 * d + 2 * d) + 8 * d * H + 3 * H * 3200
    assert row["rank_weights_GB"] == round((64 * layer + 18992 * H) * 2 / 1e9, 3)
    assert row["rank_kv_GB"] == round(2 * 32 * 4096 * 64 * d * 2 / 1e9, 3)


# ------------------------------------------------------------------ the ranks' side

def _tiny_inputs(cfg, seed):
    from tilelang_models.qwen3.paged import make_paged_cache
    kc, vc, bt, sl = make_paged_cache(cfg, [70, 33, 1], 16, seed)
    x = torch.randn(3, cfg.hidden_size, generator=torch.Generator().manual_seed(seed)
                    ).bfloat16()
    return x, kc, vc, bt, sl


def _check_layers(tp, res):
    """Decode and prefill layers: TP=2 against TP=1 (one device, the same kernels) and
    the fp32 reference."""
    from tilelang_models.qwen3.decode_layer import DecodeLayer
    from tilelang_models.qwen3.prefill_layer import PrefillLayer
    from tilelang_models.qwen3.reference import decode_layer_ref, prefill_layer_ref
    from tilelang_models.qwen3.weights import random_weights
    cfg = get_config("tiny")
    rc = T.tp_config(cfg, tp.size)
    w = random_weights(cfg, 3)
    ws = T.shard_layer(w, cfg, tp.rank, tp.size)
    kvh = slice(tp.rank * rc.num_key_value_heads, (tp.rank + 1) * rc.num_key_value_heads)
    # decode, two steps in a row (the second reads the first's cache writes)
    x, kc, vc, bt, sl = _tiny_inputs(cfg, 5)
    k1, v1 = kc.clone(), vc.clone()
    kr, vr = kc.clone(), vc.clone()
    k2, v2 = kc[:, :, kvh].contiguous(), vc[:, :, kvh].contiguous()
    one = DecodeLayer(cfg, w, progress=False)
    par = T.TPDecodeLayer(DecodeLayer(rc, ws, progress=False, norm_stats=False), tp)
    for step in range(2):
        want = decode_layer_ref(cfg, w, x, kr, vr, bt, sl)
        got1 = one(x, k1, v1, bt, sl).clone()
        got2 = par(x, k2, v2, bt, sl).clone()
        res[f"decode{step}"] = dict(
            tp_vs_tp1=_rel(got2, got1), tp1_vs_ref=_rel(got1, want), tp_vs_ref=_rel(got2, want),
            tp_vs_tp1_abs=float((got2.float() - got1.float()).abs().max()),
            out_ulp_frac=float((got2 != got1).float().mean()),
            k_equal=bool(torch.equal(k2, k1[:, :, kvh])),
            v_equal=bool(torch.equal(v2, v1[:, :, kvh])))
        x = got1
        sl = sl + 1
    # prefill: new tokens after cached ones
    from tilelang_models.qwen3.paged import make_paged_cache
    new, ctx = [5, 17], [0, 9]
    kc, vc, bt, _ = make_paged_cache(cfg, [c + n for c, n in zip(ctx, new)], 16, 6, cached=ctx)
    xp = torch.randn(sum(new), cfg.hidden_size, generator=torch.Generator().manual_seed(7)
                     ).bfloat16()
    cu = torch.tensor([0, 5, 22], dtype=torch.int32)
    cl = torch.tensor(ctx, dtype=torch.int32)
    kr, vr = kc.clone(), vc.clone()
    want = prefill_layer_ref(cfg, w, xp, cu, cl, kr, vr, bt)
    k1, v1 = kc.clone(), vc.clone()
    got1 = PrefillLayer(cfg, w)(xp, cu, cl, k1, v1, bt)
    k2, v2 = kc[:, :, kvh].contiguous(), vc[:, :, kvh].contiguous()
    got2 = T.TPPrefillLayer(PrefillLayer(rc, ws), tp)(xp, cu, cl, k2, v2, bt)
    res["prefill"] = dict(tp_vs_tp1=_rel(got2, got1), tp_vs_ref=_rel(got2, want),
                          tp1_vs_ref=_rel(got1, want),
                          tp_vs_tp1_abs=float((got2.float() - got1.float()).abs().max()),
                          out_ulp_frac=float((got2 != got1).float().mean()),
                          k_equal=bool(torch.equal(k2, k1[:, :, kvh])),
                          v_equal=bool(torch.equal(v2, v1[:, :, kvh])))


def _check_argmax(tp, res):
    """dist_argmax on crafted ties across the ranks' shards (V = 1001 over 2: rows 0..500
    and 501..1000), then the LM head kernel with equal rows in both shards."""
    from tilelang_models.qwen3 import head as Hd
    V = 1001
    start, n = T.vocab_range(V, tp.rank, tp.size)
    full = torch.randn(6, V, generator=torch.Generator().manual_seed(1))
    full[0, 7] = full[0, 600] = 9.0                # tie across ranks: rank 0's wins
    full[1, 400] = full[1, 501] = 9.0              # rank 1's local index 0 < rank 0's 400
    full[2, 700] = full[2, 1000] = 9.0             # a tie inside rank 1
    full[3, 500] = full[3, 501] = 9.0              # at the shard boundary
    full[4, :] = -float("inf")                     # all -inf: index 0
    full[5, :] = 1.0                               # everything ties: index 0
    part = full[:, start:start + n]
    vals, idx = part.max(-1)                       # torch: the first index of the max
    got = T.dist_argmax(vals, idx.to(torch.int32), start, tp)
    res["argmax_torch"] = dict(got=got.tolist(), want=full.argmax(-1).tolist())
    # through lm_head_argmax_max: w rows 3 and 900 equal (different ranks), and rows 450
    # and 520 (rank 1's local index 19 < rank 0's 450)
    g = torch.Generator().manual_seed(2)
    H = 256
    w = (torch.randn(V, H, generator=g) / 16).bfloat16()
    w[900], w[520] = w[3], w[450]
    x = torch.randn(3, H, generator=g).bfloat16()
    x[0], x[1] = (w[3].float() * 50).bfloat16(), (w[450].float() * 50).bfloat16()
    nw = torch.ones(H, dtype=torch.bfloat16)
    ids, vals = torch.zeros(3, dtype=torch.int32), torch.zeros(3)
    mt.run_jit(Hd.lm_head_argmax_max, x, nw, w[start:start + n].contiguous(), ids, vals, 1e-6,
               NT=-(-n // 128))
    got = T.dist_argmax(vals, ids, start, tp)
    lg = torch.zeros(3, V)
    one = torch.zeros(3, dtype=torch.int32)
    mt.run_jit(Hd.lm_head_argmax_logits, x, nw, w, one, lg, 1e-6, NT=-(-V // 128))
    res["argmax_kernel"] = dict(got=got.tolist(), want=one.tolist(),
                                torch=lg.argmax(-1).tolist())


def _check_model(tp, res):
    """generate() of the whole model: TP=2 against TP=1 (one process, the same random
    weights), tokens and logits, with a ragged vocabulary (1001 rows over 2 ranks).
    Per prompt: the new tokens, the logits' error up to the first step where the tokens
    differ (the steps with the same inputs), and there TP=1's logit gap between the two
    tokens (a near tie that the changed rounding may flip)."""
    from tilelang_models.qwen3.model import ModelConfig, Qwen3Model, random_model_weights
    mcfg = ModelConfig(get_config("tiny"), 2, 1001)
    prompts = [[5, 17, 300, 2, 9], [8], [1000]]
    m = T.TPQwen3Model(mcfg, T.random_model_weights_tp(mcfg, tp, seed=4), tp)
    got = m.generate(prompts, 4, eos_ids=(), return_logits=True)
    one = Qwen3Model(mcfg, random_model_weights(mcfg, seed=4)).generate(
        prompts, 4, eos_ids=(), return_logits=True)
    out = []
    for b in range(len(prompts)):
        ta, tb = got.tokens[b], one.tokens[b]
        first = next((s for s in range(len(tb)) if ta[s] != tb[s]), None)
        last = len(tb) - 1 if first is None else first
        r = dict(tokens=ta, tokens_tp1=tb, first_diff=first,
                 logits_rel=max(_rel(got.logits[b][s], one.logits[b][s])
                                for s in range(last + 1)))
        if first is not None:
            lg, lt = one.logits[b][first], got.logits[b][first]
            r["tp1_gap"] = float(lg[tb[first]] - lg[ta[first]])
            r["logits_abs"] = float((lt - lg).abs().max())
            r["gap_rel"] = r["tp1_gap"] / float(lg.abs().max())
        out.append(r)
    res["model"] = out


def _fail(tp, res):
    """Rank 1 gives its attention a block table entry past its cache: the simulator's
    bounds check fails there, and the error names the rank."""
    from tilelang_models.qwen3.decode_layer import DecodeLayer
    from tilelang_models.qwen3.weights import random_weights
    cfg = get_config("tiny")
    rc = T.tp_config(cfg, tp.size)
    w = T.shard_layer(random_weights(cfg, 3), cfg, tp.rank, tp.size)
    x, kc, vc, bt, sl = _tiny_inputs(rc, 5)
    if tp.rank == 1:
        bt[0, 0] = kc.shape[0] + 5
    T.TPDecodeLayer(DecodeLayer(rc, w, progress=False, norm_stats=False), tp)(
        x, kc, vc, bt, sl)


def _rank_main(mode: str, outdir: str) -> None:
    tp = T.init_tp(int(os.environ["WORLD_SIZE"]), "sim")
    res = {}
    t0 = time.process_time()
    if mode == "checks":
        _check_argmax(tp, res)
        _check_layers(tp, res)
        _check_model(tp, res)
    else:
        _fail(tp, res)
    res["cpu_s"] = time.process_time() - t0
    Path(outdir, f"rank{tp.rank}.json").write_text(json.dumps(res))


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    """The ranks' results of `checks` (one torchrun launch for all the tests below)."""
    out = tmp_path_factory.mktemp("tp_checks")
    _ok(_torchrun([str(Path(__file__)), "checks", str(out)], out))
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_tp_layers_match_one_device(checks):
    """Per rank, decode (two steps) and prefill against TP=1: the cache entries of the
    rank's KV heads bit-equal (each head's projection sums over H in the same order), the
    output within bf16 rounding (the all-reduce adds two bf16 partials: each rounded
    before the sum)."""
    for res in checks:
        for key in ("decode0", "decode1", "prefill"):
            r = res[key]
            assert r["k_equal"] and r["v_equal"], (key, r)
            assert r["tp_vs_tp1"] < 2e-2, (key, r)  # about 2 bf16 ulps of the largest
            assert r["tp_vs_ref"] < 2e-2, (key, r)
    for key in ("decode0", "decode1", "prefill"):  # the same (whole) output on every rank
        assert checks[0][key]["tp_vs_tp1"] == checks[1][key]["tp_vs_tp1"], key


def test_tp_argmax_ties_resolve_to_the_lowest_global_index(checks):
    for res in checks:
        a = res["argmax_torch"]
        assert a["got"] == a["want"] == [7, 400, 700, 500, 0, 0]
        k = res["argmax_kernel"]
        assert k["got"][:2] == [3, 450]
        assert k["got"] == k["want"] == k["torch"]


def test_tp_model_generates_the_tokens_of_one_device(checks):
    """The same tokens on every rank, and TP=1's for the first prompt (4 tokens). The
    logits agree within bf16 rounding up to the first step whose tokens differ, and
    tokens differ only where TP=1's two candidates are closer than twice the logits'
    difference: a near tie that the changed rounding flips (these random weights have
    such ties: prompts [8] and [1000] at their first token, 0.09% and 0.01% of the
    largest logit apart)."""
    m0, m1 = checks[0]["model"], checks[1]["model"]
    assert [r["tokens"] for r in m0] == [r["tokens"] for r in m1]
    for r in m0:
        assert r["logits_rel"] < 2e-2, r
        if r["first_diff"] is not None:
            assert 0 <= r["tp1_gap"] <= 2 * r["logits_abs"], r
    assert m0[0]["first_diff"] is None, m0


def test_tp_error_names_the_rank(tmp_path):
    t0 = time.monotonic()
    r = _torchrun([str(Path(__file__)), "fail", str(tmp_path)], tmp_path)
    assert r.returncode != 0
    # rank 1: the simulator's bounds check, located in the kernel and named by rank; rank 0
    # fails in its next collective (its peer is gone), also named
    assert re.search(r"\[rank1\]: \S*OutOfBoundsError: \S*kernels.py:\d+: load of `k_cache`",
                     r.stderr), r.stderr[-3000:]
    assert "[rank1]: on tensor-parallel rank 1 of 2 (attention)" in r.stderr, r.stderr[-3000:]
    rank0 = re.findall(r"on tensor-parallel rank 0 of 2 \((.*)\)", r.stderr)
    assert rank0 in ([], ["all_reduce after o_proj"]), rank0
    assert time.monotonic() - t0 < TIMEOUT_S


# ------------------------------------------------------------------ the CLIs

def test_layer_cli_tp2(tmp_path):
    r = _ok(_torchrun(["-m", "tilelang_models.qwen3", "--config", "tiny", "--target", "sim",
                       "--tp", "2"], tmp_path))
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, r.stdout  # rank 0 only
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["passed"] and res["tp"] == 2 and res["rel_err"] <= 2e-2, res


def test_generate_cli_tp2(tmp_path):
    from tilelang_models.qwen3 import generate as G
    args = ["--config", "tiny", "--random-weights", "--num-layers", "1", "--prompt-ids",
            "5,17,300;8", "--max-new-tokens", "3", "--no-progress", "--target", "sim"]
    r = _ok(_torchrun(["-m", "tilelang_models.qwen3.generate", *args, "--tp", "2"], tmp_path))
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, r.stdout
    got = json.loads(lines[0])
    with torch.no_grad():
        want = G.run(args)
    assert got["tp"] == 2 and got["tokens"] == want["tokens"], (got, want)


if __name__ == "__main__":
    _rank_main(sys.argv[1], sys.argv[2])
