"""README demo: a GEMM with a bias + ReLU + bf16 writeback on the simulator, golden-checked.

    python -m tilelang_models.demo [--m 100 --n 300 --k 200] [--seed 0]
"""
import argparse
import json
import sys

import torch

import mixtile as mt
from tilelang_models.kernels.gemm import gemm_bias_relu_bf16


def reference(x, w, bias, y):
    return torch.relu(x.float() @ w.float().T + bias).to(torch.bfloat16)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=100)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--k", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    g = torch.Generator().manual_seed(a.seed)
    x = torch.randn(a.m, a.k, generator=g).to(torch.bfloat16)
    w = (torch.randn(a.n, a.k, generator=g) / a.k ** 0.5).to(torch.bfloat16)
    bias = torch.randn(a.n, generator=g)
    y = torch.empty(a.m, a.n, dtype=torch.bfloat16)
    ck = mt.compile(gemm_bias_relu_bf16)
    if ck.from_cache:
        print(f"compiled kernel taken from the {ck.from_cache} cache")
    else:
        print("passes:\n" + ck.pass_report())
    res = mt.run_jit(gemm_bias_relu_bf16, x, w, bias, y, target="sim", golden=reference)
    print(res)
    print(json.dumps({"kernel": "gemm_bias_relu_bf16", "m": a.m, "n": a.n, "k": a.k,
                      "target": res.target, "max_abs_err": res.max_abs_err,
                      "rel_err": res.max_rel_err, "passed": res.passed,
                      "compile_s": round(res.compile_s, 4), "run_s": round(res.run_s, 4)}))
    return 0 if res.passed else 1


if __name__ == "__main__":
    sys.exit(main())
