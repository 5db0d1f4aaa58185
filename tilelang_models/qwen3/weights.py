"""Weights of one Qwen3 decoder layer: random init, safetensors I/O, Hugging Face checkpoints.

Everything here is plain torch/numpy; the safetensors format is implemented directly:

    [8 bytes: little-endian u64 N][N bytes: JSON header][raw little-endian tensor bytes]

with the header ``{name: {"dtype": "BF16", "shape": [...], "data_offsets": [begin, end]},
"__metadata__": {str: str}}`` and offsets relative to the first byte after the header.

    >>> cfg = get_config("tiny")
    >>> w = random_weights(cfg, seed=0)
    >>> save_hf_checkpoint(tmp, cfg, {0: w}, shards=2)
    >>> w2 = load_hf_layer(tmp, 0)
"""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, fields

import numpy as np
import torch

from .config import Qwen3Config, get_config

__all__ = [
    "LayerWeights", "random_weights", "expected_shapes", "hf_names",
    "save_safetensors", "load_safetensors", "safetensors_header",
    "save_hf_checkpoint", "load_hf_layer",
]

# ----------------------------------------------------------------------------- layer weights

# field -> Hugging Face tensor name suffix (after "model.layers.{N}.")
_HF_SUFFIX = {
    "input_layernorm": "input_layernorm.weight",
    "q_proj": "self_attn.q_proj.weight",
    "k_proj": "self_attn.k_proj.weight",
    "v_proj": "self_attn.v_proj.weight",
    "o_proj": "self_attn.o_proj.weight",
    "q_norm": "self_attn.q_norm.weight",
    "k_norm": "self_attn.k_norm.weight",
    "post_attention_layernorm": "post_attention_layernorm.weight",
    "gate_proj": "mlp.gate_proj.weight",
    "up_proj": "mlp.up_proj.weight",
    "down_proj": "mlp.down_proj.weight",
}


@dataclass
class LayerWeights:
    """The 11 bf16 tensors of one Qwen3 decoder layer, in Hugging Face layout
    (``nn.Linear`` weights are ``[out_features, in_features]``; y = x @ W.T).

    Shapes (H hidden, I intermediate, D head_dim): input_layernorm [H], q_proj [heads*D, H],
    k_proj / v_proj [kv*D, H], o_proj [H, heads*D], q_norm / k_norm [D],
    post_attention_layernorm [H], gate_proj / up_proj [I, H], down_proj [H, I].
    """

    input_layernorm: torch.Tensor
    q_proj: torch.Tensor
    k_proj: torch.Tensor
    v_proj: torch.Tensor
    o_proj: torch.Tensor
    q_norm: torch.Tensor
    k_norm: torch.Tensor
    post_attention_layernorm: torch.Tensor
    gate_proj: torch.Tensor
    up_proj: torch.Tensor
    down_proj: torch.Tensor

    def items(self):
        """(field name, tensor) pairs in declaration order."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]

    def qkv_proj(self) -> torch.Tensor:
        """The fused [q_proj; k_proj; v_proj] weight, [heads*D + 2*kv*D, H] (a new tensor)."""
        return torch.cat([self.q_proj, self.k_proj, self.v_proj], 0)

    def gate_up_proj(self) -> torch.Tensor:
        """The fused [gate_proj; up_proj] weight, [2*I, H] (a new tensor)."""
        return torch.cat([self.gate_proj, self.up_proj], 0)

    def check(self, cfg: Qwen3Config) -> None:
        """Raise ValueError naming the first tensor whose shape or dtype is not as ``cfg``
        expects (dtype must be bf16)."""
        exp = expected_shapes(cfg)
        for name, t in self.items():
            if tuple(t.shape) != exp[name]:
                raise ValueError(f"LayerWeights.{name}: expected shape {list(exp[name])}, "
                                 f"got {list(t.shape)}")
            if t.dtype != torch.bfloat16:
                raise ValueError(f"LayerWeights.{name}: expected bfloat16, got {t.dtype}")


def expected_shapes(cfg: Qwen3Config) -> dict[str, tuple[int, ...]]:
    """Field name -> expected shape of each LayerWeights tensor under ``cfg``."""
    H, I, D = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    return {
        "input_layernorm": (H,),
        "q_proj": (cfg.q_size, H),
        "k_proj": (cfg.kv_size, H),
        "v_proj": (cfg.kv_size, H),
        "o_proj": (H, cfg.q_size),
        "q_norm": (D,),
        "k_norm": (D,),
        "post_attention_layernorm": (H,),
        "gate_proj": (I, H),
        "up_proj": (I, H),
        "down_proj": (H, I),
    }


def hf_names(layer: int) -> dict[str, str]:
    """Field name -> Hugging Face tensor name for decoder layer ``layer``."""
    return {f: f"model.layers.{layer}.{s}" for f, s in _HF_SUFFIX.items()}


_CHUNK_ELEMS = 1 << 22  # fp32 scratch of 16 MiB for random generation


def _randn_bf16(shape, std: float, mean: float, g: torch.Generator) -> torch.Tensor:
    """mean + std * N(0, 1) as bf16, drawn in fp32 row chunks through one scratch buffer."""
    out = torch.empty(shape, dtype=torch.bfloat16)
    flat = out.view(-1)
    scratch = torch.empty(min(flat.numel(), _CHUNK_ELEMS), dtype=torch.float32)
    for s in range(0, flat.numel(), _CHUNK_ELEMS):
        n = min(_CHUNK_ELEMS, flat.numel() - s)
        buf = scratch[:n]
        buf.normal_(mean, std, generator=g)
        flat[s:s + n].copy_(buf)
    return out


def random_weights(cfg: Qwen3Config, seed: int = 0) -> LayerWeights:
    """Random bf16 weights that keep activations O(1): each projection [out, in] is
    N(0, std=1/sqrt(in)), each norm weight 1 + 0.1 * N(0, 1). Deterministic in ``seed``.
    About 1 s per 100M parameters on 2 CPU cores (14B layer: ~330M)."""
    g = torch.Generator().manual_seed(int(seed))
    out = {}
    for name, shape in expected_shapes(cfg).items():
        if len(shape) == 1:
            out[name] = _randn_bf16(shape, 0.1, 1.0, g)
        else:
            out[name] = _randn_bf16(shape, 1.0 / math.sqrt(shape[1]), 0.0, g)
    return LayerWeights(**out)


# ----------------------------------------------------------------------------- safetensors

_ST_DTYPES: dict[str, torch.dtype] = {
    "BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
    "I8": torch.int8, "I16": torch.int16, "I32": torch.int32, "I64": torch.int64,
    "U8": torch.uint8, "BOOL": torch.bool,
}
for _st, _tn in (("U16", "uint16"), ("U32", "uint32"), ("U64", "uint64"),
                 ("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2")):
    if hasattr(torch, _tn):
        _ST_DTYPES[_st] = getattr(torch, _tn)
_TORCH_TO_ST = {v: k for k, v in _ST_DTYPES.items()}

_MAX_HEADER = 100 << 20  # the format's own limit on the JSON header


def _check_little_endian():
    """safetensors data is little-endian; the I/O here views it in native order."""
    if sys.byteorder != "little":
        raise NotImplementedError("safetensors I/O here assumes a little-endian host")


def save_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                     metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` to a .safetensors file (tensors stored contiguous, little-endian,
    ordered by decreasing element size then name, like the reference implementation;
    the header is space-padded to a multiple of 8 bytes). ``metadata`` defaults to
    ``{"format": "pt"}``."""
    _check_little_endian()
    header: dict[str, object] = {}
    meta = {"format": "pt"} if metadata is None else dict(metadata)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise TypeError("safetensors metadata must map str to str")
    if meta:
        header["__metadata__"] = meta
    order = []
    for name, t in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"bad tensor name {name!r}")
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in _TORCH_TO_ST:
            raise TypeError(f"{name}: dtype {t.dtype} has no safetensors code")
        order.append(name)
    order.sort(key=lambda n: (-tensors[n].element_size(), n))
    off = 0
    for name in order:
        t = tensors[name]
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": _TORCH_TO_ST[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + nbytes]}
        off += nbytes
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * (-(8 + len(hbytes)) % 8)
    with open(path, "wb") as f:
        f.write(len(hbytes).to_bytes(8, "little"))
        f.write(hbytes)
        for name in order:
            t = tensors[name].detach().cpu().contiguous().reshape(-1)
            if t.numel():
                f.write(memoryview(t.view(torch.uint8).numpy()))


def safetensors_header(path: str | os.PathLike) -> tuple[dict, int]:
    """The parsed JSON header of a .safetensors file (``__metadata__`` included, if any)
    and the file offset where the tensor data begins."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise ValueError(f"{path}: too short for a safetensors file")
        n = int.from_bytes(raw, "little")
        if n > min(_MAX_HEADER, size - 8):
            raise ValueError(f"{path}: header length {n} is larger than the file allows")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: the safetensors header is not valid JSON ({e})") from e
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the safetensors header is not a JSON object")
    return header, 8 + n


def _entry(path, header, data_start, file_size, name):
    """(dtype, shape, absolute begin, nbytes) of tensor ``name``, validated."""
    e = header[name]
    try:
        dtype = _ST_DTYPES[e["dtype"]]
        shape = tuple(int(s) for s in e["shape"])
        begin, end = (int(v) for v in e["data_offsets"])
    except KeyError as err:
        raise ValueError(f"{path}: tensor {name!r} has unsupported or missing {err}") from err
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    if end - begin != nbytes or begin < 0 or data_start + end > file_size:
        raise ValueError(f"{path}: tensor {name!r} has data_offsets {[begin, end]} that do "
                         f"not fit its {e['dtype']} shape {list(shape)} ({nbytes} bytes) "
                         f"or the file")
    return dtype, shape, data_start + begin, nbytes


def load_safetensors(path: str | os.PathLike, names=None, *,
                     mmap: bool = False) -> dict[str, torch.Tensor]:
    """Read tensors from a .safetensors file.

    Args:
        names: the tensors to read (None: all). Only their byte ranges are read.
        mmap: False (default): each tensor is read straight into its own new torch buffer
            (one copy, from the file). True: the tensors are copy-on-write views of a numpy
            memmap of the file (nothing read until touched; the file must outlive them and
            not be rewritten in place).

    Raises:
        KeyError: a requested name is not in the file (the message lists what is missing).
        ValueError: a malformed header.
    """
    _check_little_endian()
    header, data_start = safetensors_header(path)
    avail = [k for k in header if k != "__metadata__"]
    if names is None:
        names = avail
    else:
        names = list(names)
        missing = [n for n in names if n not in header or n == "__metadata__"]
        if missing:
            raise KeyError(f"{path}: no tensor(s) {missing}")
    file_size = os.path.getsize(path)
    entries = {n: _entry(path, header, data_start, file_size, n) for n in names}
    out: dict[str, torch.Tensor] = {}
    if mmap:
        mm = np.memmap(path, dtype=np.uint8, mode="c") if file_size else None
        for n, (dtype, shape, begin, nbytes) in entries.items():
            if nbytes == 0:
                out[n] = torch.empty(shape, dtype=dtype)
                continue
            buf = torch.from_numpy(mm[begin:begin + nbytes])
            out[n] = buf.view(dtype).reshape(shape)
        return out
    with open(path, "rb", buffering=0) as f:
        for n, (dtype, shape, begin, nbytes) in sorted(entries.items(), key=lambda x: x[1][2]):
            buf = torch.empty(nbytes, dtype=torch.uint8)
            view = memoryview(buf.numpy())
            f.seek(begin)
            got = 0
            while got < nbytes:
                k = f.readinto(view[got:])
                if not k:
                    raise ValueError(f"{path}: file ends inside tensor {n!r}")
                got += k
            out[n] = buf.view(dtype).reshape(shape)
    return {n: out[n] for n in names}


# ----------------------------------------------------------------------------- HF checkpoints

def _hf_config_dict(cfg: Qwen3Config, num_layers: int) -> dict:
    """The config.json contents of a Qwen3 checkpoint with ``num_layers`` layers."""
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": None,
        "num_hidden_layers": num_layers,
        "hidden_act": "silu",
        "attention_bias": False,
        "torch_dtype": "bfloat16",
    }


def _split(sizes: list[int], shards: int) -> list[int]:
    """Cut points 0 = c0 < c1 < ... < c_shards = len(sizes), balancing bytes per shard."""
    n, total = len(sizes), sum(sizes)
    cum = np.cumsum([0] + sizes)
    cuts = [0]
    for k in range(1, shards):
        want = int(np.searchsorted(cum, total * k / shards, side="left"))
        cuts.append(max(cuts[-1] + 1, min(want, n - (shards - k))))
    return cuts + [n]


def save_hf_checkpoint(directory: str | os.PathLike, cfg: Qwen3Config,
                       layers: dict[int, LayerWeights], shards: int = 1) -> None:
    """Write a Hugging Face style Qwen3 checkpoint of the given decoder layers.

    Files: ``config.json`` (``num_hidden_layers`` = max layer + 1) and either
    ``model.safetensors`` (shards == 1) or ``model-0000k-of-0000n.safetensors`` plus
    ``model.safetensors.index.json`` (``{"metadata": {"total_size"}, "weight_map"}``).
    Tensors are split over the shards in layer order, balanced by bytes (a layer may span
    two shards). Tensors are written in their own dtype (bf16 for LayerWeights).
    """
    if not layers:
        raise ValueError("save_hf_checkpoint: no layers given")
    if shards < 1:
        raise ValueError(f"save_hf_checkpoint: shards must be >= 1, got {shards}")
    os.makedirs(directory, exist_ok=True)
    named: list[tuple[str, torch.Tensor]] = []
    for layer in sorted(layers):
        w = layers[layer]
        exp = expected_shapes(cfg)
        for field, t in w.items():
            if tuple(t.shape) != exp[field]:
                raise ValueError(f"layer {layer} {field}: expected shape {list(exp[field])}, "
                                 f"got {list(t.shape)}")
        names = hf_names(layer)
        named += [(names[f], t) for f, t in w.items()]
    if shards > len(named):
        raise ValueError(f"save_hf_checkpoint: {shards} shards for only {len(named)} tensors")
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
        json.dump(_hf_config_dict(cfg, max(layers) + 1), f, indent=2)
        f.write("\n")
    if shards == 1:
        save_safetensors(os.path.join(directory, "model.safetensors"), dict(named))
        return
    cuts = _split([t.numel() * t.element_size() for _, t in named], shards)
    weight_map = {}
    for k in range(shards):
        fname = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        part = dict(named[cuts[k]:cuts[k + 1]])
        save_safetensors(os.path.join(directory, fname), part)
        weight_map.update({n: fname for n in part})
    total = sum(t.numel() * t.element_size() for _, t in named)
    with open(os.path.join(directory, "model.safetensors.index.json"), "w",
              encoding="utf-8") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")


def _weight_files(directory: str) -> dict[str, str]:
    """Tensor name -> file (absolute) for the checkpoint in ``directory``."""
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as f:
            wm = json.load(f).get("weight_map")
        if not isinstance(wm, dict):
            raise ValueError(f"{index}: no weight_map object")
        return {n: os.path.join(directory, p) for n, p in wm.items()}
    single = os.path.join(directory, "model.safetensors")
    files = [single] if os.path.isfile(single) else sorted(
        os.path.join(directory, p) for p in os.listdir(directory)
        if p.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"{directory}: no model.safetensors, index or *.safetensors")
    out = {}
    for p in files:
        out.update({n: p for n in safetensors_header(p)[0] if n != "__metadata__"})
    return out


def load_hf_layer(directory: str | os.PathLike, layer: int,
                  cfg: Qwen3Config | None = None) -> LayerWeights:
    """Read decoder layer ``layer`` from a Hugging Face Qwen3 checkpoint (single file or
    sharded with an index), reading only that layer's tensors, and return them as bf16.

    ``cfg`` defaults to the directory's config.json.

    Raises:
        KeyError: a tensor of the layer is not in the checkpoint.
        ValueError: a tensor's shape differs from the config's (names tensor, expected, got).
    """
    directory = os.fspath(directory)
    cfg = get_config(directory) if cfg is None else cfg
    where = _weight_files(directory)
    names = hf_names(layer)
    missing = [n for n in names.values() if n not in where]
    if missing:
        raise KeyError(f"{directory}: layer {layer} tensor(s) not in the checkpoint: {missing}")
    by_file: dict[str, list[str]] = {}
    for n in names.values():
        by_file.setdefault(where[n], []).append(n)
    got: dict[str, torch.Tensor] = {}
    for path, ns in by_file.items():
        got.update(load_safetensors(path, ns))
    exp = expected_shapes(cfg)
    out = {}
    for field, n in names.items():
        t = got[n]
        if tuple(t.shape) != exp[field]:
            raise ValueError(f"{n}: expected shape {list(exp[field])} for config "
                             f"{cfg.name!r}, got {list(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{n}: expected a floating-point tensor, got {t.dtype}")
        out[field] = t if t.dtype == torch.bfloat16 else t.to(torch.bfloat16)
    return LayerWeights(**out)
