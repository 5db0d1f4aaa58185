"""What the layer CLIs (`python -m tilelang_models.qwen3`, dense and MoE) share: the error
figures of an output against its reference, and --emit-ascendc."""
from __future__ import annotations

import json
from pathlib import Path

import torch

import mixtile as mt


def err(got: torch.Tensor, want: torch.Tensor) -> tuple[float, float]:
    """(max |got - want|, that over max |want|)."""
    g, w = got.float(), want.float()
    abs_err = float((g - w).abs().max()) if g.numel() else 0.0
    scale = float(w.abs().max()) if w.numel() else 1.0
    return abs_err, abs_err / max(scale, 1e-12)


def emit_ascendc(name: str, layer, a) -> dict:
    """Write the Ascend C source of each of `layer`'s kernels (layer.kernels(batch,
    block_size)) into a.emit_ascendc; print and return one JSON summary."""
    out = Path(a.emit_ascendc)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (kern, consts) in enumerate(layer.kernels(a.batch, a.block_size)):
        ak = mt.compile(kern, dict(arch=a.arch), target="npu", **consts).ascendc
        path = out / f"{i}_{ak.name}.cpp"
        path.write_text(ak.source)
        files.append({"file": str(path), "kernel_type": ak.kernel_type,
                      "tiling": [f.name for f in ak.tiling]})
        print(f"{path}: {ak.kernel_type}, {len(ak.source.splitlines())} lines")
    summary = {"config": name, "arch": a.arch, "batch": a.batch, "kernels": files}
    print(json.dumps(summary))
    return summary
