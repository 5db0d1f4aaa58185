"""A whole Qwen3 causal LM made of mixtile kernels: prompt in, greedy tokens out.

    mcfg = get_model_config("path/to/hf_dir")            # or "0.6b", "tiny", ...
    model = Qwen3Model(mcfg, load_hf_model("path/to/hf_dir"), target="sim")
    tokens = model.generate([[1, 2, 3], [4, 5]], max_new_tokens=8)

Kernels, per step:
  prompts (packed): gather_rows (embedding) -> PrefillLayer x L -> gather_rows (the last
      token of each prompt) -> lm_head_argmax
  decode (one token per sequence): gather_rows -> DecodeLayer x L -> lm_head_argmax
Only the token ids (and, when asked, the fp32 logits) leave the LM head kernel.

KV cache: one pool of blocks per layer ([L, NB, BS, KVH, D] for k and for v; block 0 is
never handed out), vLLM's layout; a sequence gets a block when its length crosses a
block boundary and gives all of them back when it stops (EOS or length), while the
others go on. On CUDA each decode step of a batch size is one CUDA graph (embedding, all
layers, LM head) captured at its first use after an eager step that tunes the launches;
its inputs (ids, lengths, block table) are static buffers refilled before each replay.

On CUDA (norm_stats) the RMSNorm weights are folded into the projections after them
(fold_norm_weight: the weights given are replaced by the folded ones, and the norm
weights by ones), so each norm is a row scale from the previous kernel's partial sums.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field

import torch

import mixtile as mt
from tilelang_models.qwen3.config import CONFIGS, Qwen3Config, get_config
from tilelang_models.qwen3.decode_layer import DecodeLayer
from tilelang_models.qwen3.head import (
    gather_rows,
    gather_rows_ssq,
    lm_head_argmax,
    lm_head_argmax_folded,
    lm_head_argmax_folded_logits,
    lm_head_argmax_logits,
)
from tilelang_models.qwen3.kernels import fold_norm_weight
from tilelang_models.qwen3.prefill_layer import PrefillLayer
from tilelang_models.qwen3.weights import (
    LayerWeights,
    _weight_files,
    expected_shapes,
    load_hf_layer,
    load_safetensors,
)

__all__ = ["ModelConfig", "ModelWeights", "Qwen3Model", "get_model_config",
           "load_hf_model", "random_model_weights", "MODEL_PRESETS"]

QWEN3_EOS = (151645, 151643)  # <|im_end|>, <|endoftext|> (the released generation_config)

# preset -> (layers, vocabulary, tied embeddings), as the released checkpoints
MODEL_PRESETS = {"14b": (40, 151936, False), "8b": (36, 151936, False),
                 "0.6b": (28, 151936, True), "tiny": (2, 1000, False)}


@dataclass(frozen=True)
class ModelConfig:
    """A Qwen3 causal LM: the layer shapes (Qwen3Config) and what the model adds."""

    layer: Qwen3Config
    num_layers: int
    vocab_size: int
    tie_word_embeddings: bool = False
    eos_token_ids: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return self.layer.name

    def __post_init__(self):
        if self.num_layers < 1 or self.vocab_size < 1:
            raise ValueError(f"ModelConfig {self.name!r}: num_layers ({self.num_layers}) and "
                             f"vocab_size ({self.vocab_size}) must be >= 1")
        if self.vocab_size >= 1 << 24:  # ids travel as fp32 inside the argmax
            raise ValueError(f"ModelConfig {self.name!r}: vocab_size {self.vocab_size} is "
                             f"not below 2^24")


def _eos(v) -> tuple[int, ...]:
    if v is None:
        return ()
    return tuple(int(i) for i in (v if isinstance(v, list) else [v]))


def get_model_config(name_or_dir, num_layers: int | None = None) -> ModelConfig:
    """A preset ("14b", "8b", "0.6b", "tiny") or a Hugging Face checkpoint directory
    (config.json, and generation_config.json's eos_token_id when present, as transformers'
    generate uses it). num_layers overrides the layer count (a shallower model of the
    same shapes)."""
    s = os.fspath(name_or_dir)
    key = s.lower().removeprefix("qwen3-")
    if key in MODEL_PRESETS and key in CONFIGS:
        n, v, tied = MODEL_PRESETS[key]
        return ModelConfig(CONFIGS[key], num_layers or n, v, tied, QWEN3_EOS)
    layer = get_config(s)
    path = os.path.join(s, "config.json") if os.path.isdir(s) else s
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    for k in ("num_hidden_layers", "vocab_size"):
        if k not in d:
            raise ValueError(f"{path}: missing field {k}")
    eos = _eos(d.get("eos_token_id"))
    gen = os.path.join(os.path.dirname(os.path.abspath(path)), "generation_config.json")
    if os.path.isfile(gen):
        with open(gen, encoding="utf-8") as f:
            g = json.load(f)
        if "eos_token_id" in g:
            eos = _eos(g["eos_token_id"])
    return ModelConfig(layer, int(num_layers or d["num_hidden_layers"]), int(d["vocab_size"]),
                       bool(d.get("tie_word_embeddings", False)), eos)


@dataclass
class ModelWeights:
    """bf16 weights: embed [V, H], the layers, the final norm [H], lm_head [V, H] (the
    embedding itself when tied)."""

    embed: torch.Tensor
    layers: list[LayerWeights]
    norm: torch.Tensor
    lm_head: torch.Tensor

    def check(self, mcfg: ModelConfig) -> None:
        c = mcfg.layer
        V, H = mcfg.vocab_size, c.hidden_size
        for name, t, shape in (("embed", self.embed, (V, H)), ("lm_head", self.lm_head, (V, H)),
                               ("norm", self.norm, (H,))):
            if tuple(t.shape) != shape or t.dtype != torch.bfloat16:
                raise ValueError(f"ModelWeights.{name}: expected bf16 {list(shape)}, got "
                                 f"{t.dtype} {list(t.shape)}")
        if len(self.layers) != mcfg.num_layers:
            raise ValueError(f"ModelWeights: {len(self.layers)} layers, the config has "
                             f"{mcfg.num_layers}")
        for w in self.layers:
            w.check(c)


def load_hf_model(directory, mcfg: ModelConfig | None = None, device="cpu",
                  each_layer=None) -> ModelWeights:
    """Every tensor of a Hugging Face Qwen3 checkpoint (single file or sharded), as bf16
    on `device`, layer by layer. each_layer: a function applied to each layer's weights
    as read (on the CPU), before they move to `device` (tp.py keeps a rank's share)."""
    directory = os.fspath(directory)
    mcfg = mcfg or get_model_config(directory)
    where = _weight_files(directory)
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if not mcfg.tie_word_embeddings:
        names.append("lm_head.weight")
    missing = [n for n in names if n not in where]
    if missing:
        raise ValueError(f"{directory}: tensor(s) not in the checkpoint: {missing}")
    got = {}
    for n in names:
        got.update(load_safetensors(where[n], [n]))
    bf = {n: t.to(device=device, dtype=torch.bfloat16) for n, t in got.items()}
    layers = []
    for i in range(mcfg.num_layers):
        w = load_hf_layer(directory, i, mcfg.layer)
        if each_layer is not None:
            w = each_layer(w)
        layers.append(LayerWeights(**{k: t.to(device) for k, t in w.items()}))
    embed = bf["model.embed_tokens.weight"]
    lm = embed if mcfg.tie_word_embeddings else bf["lm_head.weight"]
    mw = ModelWeights(embed, layers, bf["model.norm.weight"], lm)
    if each_layer is None:
        mw.check(mcfg)
    return mw


def random_model_weights(mcfg: ModelConfig, seed: int = 0, device="cpu",
                         each_layer=None) -> ModelWeights:
    """Random bf16 weights of the model's shapes, drawn on `device` (fast on a GPU):
    projections N(0, 1/in), norms 1 + 0.1 N(0, 1), embedding N(0, 1). each_layer: a
    function applied to each layer's weights as soon as they are drawn (tp.py keeps a
    rank's share of them; the draws are the same)."""
    dev = torch.device(device)
    g = torch.Generator(device=dev).manual_seed(int(seed))

    def rnd(shape, std, mean=0.0):
        t = torch.empty(shape, dtype=torch.bfloat16, device=dev)
        for r in range(0, shape[0], 4096):  # fp32 scratch of bounded size
            n = min(4096, shape[0] - r)
            t[r:r + n] = (torch.randn((n,) + tuple(shape[1:]), generator=g, device=dev)
                          * std + mean).to(torch.bfloat16)
        return t

    c = mcfg.layer
    layers = []
    for _ in range(mcfg.num_layers):
        w = LayerWeights(**{
            n: rnd(s, 0.1, 1.0) if len(s) == 1 else rnd(s, 1 / math.sqrt(s[1]))
            for n, s in expected_shapes(c).items()})
        layers.append(w if each_layer is None else each_layer(w))
    embed = rnd((mcfg.vocab_size, c.hidden_size), 1.0)
    lm = embed if mcfg.tie_word_embeddings else rnd((mcfg.vocab_size, c.hidden_size),
                                                      1 / math.sqrt(c.hidden_size))
    return ModelWeights(embed, layers, rnd((c.hidden_size,), 0.1, 1.0), lm)


class BlockPool:
    """Free cache blocks 1 .. n-1 (block 0 is the null block of unused table entries)."""

    def __init__(self, n: int) -> None:
        self.free = list(range(n - 1, 0, -1))

    def take(self) -> int:
        if not self.free:
            raise RuntimeError("KV cache block pool exhausted")
        return self.free.pop()

    def give(self, blocks: list[int]) -> None:
        self.free.extend(reversed(blocks))


@dataclass
class GenerateResult:
    """tokens[i]: the new ids of prompt i in order (ending with the EOS id when one was
    produced); logits[i]: one fp32 [V] row per new token when asked for; seconds."""

    tokens: list[list[int]]
    logits: list[list[torch.Tensor]] | None = None
    prefill_s: float = 0.0
    decode_s: float = 0.0
    decode_steps: int = 0
    times: dict = field(default_factory=dict)


class Qwen3Model:
    """A Qwen3 causal LM of mixtile kernels on one target (see the module doc)."""

    def __init__(self, mcfg: ModelConfig, weights: ModelWeights, target: str = "sim",
                 compile_cfg: dict | None = None, tune: bool = True,
                 norm_stats: bool | None = None, graphs: bool | None = None) -> None:
        """norm_stats: fold the norms (default: on CUDA, as DecodeLayer); graphs: decode
        steps as CUDA graphs (default: on CUDA)."""
        weights.check(mcfg)
        self.backend = mt.get_backend(target)
        self.target = self.backend.name
        self.mcfg, self.cfg = mcfg, mcfg.layer
        self.compile_cfg = dict(compile_cfg or {})
        self.tune = tune and self.target == "cuda"
        self.norm_stats = self.target == "cuda" if norm_stats is None else norm_stats
        self.graphs = self.target == "cuda" if graphs is None else graphs
        if self.graphs and self.target != "cuda":
            raise mt.ArgumentError(f"Qwen3Model: graphs=True needs target 'cuda', got "
                                   f"{self.target!r}")
        c = self.cfg
        self.embed = weights.embed
        self.lm_head, self.final_norm = weights.lm_head, weights.norm
        if self.norm_stats:
            self.lm_head = fold_norm_weight(weights.lm_head, weights.norm)
            self.final_norm = torch.ones_like(weights.norm)
            for i, w in enumerate(weights.layers):
                weights.layers[i] = _folded(w)
        self.decode_layers, self.prefill_layers = [], []
        for w in weights.layers:
            d = DecodeLayer(c, w, target=self.target, compile_cfg=self.compile_cfg,
                            progress=False, tune=self.tune, norm_stats=self.norm_stats)
            # the layer holds the merged [q; k; v]: the separate tensors become its views
            w.q_proj, w.k_proj, w.v_proj = d.wqkv.split([c.q_size, c.kv_size, c.kv_size])
            p = PrefillLayer(c, w, target=self.target, compile_cfg=self.compile_cfg,
                             tune=self.tune, wqkv=d.wqkv)
            self.decode_layers.append(d)
            self.prefill_layers.append(p)
        self.weights = weights
        self._graphs: dict[tuple, tuple] = {}
        self.kernel_times: dict[str, float] = {}
        self.timelines: list | None = None

    # ------------------------------------------------------------------ kernels

    def _run(self, name, kern, *args, **consts):
        res = mt.run_jit(kern, *args, target=self.target, compile_cfg=self.compile_cfg,
                         tune=self.tune, timeline=self.timelines is not None or None, **consts)
        self.kernel_times[name] = self.kernel_times.get(name, 0.0) + res.run_s
        if self.timelines is not None:
            self.timelines.append(res.timeline)
        return res

    def _trace(self, timelines: list | None) -> None:
        """Record the NPU timing model's timeline of every launch into `timelines` (sim;
        None: stop)."""
        self.timelines = timelines
        for layer in self.decode_layers:
            layer.timelines = timelines

    def _head_consts(self, b: int) -> dict:
        """The LM head's tiles for b rows: 128-wide vocabulary tiles (NT of them)."""
        tn = 128
        consts = dict(NT=-(-self.mcfg.vocab_size // tn), TM=16 if b <= 16 else 32, TN=tn,
                      TK=256)
        if self.target == "cuda":  # one block per item (a syncall is a launch boundary)
            consts["GRID"] = -(-b // consts["TM"]) * consts["NT"]
        return consts

    def head(self, x, ids, logits=None, x_ssq=None):
        """ids[b] = greedy next token of hidden row x[b] (before the final norm); logits
        (fp32 [B, V]) written when given; x_ssq: row-sum partials of x^2 (folded norm)."""
        eps = float(self.cfg.rms_norm_eps)
        consts = self._head_consts(x.shape[0])
        if x_ssq is not None:
            kern = lm_head_argmax_folded if logits is None else lm_head_argmax_folded_logits
            args = (x, x_ssq, self.lm_head, ids) + (() if logits is None else (logits,))
            return self._run("lm_head", kern, *args, eps, NS=x_ssq.shape[1], **consts)
        kern = lm_head_argmax if logits is None else lm_head_argmax_logits
        args = (x, self.final_norm, self.lm_head, ids) + (() if logits is None else (logits,))
        return self._run("lm_head", kern, *args, eps, **consts)

    def prefill(self, ids, cu_q, ctx_lens, k_cache, v_cache, block_table, logits=None,
                max_q: int | None = None):
        """The new tokens of B sequences (packed ids [T], offsets cu_q [B + 1], ctx_lens[b]
        tokens already cached): runs every layer over them (the caches get their k and v)
        and returns the greedy next id of each sequence ([B] int32) from its last new
        token (every sequence must bring at least one)."""
        c = self.cfg
        T = ids.shape[0]
        dev = ids.device
        x = torch.empty(T, c.hidden_size, dtype=torch.bfloat16, device=dev)
        self._run("embed", gather_rows, ids, self.embed, x)
        for i, layer in enumerate(self.prefill_layers):
            x = layer(x, cu_q, ctx_lens, k_cache[i], v_cache[i], block_table, max_q)
        last = (cu_q[1:] - 1).to(torch.int32)
        xl = torch.empty(last.shape[0], c.hidden_size, dtype=torch.bfloat16, device=dev)
        self._run("last_rows", gather_rows, last, x, xl)
        out = torch.empty(last.shape[0], dtype=torch.int32, device=dev)
        self.head(xl, out, logits)
        return out

    def decode(self, ids, seq_lens, k_cache, v_cache, block_table, out, logits=None):
        """One decode step: ids [B] (the newest token of each sequence, at position
        seq_lens[b] - 1); writes the next ids into out [B] (and logits)."""
        c = self.cfg
        B = ids.shape[0]
        dev = ids.device
        x = torch.empty(B, c.hidden_size, dtype=torch.bfloat16, device=dev)
        xs = None
        if self.norm_stats:
            th = 1024
            xs = torch.empty(B, -(-c.hidden_size // th), dtype=torch.float32, device=dev)
            self._run("embed", gather_rows_ssq, ids, self.embed, x, xs, TH=th)
        else:
            self._run("embed", gather_rows, ids, self.embed, x)
        for i, layer in enumerate(self.decode_layers):
            x = layer(x, k_cache[i], v_cache[i], block_table, seq_lens, x_ssq=xs)
            xs = layer.out_ssq
        self.head(x, out, logits, xs)

    # ------------------------------------------------------------------ generation

    def alloc_cache(self, num_blocks: int, block_size: int, device):
        c = self.cfg
        shape = (self.mcfg.num_layers, num_blocks, block_size, c.num_key_value_heads,
                 c.head_dim)
        return (torch.zeros(shape, dtype=torch.bfloat16, device=device),
                torch.zeros(shape, dtype=torch.bfloat16, device=device))

    def _decode_step(self, ids, seq_lens, kc, vc, table, want_logits):
        """Run one decode step (a CUDA graph replay where graphs are on); returns the
        output ids (and logits) buffers."""
        B, MB = table.shape
        if not self.graphs:
            out = torch.empty(B, dtype=torch.int32, device=ids.device)
            lg = torch.empty(B, self.mcfg.vocab_size, dtype=torch.float32,
                             device=ids.device) if want_logits else None
            self.decode(ids, seq_lens, kc, vc, table, out, lg)
            return out, lg
        key = (B, MB, want_logits, kc.data_ptr())
        g = self._graphs.get(key)
        if g is None:
            dev = ids.device
            bufs = dict(ids=ids.clone(), seq_lens=seq_lens.clone(), table=table.clone(),
                        out=torch.empty(B, dtype=torch.int32, device=dev),
                        logits=torch.empty(B, self.mcfg.vocab_size, dtype=torch.float32,
                                           device=dev) if want_logits else None)

            def step():
                self.decode(bufs["ids"], bufs["seq_lens"], kc, vc, bufs["table"],
                            bufs["out"], bufs["logits"])
            step()  # eager: compiles and tunes every launch (outside the capture)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            g = self._graphs[key] = (graph, bufs)
            # the eager step above already wrote this step's cache entries and outputs
            return bufs["out"], bufs["logits"]
        graph, bufs = g
        bufs["ids"].copy_(ids)
        bufs["seq_lens"].copy_(seq_lens)
        bufs["table"].copy_(table)
        graph.replay()
        return bufs["out"], bufs["logits"]

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], max_new_tokens: int, eos_ids=None,
                 block_size: int = 16, return_logits: bool = False, on_token=None,
                 timeline: str | None = None) -> GenerateResult:
        """Greedy generation for a batch of prompts of any lengths.

        Each prompt gets up to max_new_tokens new ids; a sequence stops after producing an
        EOS id (eos_ids; default the config's) and frees its cache blocks while the others
        go on. on_token(total_new_tokens, seconds): called after every step (progress).
        timeline (sim): write the NPU timing model's trace of the first decode step (every
        launch in sequence, docs/timeline.md) to this file; its estimated time is
        GenerateResult.times["estimated_step_us"]."""
        if timeline is not None and self.target != "sim":
            raise mt.ArgumentError(f"generate: timeline= runs the NPU timing model of the "
                                   f"simulator; the target is {self.target!r}",
                                   fix="generate with target='sim', or drop timeline=")
        V = self.mcfg.vocab_size
        if not prompts or any(len(p) == 0 for p in prompts):
            raise mt.ArgumentError("generate: every prompt needs at least one token")
        bad = [(i, t) for i, p in enumerate(prompts) for t in p if not 0 <= int(t) < V]
        if bad:
            i, t = bad[0]
            raise mt.ArgumentError(f"generate: prompt {i} has token id {t}, outside the "
                                   f"vocabulary 0..{V - 1}")
        if max_new_tokens < 1:
            raise mt.ArgumentError(f"generate: max_new_tokens must be >= 1, got "
                                   f"{max_new_tokens}")
        eos = set(self.mcfg.eos_token_ids if eos_ids is None else eos_ids)
        dev = self.backend.device()
        B = len(prompts)
        cap = [len(p) + max_new_tokens for p in prompts]
        MB = max(-(-n // block_size) for n in cap)
        nblocks = 1 + sum(-(-n // block_size) for n in cap)
        self._graphs.clear()  # they hold the previous call's cache
        kc, vc = self.alloc_cache(nblocks, block_size, dev)
        pool = BlockPool(nblocks)
        blocks = [[pool.take() for _ in range(-(-len(p) // block_size))] for p in prompts]

        def table(rows):
            t = torch.zeros(len(rows), MB, dtype=torch.int32)
            for r, b in enumerate(rows):
                t[r, :len(blocks[b])] = torch.tensor(blocks[b], dtype=torch.int32)
            return t.to(dev)

        t0 = time.perf_counter()
        lens = [len(p) for p in prompts]
        ids = torch.tensor([t for p in prompts for t in p], dtype=torch.int32, device=dev)
        cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32)
        lg = torch.empty(B, V, dtype=torch.float32, device=dev) if return_logits else None
        nxt = self.prefill(ids, cu.to(dev), torch.zeros(B, dtype=torch.int32, device=dev),
                           kc, vc, table(range(B)), lg, max_q=max(lens)).tolist()
        res = GenerateResult([[t] for t in nxt],
                             [[lg[b].cpu()] for b in range(B)] if return_logits else None)
        res.prefill_s = time.perf_counter() - t0
        active = []
        for b in range(B):
            if nxt[b] in eos or max_new_tokens == 1:
                pool.give(blocks[b])
                blocks[b] = []
            else:
                active.append(b)
        if on_token:
            on_token(B, res.prefill_s)
        t1 = time.perf_counter()
        total = B
        while active:
            for b in active:  # position lens[b] (the newest token) may open a new block
                if lens[b] % block_size == 0:
                    blocks[b].append(pool.take())
            ids = torch.tensor([res.tokens[b][-1] for b in active], dtype=torch.int32)
            sl = torch.tensor([lens[b] + 1 for b in active], dtype=torch.int32)
            tls = [] if timeline is not None and res.decode_steps == 0 else None
            if tls is not None:
                self._trace(tls)
            try:
                out, lgt = self._decode_step(ids.to(dev), sl.to(dev), kc, vc, table(active),
                                             return_logits)
            finally:
                if tls is not None:
                    self._trace(None)
            if tls:
                mt.write_trace(tls, timeline)
                step_us = round(sum(t.makespan_us for t in tls), 2)
            nxt = out.tolist()
            res.decode_steps += 1
            still = []
            for r, b in enumerate(active):
                lens[b] += 1
                res.tokens[b].append(nxt[r])
                if return_logits:
                    res.logits[b].append(lgt[r].cpu())
                total += 1
                if nxt[r] in eos or len(res.tokens[b]) >= max_new_tokens:
                    pool.give(blocks[b])
                    blocks[b] = []
                else:
                    still.append(b)
            active = still
            if on_token:
                on_token(total, time.perf_counter() - t0)
        res.decode_s = time.perf_counter() - t1
        res.times = dict(self.kernel_times)
        if timeline is not None and res.decode_steps:
            res.times["estimated_step_us"] = step_us
        return res


def _folded(w: LayerWeights) -> LayerWeights:
    """w with its two RMSNorm weights folded into the projections after them (and the
    norm weights ones): the same layer for kernels that normalise by a row scale."""
    ones = torch.ones_like(w.input_layernorm)
    return LayerWeights(
        input_layernorm=ones, q_proj=fold_norm_weight(w.q_proj, w.input_layernorm),
        k_proj=fold_norm_weight(w.k_proj, w.input_layernorm),
        v_proj=fold_norm_weight(w.v_proj, w.input_layernorm), o_proj=w.o_proj,
        q_norm=w.q_norm, k_norm=w.k_norm, post_attention_layernorm=ones.clone(),
        gate_proj=fold_norm_weight(w.gate_proj, w.post_attention_layernorm),
        up_proj=fold_norm_weight(w.up_proj, w.post_attention_layernorm),
        down_proj=w.down_proj)
