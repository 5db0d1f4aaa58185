"""Qwen3 decoder-layer hyper-parameters: built-in presets and Hugging Face ``config.json``.

    >>> cfg = get_config("14b")
    >>> cfg.q_size, cfg.kv_size, cfg.group
    (5120, 1024, 5)

``get_config`` also takes the path of a Hugging Face ``config.json`` or of a checkpoint
directory holding one.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

__all__ = ["Qwen3Config", "CONFIGS", "get_config"]


@dataclass(frozen=True)
class Qwen3Config:
    """The shape and numeric constants of one Qwen3 decoder layer.

    Attributes:
        name: a label (preset key, or the checkpoint folder's name).
        hidden_size: H, the residual stream width.
        intermediate_size: I, the MLP width (gate/up output, down input).
        num_attention_heads: query heads.
        num_key_value_heads: key/value heads (GQA: each serves ``group`` query heads).
        head_dim: D, the width of one head (Qwen3 does not tie it to H / heads).
        rms_norm_eps: epsilon of every RMSNorm in the layer.
        rope_theta: RoPE base.
    """

    name: str
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float

    def __post_init__(self):
        """Reject non-positive sizes, heads not a multiple of kv heads, odd head_dim."""
        for f in ("hidden_size", "intermediate_size", "num_attention_heads",
                  "num_key_value_heads", "head_dim"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"Qwen3Config {self.name!r}: {f} must be a positive int, "
                                 f"got {v!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"Qwen3Config {self.name!r}: num_attention_heads "
                             f"({self.num_attention_heads}) is not a multiple of "
                             f"num_key_value_heads ({self.num_key_value_heads})")
        if self.head_dim % 2:
            raise ValueError(f"Qwen3Config {self.name!r}: head_dim must be even for RoPE, "
                             f"got {self.head_dim}")
        if not self.rms_norm_eps > 0 or not self.rope_theta > 0:
            raise ValueError(f"Qwen3Config {self.name!r}: rms_norm_eps and rope_theta must "
                             f"be > 0, got {self.rms_norm_eps!r}, {self.rope_theta!r}")

    @property
    def q_size(self) -> int:
        """Width of the query projection output: heads * head_dim."""
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        """Width of the key (and of the value) projection output: kv_heads * head_dim."""
        return self.num_key_value_heads * self.head_dim

    @property
    def group(self) -> int:
        """Query heads per key/value head; query head h reads kv head h // group."""
        return self.num_attention_heads // self.num_key_value_heads


def _preset(name, h, i, heads, kv, d, eps=1e-6, theta=1e6):
    """A preset Qwen3Config (every Qwen3 size uses eps 1e-6 and theta 1e6)."""
    return Qwen3Config(name, h, i, heads, kv, d, eps, theta)


CONFIGS: dict[str, Qwen3Config] = {
    "14b": _preset("14b", 5120, 17408, 40, 8, 128),
    "8b": _preset("8b", 4096, 12288, 32, 8, 128),
    "0.6b": _preset("0.6b", 1024, 3072, 16, 8, 128),
    "tiny": _preset("tiny", 256, 512, 4, 2, 64),
}

_REQUIRED = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
             "rms_norm_eps")


def _from_hf_dict(d: dict, name: str, where: str) -> Qwen3Config:
    """A Qwen3Config from the parsed Hugging Face config dict ``d`` (read from ``where``)."""
    missing = [k for k in _REQUIRED if k not in d]
    theta = d.get("rope_theta")
    if theta is None:  # transformers >= 5 moves it under rope_parameters
        theta = (d.get("rope_parameters") or {}).get("rope_theta")
        if theta is None:
            missing.append("rope_theta")
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
    if d.get("attention_bias"):
        raise ValueError(f"{where}: attention_bias=true is not supported (Qwen3 has none)")
    act = d.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"{where}: hidden_act {act!r} is not supported (expected 'silu')")
    scaling = d.get("rope_scaling") or d.get("rope_parameters") or {}
    rtype = scaling.get("rope_type", scaling.get("type", "default"))
    if rtype not in (None, "default"):
        raise ValueError(f"{where}: rope scaling {rtype!r} is not supported (plain RoPE only)")
    heads = d["num_attention_heads"]
    head_dim = d.get("head_dim")
    if head_dim is None:
        if d["hidden_size"] % heads:
            raise ValueError(f"{where}: no head_dim, and hidden_size {d['hidden_size']} is "
                             f"not a multiple of num_attention_heads {heads}")
        head_dim = d["hidden_size"] // heads
    try:
        return Qwen3Config(
            name=name,
            hidden_size=int(d["hidden_size"]),
            intermediate_size=int(d["intermediate_size"]),
            num_attention_heads=int(heads),
            num_key_value_heads=int(d["num_key_value_heads"]),
            head_dim=int(head_dim),
            rms_norm_eps=float(d["rms_norm_eps"]),
            rope_theta=float(theta),
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from e


def get_config(name_or_path: str | os.PathLike | Qwen3Config) -> Qwen3Config:
    """A preset (``"14b"``, ``"8b"``, ``"0.6b"``, ``"tiny"``; case-insensitive, an optional
    ``"qwen3-"`` prefix is accepted) or a Hugging Face ``config.json`` / checkpoint directory.
    A Qwen3Config passes through unchanged.

    Raises:
        ValueError: unknown preset and no such path, or a config.json lacking a field.
    """
    if isinstance(name_or_path, Qwen3Config):
        return name_or_path
    s = os.fspath(name_or_path)
    key = s.lower().removeprefix("qwen3-").removeprefix("qwen3_")
    if key in CONFIGS:
        return CONFIGS[key]
    path = s
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
        if not os.path.isfile(path):
            raise ValueError(f"{s}: a directory without a config.json")
    if not os.path.isfile(path):
        raise ValueError(f"unknown Qwen3 config {s!r}: not one of {sorted(CONFIGS)} "
                         f"and no such file or directory")
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object")
    name = os.path.basename(os.path.dirname(os.path.abspath(path))) or "hf"
    return _from_hf_dict(d, name, path)
