"""Weights of one Qwen3-MoE decoder layer: random init and Hugging Face checkpoints (bf16,
or block FP8 as published: e4m3 ``*.weight`` with fp32 ``*.weight_scale_inv`` per 128x128
block and ``quantization_config.weight_block_size`` in config.json).

Tensor names after ``model.layers.{N}.``: the attention's as in a dense Qwen3 layer,
``mlp.gate.weight`` [E, H] (the router) and ``mlp.experts.{e}.{gate,up,down}_proj.weight``.
The experts are stacked into [E, ...] tensors (MoeWeights). In an FP8 checkpoint the
experts stay e4m3 with their scales; other FP8 projections (attention) are dequantised
to bf16 at load, since the attention kernels are bf16.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import torch

from .moe import MoeWeights
from .moe_config import Qwen3MoeConfig, get_moe_config
from .moe_reference import dequantize_blocks, quantize_blocks
from .weights import (
    LayerWeights,
    _weight_files,
    expected_shapes,
    hf_names,
    load_safetensors,
    save_safetensors,
)

__all__ = ["MoeLayerWeights", "random_moe_layer", "save_hf_moe_checkpoint",
           "load_hf_moe_layer", "ATTN_FIELDS"]

ATTN_FIELDS = ("input_layernorm", "q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm",
               "post_attention_layernorm")
_EXPERT = ("gate", "up", "down")


@dataclass
class MoeLayerWeights:
    """The attention half of the layer (``attn``: a LayerWeights whose dense-MLP fields
    are empty [0, H] / [H, 0] placeholders) and the sparse block (``moe``)."""

    attn: LayerWeights
    moe: MoeWeights

    def to(self, device) -> MoeLayerWeights:
        a = LayerWeights(**{n: t.to(device) for n, t in self.attn.items()})
        return MoeLayerWeights(a, self.moe.to(device))


def _attn_only(cfg: Qwen3MoeConfig, tensors: dict) -> LayerWeights:
    H = cfg.attn.hidden_size
    e = torch.empty(0, H, dtype=torch.bfloat16)
    return LayerWeights(**tensors, gate_proj=e, up_proj=e.clone(),
                        down_proj=torch.empty(H, 0, dtype=torch.bfloat16))


def random_moe_layer(cfg: Qwen3MoeConfig, seed: int = 0, fp8: bool = False
                     ) -> MoeLayerWeights:
    """Random weights (std 1/sqrt(in) per projection, norms 1 + 0.1 N(0, 1)); fp8: the
    experts quantised in 128x128 blocks."""
    g = torch.Generator().manual_seed(int(seed))
    shapes = expected_shapes(cfg.attn)
    out = {}
    for name in ATTN_FIELDS:
        s = shapes[name]
        t = torch.randn(*s, generator=g)
        out[name] = (1 + 0.1 * t if len(s) == 1 else t / math.sqrt(s[1])).bfloat16()
    E, H, I = cfg.num_experts, cfg.attn.hidden_size, cfg.moe_intermediate_size
    r = lambda *s: (torch.randn(*s, generator=g) / math.sqrt(s[-1])).bfloat16()  # noqa: E731
    moe = MoeWeights(r(E, H), r(E, I, H), r(E, I, H), r(E, H, I))
    return MoeLayerWeights(_attn_only(cfg, out), moe.quantized() if fp8 else moe)


def _expert_names(layer: int, e: int) -> dict[str, str]:
    p = f"model.layers.{layer}.mlp.experts.{e}"
    return {k: f"{p}.{k}_proj.weight" for k in _EXPERT}


def save_hf_moe_checkpoint(directory: str | os.PathLike, cfg: Qwen3MoeConfig,
                           layers: dict[int, MoeLayerWeights], fp8: bool = False) -> None:
    """Write a Hugging Face style Qwen3-MoE checkpoint (one model.safetensors) of the given
    layers. fp8: every projection stored e4m3 with ``weight_scale_inv`` (128x128 blocks)
    and a ``quantization_config`` in config.json, as the published FP8 checkpoints; the
    router and the norms stay bf16."""
    os.makedirs(directory, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}

    def put(name, w):
        if fp8 and w.dim() >= 2 and w.dtype != torch.float8_e4m3fn:
            w, s = quantize_blocks(w)
            tensors[name + "_scale_inv"] = s.contiguous()
        elif w.dtype == torch.float8_e4m3fn:
            raise ValueError(f"{name}: e4m3 weights are written with fp8=True")
        tensors[name] = w.contiguous()

    for layer, lw in sorted(layers.items()):
        names = hf_names(layer)
        for f in ATTN_FIELDS:
            put(names[f], getattr(lw.attn, f))
        tensors[f"model.layers.{layer}.mlp.gate.weight"] = lw.moe.router.contiguous()
        m = lw.moe.quantized() if fp8 and not lw.moe.fp8 else lw.moe
        for e in range(m.gate.shape[0]):
            for k, name in _expert_names(layer, e).items():
                tensors[name] = getattr(m, k)[e].contiguous()
                if m.fp8:
                    tensors[name + "_scale_inv"] = getattr(m, "s_" + k)[e].contiguous()
    a = cfg.attn
    conf = {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
            "hidden_size": a.hidden_size, "intermediate_size": a.intermediate_size,
            "num_attention_heads": a.num_attention_heads,
            "num_key_value_heads": a.num_key_value_heads, "head_dim": a.head_dim,
            "rms_norm_eps": a.rms_norm_eps, "rope_theta": a.rope_theta, "rope_scaling": None,
            "num_hidden_layers": max(layers) + 1, "hidden_act": "silu",
            "attention_bias": False, "torch_dtype": "bfloat16",
            "num_experts": cfg.num_experts, "num_experts_per_tok": cfg.top_k,
            "moe_intermediate_size": cfg.moe_intermediate_size,
            "norm_topk_prob": cfg.norm_topk_prob,
            "decoder_sparse_step": cfg.decoder_sparse_step,
            "mlp_only_layers": list(cfg.mlp_only_layers)}
    if fp8:
        conf["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3",
                                       "activation_scheme": "dynamic",
                                       "weight_block_size": [128, 128]}
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
        json.dump(conf, f, indent=2)
        f.write("\n")
    save_safetensors(os.path.join(directory, "model.safetensors"), tensors)


def load_hf_moe_layer(directory: str | os.PathLike, layer: int,
                      cfg: Qwen3MoeConfig | None = None) -> MoeLayerWeights:
    """Read sparse decoder layer ``layer`` of a Hugging Face Qwen3-MoE checkpoint (single
    file or sharded), only that layer's tensors.

    Raises:
        KeyError: a tensor of the layer is not in the checkpoint (the names listed).
        ValueError: a shape that does not fit the config, or a dense layer.
    """
    directory = os.fspath(directory)
    cfg = get_moe_config(directory) if cfg is None else cfg
    if not cfg.is_sparse(layer):
        raise ValueError(f"{directory}: layer {layer} has a dense MLP (mlp_only_layers / "
                         f"decoder_sparse_step); load it with load_hf_layer")
    where = _weight_files(directory)
    E, H, I = cfg.num_experts, cfg.attn.hidden_size, cfg.moe_intermediate_size
    names = {f: n for f, n in hf_names(layer).items() if f in ATTN_FIELDS}
    names["router"] = f"model.layers.{layer}.mlp.gate.weight"
    for e in range(E):
        for k, n in _expert_names(layer, e).items():
            names[(k, e)] = n
    missing = [n for n in names.values() if n not in where]
    if missing:
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        raise KeyError(f"{directory}: layer {layer} tensor(s) not in the checkpoint: "
                       f"{missing[:6]}{more}")
    wanted = list(names.values())
    wanted += [n + "_scale_inv" for n in names.values() if n + "_scale_inv" in where]
    by_file: dict[str, list[str]] = {}
    for n in wanted:
        by_file.setdefault(where[n], []).append(n)
    got: dict[str, torch.Tensor] = {}
    for path, ns in by_file.items():
        got.update(load_safetensors(path, ns))

    def plain(n, shape):
        """A bf16 tensor (FP8 ones dequantised with their block scales)."""
        t = got[n]
        if tuple(t.shape) != shape:
            raise ValueError(f"{n}: expected shape {list(shape)} for config {cfg.name!r}, "
                             f"got {list(t.shape)}")
        if t.dtype == torch.float8_e4m3fn:
            if n + "_scale_inv" not in got:
                raise KeyError(f"{directory}: {n} is e4m3 but {n}_scale_inv is missing")
            t = dequantize_blocks(t, got[n + "_scale_inv"].float())
        return t.to(torch.bfloat16)

    shapes = expected_shapes(cfg.attn)
    attn = {f: plain(names[f], shapes[f]) for f in ATTN_FIELDS}
    exp_shape = {"gate": (I, H), "up": (I, H), "down": (H, I)}
    fp8 = got[names[("gate", 0)]].dtype == torch.float8_e4m3fn
    stacked, scales = {}, {}
    for k in _EXPERT:
        ts = []
        for e in range(E):
            n = names[(k, e)]
            if fp8:
                t = got[n]
                if tuple(t.shape) != exp_shape[k] or t.dtype != torch.float8_e4m3fn:
                    raise ValueError(f"{n}: expected float8_e4m3fn {list(exp_shape[k])} like "
                                     f"expert 0, got {t.dtype} {list(t.shape)}")
                if n + "_scale_inv" not in got:
                    raise KeyError(f"{directory}: {n} is e4m3 but {n}_scale_inv is missing")
                ts.append(t)
                scales.setdefault(k, []).append(got[n + "_scale_inv"].float())
            else:
                ts.append(plain(n, exp_shape[k]))
        stacked[k] = torch.stack(ts)
    moe = MoeWeights(plain(names["router"], (E, H)), stacked["gate"], stacked["up"],
                     stacked["down"], *((torch.stack(scales[k]) for k in _EXPERT)
                                        if fp8 else ()))
    moe.check()
    return MoeLayerWeights(_attn_only(cfg, attn), moe)
