"""Qwen3-MoE layer hyper-parameters: presets and Hugging Face ``config.json``.

    >>> cfg = get_moe_config("30b-a3b")
    >>> cfg.num_experts, cfg.top_k, cfg.moe_intermediate_size, cfg.attn.hidden_size
    (128, 8, 768, 2048)

A checkpoint is a Qwen3-MoE one when its config.json says ``model_type: "qwen3_moe"`` or
lists ``Qwen3MoeForCausalLM`` in ``architectures`` (``is_moe_checkpoint``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .config import Qwen3Config, _from_hf_dict, _preset

__all__ = ["Qwen3MoeConfig", "MOE_CONFIGS", "get_moe_config", "is_moe_checkpoint",
           "is_moe_config_name"]


@dataclass(frozen=True)
class Qwen3MoeConfig:
    """A Qwen3-MoE decoder layer: the attention's Qwen3Config (``attn``; its
    intermediate_size is the dense MLP width of layers without experts) and the sparse
    block's sizes.

    Attributes:
        num_experts: E. top_k: experts per token (``num_experts_per_tok``).
        moe_intermediate_size: I of one expert. norm_topk_prob: renormalise the top-k
        probabilities to sum 1. decoder_sparse_step, mlp_only_layers: which layers have
        experts (layer i does when i is not in mlp_only_layers and (i + 1) % step == 0).
        fp8_block: the checkpoint's ``quantization_config.weight_block_size`` (None: bf16).
    """

    attn: Qwen3Config
    num_experts: int
    top_k: int
    moe_intermediate_size: int
    norm_topk_prob: bool = True
    decoder_sparse_step: int = 1
    mlp_only_layers: tuple[int, ...] = ()
    fp8_block: tuple[int, int] | None = None

    def __post_init__(self):
        n = self.attn.name
        for f in ("num_experts", "top_k", "moe_intermediate_size", "decoder_sparse_step"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"Qwen3MoeConfig {n!r}: {f} must be a positive int, got {v!r}")
        if self.top_k > self.num_experts:
            raise ValueError(f"Qwen3MoeConfig {n!r}: top_k {self.top_k} > num_experts "
                             f"{self.num_experts}")
        if self.fp8_block not in (None, (128, 128)):
            raise ValueError(f"Qwen3MoeConfig {n!r}: weight_block_size {list(self.fp8_block)}"
                             f" is not supported (the FP8 kernels use [128, 128])")

    @property
    def name(self) -> str:
        return self.attn.name

    def is_sparse(self, layer: int) -> bool:
        """Whether decoder layer ``layer`` has experts (else a dense MLP)."""
        return (layer not in self.mlp_only_layers
                and (layer + 1) % self.decoder_sparse_step == 0)


def _moe(name, h, i_dense, heads, kv, d, e, k, i_moe):
    return Qwen3MoeConfig(_preset(name, h, i_dense, heads, kv, d), e, k, i_moe)


MOE_CONFIGS: dict[str, Qwen3MoeConfig] = {
    "30b-a3b": _moe("30b-a3b", 2048, 6144, 32, 4, 128, 128, 8, 768),
    "235b-a22b": _moe("235b-a22b", 4096, 12288, 64, 4, 128, 128, 8, 1536),
    "tiny-moe": _moe("tiny-moe", 256, 512, 4, 2, 64, 16, 4, 128),
}


def _key(s: str) -> str:
    return s.lower().removeprefix("qwen3-").removeprefix("qwen3_")


def is_moe_config_name(name: str) -> bool:
    """Whether ``name`` is one of the MoE presets."""
    return _key(os.fspath(name)) in MOE_CONFIGS


def _read(path: str) -> tuple[dict, str]:
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return d, path


def is_moe_checkpoint(path: str | os.PathLike) -> bool:
    """Whether the checkpoint directory (or config.json) at ``path`` is a Qwen3-MoE one."""
    try:
        d, _ = _read(os.fspath(path))
    except (OSError, json.JSONDecodeError):
        return False
    return (d.get("model_type") == "qwen3_moe"
            or "Qwen3MoeForCausalLM" in (d.get("architectures") or []))


def get_moe_config(name_or_path: str | os.PathLike | Qwen3MoeConfig) -> Qwen3MoeConfig:
    """A preset (``"30b-a3b"``, ``"235b-a22b"``, ``"tiny-moe"``) or a Hugging Face Qwen3-MoE
    ``config.json`` / checkpoint directory.

    Raises:
        ValueError: unknown name, a missing field, or an unsupported quantisation.
    """
    if isinstance(name_or_path, Qwen3MoeConfig):
        return name_or_path
    s = os.fspath(name_or_path)
    if _key(s) in MOE_CONFIGS:
        return MOE_CONFIGS[_key(s)]
    if not os.path.exists(s):
        raise ValueError(f"unknown Qwen3-MoE config {s!r}: not one of {sorted(MOE_CONFIGS)} "
                         f"and no such file or directory")
    d, path = _read(s)
    missing = [f for f in ("num_experts", "num_experts_per_tok", "moe_intermediate_size")
               if f not in d]
    if missing:
        raise ValueError(f"{path}: not a Qwen3-MoE config, missing {', '.join(missing)}")
    name = os.path.basename(os.path.dirname(os.path.abspath(path))) or "hf"
    q = d.get("quantization_config") or {}
    block = None
    if q:
        if q.get("quant_method") != "fp8" or "weight_block_size" not in q:
            raise ValueError(f"{path}: quantization_config {q} is not supported (block FP8 "
                             f"with weight_block_size only)")
        block = tuple(int(v) for v in q["weight_block_size"])
    return Qwen3MoeConfig(
        _from_hf_dict(d, name, path), int(d["num_experts"]), int(d["num_experts_per_tok"]),
        int(d["moe_intermediate_size"]), bool(d.get("norm_topk_prob", True)),
        int(d.get("decoder_sparse_step", 1)), tuple(d.get("mlp_only_layers") or ()), block)
