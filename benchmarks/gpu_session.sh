#!/usr/bin/env bash
# One device call: the GPU tests (Triton backend, runtime, registry coverage, the model,
# prefill, MoE), the Qwen3 CLI on cuda with its golden check, the Qwen3 layer vs the
# reference on the GPU, the host time per launch, then the decode-layer benchmark
# (NO_BENCH=1: not; STEPS=1: also the per-step profile and a kernel trace; MOE=1: the MoE
# block benchmark; MOE_LAYER=1: the MoE decode layer; MODEL=1: the whole-model benchmark
# at 0.6B, minutes of tuning per batch size). Logs go to $OUT.
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
python3 -c 'import torch, triton; print(torch.__version__, triton.__version__, torch.cuda.get_device_name())'
GPU_TESTS=${GPU_TESTS:-"tests/test_triton.py tests/test_runtime.py tests/test_registry.py tests/test_op_coverage.py tests/test_model.py tests/test_prefill.py tests/test_chunked_prefill.py tests/test_moe_backends.py"}
python3 -m pytest -q $GPU_TESTS 2>&1 | tee $OUT/gpu_tests.log | tail -15
for cfg in "--config tiny" "--config 14b --batch 8 --seq 4096 --block-size 128"; do
    timeout 300 python3 -m tilelang_models.qwen3 $cfg --target cuda 2>&1 | tail -1 | tee -a $OUT/cli.log
done
python3 - <<'PY' 2>&1 | tee $OUT/qwen3_gpu.log
import torch
from tilelang_models.qwen3.config import get_config
from tilelang_models.qwen3.decode_layer import DecodeLayer
from tilelang_models.qwen3.paged import make_paged_cache
from tilelang_models.qwen3.reference import decode_layer_ref
from tilelang_models.qwen3.weights import random_weights
for name, lens in [("tiny", [100, 37, 5]), ("14b", [4096, 3000, 17, 1])]:
    cfg = get_config(name)
    w = random_weights(cfg, 0)
    w = type(w)(**{k: v.cuda() for k, v in vars(w).items()})
    kc, vc, bt, sl = (t.cuda() for t in make_paged_cache(cfg, lens, 16 if name == "tiny" else 128, 1))
    x = torch.randn(len(lens), cfg.hidden_size, device="cuda").bfloat16()
    kr, vr = kc.clone(), vc.clone()
    want = decode_layer_ref(cfg, w, x, kr, vr, bt, sl)
    layer = DecodeLayer(cfg, w, target="cuda", progress=False)
    k2, v2 = kc.clone(), vc.clone()
    got = layer(x, kc, vc, bt, sl).clone()
    rel = float((got.float() - want.float()).abs().max() / want.float().abs().max())
    krel = float((kc.float() - kr.float()).abs().max() / kr.float().abs().max())
    print(name, "rel_err out", rel, "k cache", krel, "v equal", bool(torch.equal(vc, vr)))
    got2 = layer(x, k2, v2, bt, sl, x_ssq=layer.input_ssq(x))  # as inside a model
    rel2 = float((got2.float() - want.float()).abs().max() / want.float().abs().max())
    print(name, "with x_ssq: rel_err out", rel2, "v equal", bool(torch.equal(v2, vr)))
PY
timeout 120 python3 benchmarks/host_overhead.py 2>&1 | tee $OUT/host_overhead.log | tail -6
[ -n "${NO_BENCH:-}" ] || timeout 420 python3 benchmarks/decode_layer_gpu.py "$@" 2>&1 | tee $OUT/bench.log | tail -12
# STEPS=1: each step's time in the layer's own launch sequence too (batch 1, 8, 32)
[ -z "${STEPS:-}" ] || timeout 300 python3 benchmarks/gpu_tile_sweep.py --what steps,trace 2>&1 | tee $OUT/steps.log | grep -v Warn | cut -c1-400
# MoE: the block (with each launch's time inside its CUDA graph) takes ~6 min on an H100
# with tuning; the MoE decode layer (attention over 4096 cached positions) is MOE_LAYER=1
[ -z "${MOE:-}" ] || timeout 400 python3 benchmarks/moe_gpu.py --config 30b-a3b --tokens 1,8,32 --prefill 4096 --profile --seq 0 2>&1 | tee $OUT/moe.log | grep -v -i warn | tail -30
[ -z "${MOE_LAYER:-}" ] || timeout 400 python3 benchmarks/moe_gpu.py --config 30b-a3b --tokens 1,8,32 --seq 4096 --layer-only 2>&1 | tee $OUT/moe_layer.log | grep -v -i warn | tail -12
[ -z "${MODEL:-}" ] || timeout 400 python3 benchmarks/model_gpu.py --configs 0.6b --batches 1,8,32 2>&1 | tee $OUT/model.log | grep -v -i warn | tail -8
