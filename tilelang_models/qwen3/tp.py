"""Megatron-style tensor parallelism for the Qwen3 layer and model over torch.distributed.

    tp = init_tp(2, target="sim")            # under torchrun: gloo (CPU), nccl (cuda), hccl (npu)
    model = TPQwen3Model(mcfg, shard_model_weights(full, mcfg, tp), tp, target="sim")
    tokens = model.generate(prompts, 8).tokens           # the same on every rank

Every rank runs the same mixtile kernels as one device, on its share of the weights
(`tp_config`: a Qwen3Config with heads / N, kv heads / N, intermediate / N):

  x ─ rmsnorm_gemm(Wqkv rows of the rank's heads) ─ fa_fused(the rank's KV heads) ─
    gemm_residual(attn_r @ Wo[:, the rank's columns]^T + x on rank 0, + 0 elsewhere) ─
    all_reduce ─> h2 ─ rmsnorm_swiglu(the rank's gate/up rows) ─
    gemm_residual(act_r @ Wdown[:, the rank's columns]^T + h2 on rank 0) ─ all_reduce ─> out

The residual enters the sum once (rank 0's term). The KV cache of a rank holds its KV
heads ([NB, BS, KVH / N, D]). The LM head is split over the vocabulary (ragged: the first
V % N ranks get one row more): each rank's lm_head_argmax_max gives the (max, first index)
of its rows, one all-gather of those pairs, then every rank takes the largest maximum and
the smallest global index that reaches it: torch.argmax's tie rule over the whole
vocabulary. The embedding is replicated. The collectives are torch.distributed calls on
the tensors between launches, with no host synchronisation (a CUDA graph captures them on
NCCL).

norm_stats is off under TP: gemm_residual_sumsq's row sums of squares would be of one
rank's partial output (before the all-reduce), not of h2 / out, so the RMSNorms make their
own pass over the reduced activation (rmsnorm_gemm, rmsnorm_swiglu), as off CUDA.
"""
from __future__ import annotations

import atexit
import datetime
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

import mixtile as mt
from tilelang_models.qwen3.config import Qwen3Config
from tilelang_models.qwen3.decode_layer import DecodeLayer, StepTimes
from tilelang_models.qwen3.head import lm_head_argmax_logits, lm_head_argmax_max
from tilelang_models.qwen3.model import (
    ModelConfig,
    ModelWeights,
    Qwen3Model,
    load_hf_model,
    random_model_weights,
)
from tilelang_models.qwen3.prefill_layer import PrefillLayer
from tilelang_models.qwen3.weights import LayerWeights

__all__ = ["TPGroup", "init_tp", "tp_config", "vocab_range", "shard_layer",
           "shard_model_weights", "load_hf_model_tp", "random_model_weights_tp",
           "dist_argmax", "TPDecodeLayer", "TPPrefillLayer", "TPQwen3Model"]

# torch device type of the backend's tensors -> torch.distributed backend
DIST_BACKENDS = {"cpu": "gloo", "cuda": "nccl", "npu": "hccl"}
# the projections whose outputs are partial sums over the ranks (gemm_residual steps)
REDUCED_STEPS = ("o_proj", "down")


@dataclass(frozen=True)
class TPGroup:
    """This process's place in a tensor-parallel group: rank, size and the
    torch.distributed process group (None for one device)."""

    rank: int = 0
    size: int = 1
    group: object = None

    def all_reduce(self, t: torch.Tensor) -> None:
        """Sum t over the ranks, in place (t's dtype: bf16 activations sum in bf16)."""
        if self.size > 1:
            dist.all_reduce(t, group=self.group)

    def all_gather(self, out: torch.Tensor, inp: torch.Tensor) -> None:
        """out (flat, size * inp.numel()) = every rank's inp (flat), in rank order."""
        if self.size == 1:
            out.copy_(inp.reshape(-1))
            return
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        gather(out, inp.reshape(-1), group=self.group)

    @contextmanager
    def located(self, what: str = ""):
        """Errors raised inside carry a note naming this rank (and `what` ran)."""
        try:
            yield
        except Exception as e:
            if self.size > 1 and not getattr(e, "_tp_noted", False):
                note = (f"on tensor-parallel rank {self.rank} of {self.size}"
                        + (f" ({what})" if what else ""))
                if hasattr(e, "add_note"):
                    e.add_note(note)
                elif e.args and isinstance(e.args[0], str):  # Python 3.10: in the message
                    e.args = (f"{e.args[0]}\n{note}",) + e.args[1:]
                e._tp_noted = True
            raise


def init_tp(tp: int, target: str = "sim", timeout_s: float = 600.0) -> TPGroup:
    """Join the process group that torchrun started (RANK, WORLD_SIZE, LOCAL_RANK and the
    rendezvous in the environment) with the torch.distributed backend of the target's
    device: gloo for CPU tensors (the simulator), nccl for cuda, hccl for npu (torch_npu).
    tp must equal WORLD_SIZE; tp = 1 outside torchrun is one device (no group)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if tp < 1 or tp != world:
        raise mt.ArgumentError(
            f"--tp {tp} with {world} process(es) (WORLD_SIZE)",
            fix=f"start one process per rank: torchrun --nproc-per-node {max(tp, 1)} "
                f"-m ... --tp {max(tp, 1)}")
    if tp == 1:
        return TPGroup()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = mt.get_backend(target).device()
    if dev not in DIST_BACKENDS:
        raise mt.ArgumentError(f"tensor parallelism on {dev!r} tensors: no "
                               f"torch.distributed backend known (have {DIST_BACKENDS})")
    kw = {}
    if dev == "cuda":
        torch.cuda.set_device(local)
        kw["device_id"] = torch.device("cuda", local)
    elif dev == "npu":
        import torch_npu  # noqa: F401  (registers the hccl backend)
        torch.npu.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(DIST_BACKENDS[dev],
                                timeout=datetime.timedelta(seconds=timeout_s), **kw)
        # left to the interpreter's exit, gloo's threads can abort the process
        atexit.register(_destroy)
    return TPGroup(rank, tp, dist.group.WORLD)


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def tp_config(cfg: Qwen3Config, tp: int) -> Qwen3Config:
    """One rank's layer shapes under tensor parallelism of size tp: heads, KV heads and
    the intermediate size divided by tp (hidden size and head_dim unchanged). Raises
    ArgumentError when tp divides num_key_value_heads or intermediate_size unevenly."""
    if not isinstance(tp, int) or tp < 1:
        raise mt.ArgumentError(f"tensor-parallel size must be an int >= 1, got {tp!r}")
    kv, inter = cfg.num_key_value_heads, cfg.intermediate_size
    ok = _divisors(math.gcd(kv, inter))
    for what, n in (("num_key_value_heads", kv), ("intermediate_size", inter)):
        if n % tp:
            raise mt.ArgumentError(
                f"tensor-parallel size {tp} does not divide {what} {n} of config "
                f"{cfg.name!r} (the KV cache is split by KV heads, the MLP by columns)",
                fix=f"use a tp that divides both num_key_value_heads {kv} and "
                    f"intermediate_size {inter}: one of {ok}")
    if tp == 1:
        return cfg
    return replace(cfg, name=f"{cfg.name}/tp{tp}",
                   intermediate_size=inter // tp,
                   num_attention_heads=cfg.num_attention_heads // tp,
                   num_key_value_heads=kv // tp)


def vocab_range(vocab: int, rank: int, tp: int) -> tuple[int, int]:
    """(first row, rows) of the LM head on `rank`: the vocabulary in tp contiguous parts in
    rank order, the first vocab % tp of them one row longer."""
    if vocab < tp:
        raise mt.ArgumentError(f"vocabulary of {vocab} rows over {tp} ranks: some rank "
                               f"would hold none", fix=f"use at most {vocab} ranks")
    base, extra = divmod(vocab, tp)
    return rank * base + min(rank, extra), base + (rank < extra)


def _rows(t: torch.Tensor, start: int, n: int) -> torch.Tensor:
    return t[start:start + n].clone()  # a copy: the full tensor can be freed


def _cols(t: torch.Tensor, start: int, n: int) -> torch.Tensor:
    return t[:, start:start + n].contiguous()


def shard_layer(w: LayerWeights, cfg: Qwen3Config, rank: int, tp: int) -> LayerWeights:
    """Rank `rank`'s share of one layer's (full) weights: the q/k/v rows of its heads,
    o_proj's matching columns, its gate/up rows and down_proj's matching columns; the
    norm weights whole."""
    r = tp_config(cfg, tp)
    if tp == 1:
        return w
    q, kv, inter = r.q_size, r.kv_size, r.intermediate_size
    return LayerWeights(
        input_layernorm=w.input_layernorm,
        q_proj=_rows(w.q_proj, rank * q, q), k_proj=_rows(w.k_proj, rank * kv, kv),
        v_proj=_rows(w.v_proj, rank * kv, kv), o_proj=_cols(w.o_proj, rank * q, q),
        q_norm=w.q_norm, k_norm=w.k_norm, post_attention_layernorm=w.post_attention_layernorm,
        gate_proj=_rows(w.gate_proj, rank * inter, inter),
        up_proj=_rows(w.up_proj, rank * inter, inter),
        down_proj=_cols(w.down_proj, rank * inter, inter))


def shard_model_weights(weights: ModelWeights, mcfg: ModelConfig, tp: TPGroup) -> ModelWeights:
    """A rank's ModelWeights from the full ones: its share of every layer and its rows of
    the LM head (vocab_range); the embedding and the final norm whole."""
    weights.check(mcfg)
    start, n = vocab_range(mcfg.vocab_size, tp.rank, tp.size)
    return ModelWeights(weights.embed,
                        [shard_layer(w, mcfg.layer, tp.rank, tp.size) for w in weights.layers],
                        weights.norm, _rows(weights.lm_head, start, n))


def random_model_weights_tp(mcfg: ModelConfig, tp: TPGroup, seed: int = 0,
                            device="cpu") -> ModelWeights:
    """A rank's share of random_model_weights(mcfg, seed) (the same draws), each layer
    sharded as soon as it is drawn: one full layer at a time, not the whole model."""
    w = random_model_weights(mcfg, seed, device,
                             each_layer=lambda lw: shard_layer(lw, mcfg.layer, tp.rank,
                                                               tp.size))
    start, n = vocab_range(mcfg.vocab_size, tp.rank, tp.size)
    return ModelWeights(w.embed, w.layers, w.norm, _rows(w.lm_head, start, n))


def load_hf_model_tp(directory, mcfg: ModelConfig, tp: TPGroup, device="cpu") -> ModelWeights:
    """A rank's share of a Hugging Face Qwen3 checkpoint, read one layer at a time (each
    layer read whole on the CPU, its share kept on `device`)."""
    w = load_hf_model(directory, mcfg, device, each_layer=lambda lw: shard_layer(
        lw, mcfg.layer, tp.rank, tp.size))
    start, n = vocab_range(mcfg.vocab_size, tp.rank, tp.size)
    return ModelWeights(w.embed, w.layers, w.norm, _rows(w.lm_head, start, n))


def dist_argmax(vals: torch.Tensor, idx: torch.Tensor, start: int, tp: TPGroup
                ) -> torch.Tensor:
    """The global first index of the maximum over the ranks' vocabulary shards: vals [B]
    (each rank's row maxima), idx [B] (the first index of it within the rank's rows),
    start (the rank's first row). One all-gather of the (max, global index) pairs; then
    the largest maximum and, among the ranks that reach it, the smallest global index
    (shards are in rank order, so torch.argmax's first-occurrence rule holds over the
    whole vocabulary). Indices travel as fp32: exact below 2^24 (ModelConfig checks V).
    No host synchronisation. Returns [B] int32 on vals' device."""
    B = vals.shape[0]
    pair = torch.stack([vals.float(), idx.float() + float(start)], -1)
    g = torch.empty(tp.size * 2 * B, dtype=torch.float32, device=vals.device)
    tp.all_gather(g, pair)
    g = g.view(tp.size, B, 2)
    m = g[..., 0]
    best = m.amax(0)
    cand = torch.where(m == best, g[..., 1], torch.full_like(m, float("inf")))
    return cand.amin(0).to(torch.int32)


def _tp_steps(steps, tp: TPGroup, zeros):
    """A layer's launches for one rank: (name, kernel, args, constants, the output to sum
    over the ranks or None). The O and down projections (gemm_residual: y = x @ w^T + res)
    add the residual on rank 0 only (zeros(res) elsewhere), so the sum holds it once."""
    out = []
    for name, kern, args, consts in steps:
        red = None
        if name in REDUCED_STEPS:
            order = list(kern.order)
            if "res" not in order or "y" not in order:
                raise mt.ArgumentError(f"tensor parallelism: step {name!r} runs "
                                       f"{kern.name}, not a residual GEMM (x, w, res, y)")
            args = list(args)
            if tp.rank != 0:
                args[order.index("res")] = zeros(args[order.index("res")])
            red = args[order.index("y")]
            args = tuple(args)
        out.append((name, kern, args, consts, red))
    return out


def _run_tp(steps, tp: TPGroup, run, times: StepTimes) -> None:
    for name, kern, args, consts, red in steps:
        with tp.located(name):
            res = run(name, kern, args, consts)
        times.compile_s += res.compile_s
        times.run_s += res.run_s
        times.per_kernel[name] = res.run_s
        if red is not None:
            t0 = time.perf_counter()
            with tp.located(f"all_reduce after {name}"):
                tp.all_reduce(red)
            times.per_kernel[f"{name}_all_reduce"] = time.perf_counter() - t0


class TPDecodeLayer:
    """A DecodeLayer (built on the rank's config and weights, norm_stats off) run as one
    rank of a tensor-parallel layer: its launches in order, an all-reduce of h2 after the
    O projection and of out after the down projection. Called like a DecodeLayer; x and
    the output are whole on every rank, the caches are the rank's KV heads."""

    def __init__(self, layer: DecodeLayer, tp: TPGroup) -> None:
        if layer.norm_stats:
            raise mt.ArgumentError(
                "TPDecodeLayer: the layer was built with norm_stats, whose row sums of "
                "squares would be of one rank's partial h2 / out (before the all-reduce)",
                fix="build the DecodeLayer with norm_stats=False")
        self.layer, self.tp = layer, tp
        self.cfg, self.target = layer.cfg, layer.target
        self.times = StepTimes()
        self.out_ssq = None  # norm_stats is off: the next layer makes its own norm pass
        self._zeros: dict[tuple, torch.Tensor] = {}

    def _zero(self, like: torch.Tensor) -> torch.Tensor:
        key = (tuple(like.shape), like.dtype, like.device)
        if key not in self._zeros:
            self._zeros[key] = torch.zeros_like(like)
        return self._zeros[key]

    def compile(self, b: int, block_size: int) -> float:
        """Compile the rank's kernels (cached); returns the seconds it took."""
        with self.tp.located("compile"):
            return self.layer.compile(b, block_size)

    def steps(self, x, k_cache, v_cache, block_table, seq_lens) -> list[tuple]:
        """(name, kernel, args, constants, tensor to all-reduce after it or None)."""
        return _tp_steps(self.layer.steps(x, k_cache, v_cache, block_table, seq_lens),
                         self.tp, self._zero)

    def __call__(self, x, k_cache, v_cache, block_table, seq_lens, x_ssq=None
                 ) -> torch.Tensor:
        """One step (x_ssq is ignored: no norm_stats under TP); returns out [B, H], whole
        (a buffer reused by the next call of this batch size)."""
        steps = self.steps(x, k_cache, v_cache, block_table, seq_lens)
        self.times = StepTimes()
        _run_tp(steps, self.tp, self.layer.run_step, self.times)
        return steps[-1][4]


class TPPrefillLayer:
    """A PrefillLayer (on the rank's config and weights) run as one rank of a
    tensor-parallel layer, as TPDecodeLayer: called like a PrefillLayer."""

    def __init__(self, layer: PrefillLayer, tp: TPGroup) -> None:
        self.layer, self.tp = layer, tp
        self.cfg, self.target = layer.cfg, layer.target
        self.times = StepTimes()

    def _run(self, name, kern, args, consts):
        p = self.layer
        return mt.run_jit(kern, *args, target=p.target, compile_cfg=p.compile_cfg,
                          tune=p.tune and p.target == "cuda", **consts)

    def __call__(self, x, cu_q, ctx_lens, k_cache, v_cache, block_table,
                 max_q: int | None = None) -> torch.Tensor:
        """Run the rank's share of the layer; returns out [T, H] (whole, a new tensor)."""
        self.times = StepTimes()
        if x.shape[0] == 0:
            return torch.empty_like(x)
        steps = _tp_steps(self.layer.steps(x, cu_q, ctx_lens, k_cache, v_cache, block_table,
                                           max_q), self.tp, torch.zeros_like)
        _run_tp(steps, self.tp, self._run, self.times)
        return steps[-1][4]


class TPQwen3Model(Qwen3Model):
    """Qwen3Model as one rank of a tensor-parallel group (see the module doc): the layers
    are TPDecodeLayer / TPPrefillLayer on the rank's share, the KV cache holds the rank's
    KV heads, the LM head its vocabulary rows with a distributed argmax. generate() gives
    the same tokens on every rank. weights: the rank's share (shard_model_weights,
    random_model_weights_tp, load_hf_model_tp); mcfg: the whole model's config."""

    def __init__(self, mcfg: ModelConfig, weights: ModelWeights, tp: TPGroup,
                 target: str = "sim", compile_cfg: dict | None = None, tune: bool = True,
                 graphs: bool | None = None) -> None:
        self.tp, self.full_mcfg = tp, mcfg
        rank_mcfg = ModelConfig(tp_config(mcfg.layer, tp.size), mcfg.num_layers,
                                mcfg.vocab_size, mcfg.tie_word_embeddings, mcfg.eos_token_ids)
        self.vocab_start, self.vocab_rows = vocab_range(mcfg.vocab_size, tp.rank, tp.size)
        H = mcfg.layer.hidden_size
        lm = weights.lm_head
        if tuple(lm.shape) != (self.vocab_rows, H) or lm.dtype != torch.bfloat16:
            raise ValueError(
                f"ModelWeights.lm_head: rank {tp.rank} of {tp.size} holds vocabulary rows "
                f"{self.vocab_start}..{self.vocab_start + self.vocab_rows - 1}: expected bf16 "
                f"[{self.vocab_rows}, {H}], got {lm.dtype} {list(lm.shape)} (shard the full "
                f"weights with shard_model_weights)")
        # the base class checks and builds everything else on the rank's shapes; its LM
        # head check wants [V, H], so it sees the embedding there, replaced just below
        super().__init__(rank_mcfg, ModelWeights(weights.embed, weights.layers, weights.norm,
                                                 weights.embed),
                         target=target, compile_cfg=compile_cfg, tune=tune, norm_stats=False,
                         graphs=graphs)
        self.lm_head = lm
        self.weights = weights
        self.decode_layers = [TPDecodeLayer(d, tp) for d in self.decode_layers]
        self.prefill_layers = [TPPrefillLayer(p, tp) for p in self.prefill_layers]

    def _run(self, name, kern, *args, **consts):
        with self.tp.located(name):
            return super()._run(name, kern, *args, **consts)

    def _head_consts(self, b: int) -> dict:
        tn = 128
        consts = dict(NT=-(-self.vocab_rows // tn), TM=16 if b <= 16 else 32, TN=tn, TK=256)
        if self.target == "cuda":  # one block per item (a syncall is a launch boundary)
            consts["GRID"] = -(-b // consts["TM"]) * consts["NT"]
        return consts

    def head(self, x, ids, logits=None, x_ssq=None):
        """ids[b] = the greedy next token over the whole vocabulary (the same on every
        rank); logits (fp32 [B, V], whole) written when given."""
        B = x.shape[0]
        dev = x.device
        eps = float(self.cfg.rms_norm_eps)
        consts = self._head_consts(B)
        lid = torch.empty(B, dtype=torch.int32, device=dev)
        if logits is None:
            vals = torch.empty(B, dtype=torch.float32, device=dev)
            self._run("lm_head", lm_head_argmax_max, x, self.final_norm, self.lm_head, lid,
                      vals, eps, **consts)
        else:
            local = torch.empty(B, self.vocab_rows, dtype=torch.float32, device=dev)
            self._run("lm_head", lm_head_argmax_logits, x, self.final_norm, self.lm_head, lid,
                      local, eps, **consts)
            vals = local.gather(1, lid.long().unsqueeze(1)).squeeze(1)
            self._gather_logits(local, logits)
        with self.tp.located("lm_head argmax"):
            ids.copy_(dist_argmax(vals, lid, self.vocab_start, self.tp))

    def _gather_logits(self, local: torch.Tensor, logits: torch.Tensor) -> None:
        """logits [B, V] = the ranks' [B, rows] shards side by side (padded to the longest
        shard for the all-gather)."""
        V, n = self.mcfg.vocab_size, self.tp.size
        width = vocab_range(V, 0, n)[1]  # rank 0's shard is the longest
        B = local.shape[0]
        pad = torch.nn.functional.pad(local, (0, width - local.shape[1]))
        g = torch.empty(n * B * width, dtype=local.dtype, device=local.device)
        with self.tp.located("logits all_gather"):
            self.tp.all_gather(g, pad)
        g = g.view(n, B, width)
        for r in range(n):
            s, rows = vocab_range(V, r, n)
            logits[:, s:s + rows] = g[r, :, :rows]
