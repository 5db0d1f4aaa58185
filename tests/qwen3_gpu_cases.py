"""The Qwen3 decode layer's GPU kernels at a tiny size, for tests/test_triton.py; run as a
script, it compiles every generated phase (bf16) to PTX for sm_90 with Triton's compiler
(no GPU needed; not under TRITON_INTERPRET) and prints "ptx ok" per phase."""
import inspect
import os
import tempfile

import torch

import mixtile as mt


def _qwen3_f16():
    """tilelang_models/qwen3/kernels.py with fp16 for bf16 throughout (helpers too)."""
    from tilelang_models.qwen3 import kernels as Q

    ns = {"__name__": "qwen3_kernels_f16"}
    src = inspect.getsource(Q).replace("mt.bf16", "mt.f16")
    exec(compile(src, inspect.getsourcefile(Q), "exec"), ns)  # noqa: S102
    return type("Q16", (), ns)


def qwen3_cases(f16: bool = False):
    """(name, kernel, args, constants) of the Qwen3 layer's GPU kernels at a tiny size;
    attention with several splits (two launches) and with one (one launch). f16: the
    kernels and tensors in fp16 (for the interpreter)."""
    from tilelang_models.qwen3 import kernels as Q
    from tilelang_models.qwen3.config import get_config
    from tilelang_models.qwen3.paged import make_paged_cache

    cfg = get_config("tiny")
    gen = torch.Generator().manual_seed(3)
    h, hq, kvh, d = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, \
        cfg.head_dim
    b, n, i = 3, 80, 96

    Q = _qwen3_f16() if f16 else Q
    half = torch.float16 if f16 else torch.bfloat16

    def t(*s, scale=1.0):
        return (torch.randn(*s, generator=gen) * scale).to(half)

    x, g = t(b, h), (torch.rand(h, generator=gen) + 0.5).to(half)
    ssq = x.float().pow(2).view(b, 4, -1).sum(-1)  # 4 partials per row
    z = lambda *s: torch.zeros(*s, dtype=half)  # noqa: E731
    gemm = dict(TM=16, TN=32, TK=32)
    lens = [37, 16, 1]
    kc, vc, bt, sl = make_paged_cache(cfg, lens, 8, 2)
    kc, vc = kc.to(half), vc.to(half)
    qkv = t(len(lens), hq + 2 * kvh, d)
    qn, kn = t(d, scale=0.3) + 1, t(d, scale=0.3) + 1
    att = dict(HQ=hq, KVH=kvh, D=d, BS=8, eps=cfg.rms_norm_eps, theta=cfg.rope_theta)
    return [
        ("rmsnorm_gemm", Q.rmsnorm_gemm, [x, g, t(n, h, scale=0.1), z(b, n), 1e-6], gemm),
        ("rmsnorm_gemm_folded", Q.rmsnorm_gemm_folded, [x, ssq, t(n, h, scale=0.1), z(b, n),
                                                        1e-6], dict(NT=4, **gemm)),
        ("gemm_residual_sumsq", Q.gemm_residual_sumsq,
         [x, t(n, h, scale=0.1), t(b, n), z(b, n), torch.zeros(b, 3)], gemm),
        ("rmsnorm_swiglu_folded", Q.rmsnorm_swiglu_folded,
         [x, ssq, t(i, h, scale=0.1), t(i, h, scale=0.1), z(b, i), 1e-6],
         dict(NT=4, **gemm)),
        ("fa_fused_split3", Q.fa_fused, [qkv, qn, kn, kc, vc, bt, sl, z(len(lens), hq, d)],
         dict(NSPLIT=3, GRID=len(lens) * kvh * 3, **att)),
        ("fa_fused_split1", Q.fa_fused, [qkv, qn, kn, kc, vc, bt, sl, z(len(lens), hq, d)],
         dict(NSPLIT=1, GRID=len(lens) * kvh, **att)),
    ]


PTR = {"bf16": "*bf16", "f16": "*fp16", "f32": "*fp32", "i32": "*i32",
       "f8e4m3": "*fp8e4nv"}


def ptx_for_hopper(name: str, ck, tmp: str) -> None:
    """Compile each launch of the compiled kernel ck's generated Triton source for sm_90
    with Triton's compiler (no GPU needed); prints "<name> <launch> ptx ok" per launch."""
    import importlib.util

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from mixtile.codegen.triton import generate
    from mixtile.ir.types import TensorType

    src, launches = generate(ck.kernel)
    path = os.path.join(tmp, f"mt_hopper_{name}.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location(f"mt_hopper_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sig = {}
    for p in ck.kernel.params:
        t = p.value.type
        if isinstance(t, TensorType):
            sig[p.name] = PTR[t.dtype.short]
            for d in range(len(t.shape)):
                sig[f"{p.name}_d{d}"] = sig[f"{p.name}_s{d}"] = "i32"
        else:
            sig[p.name] = "fp32" if t.dtype.is_float else "i32"
    for la in launches:
        k = triton.compile(ASTSource(getattr(mod, la["fn"]), sig, {}),
                           target=GPUTarget("cuda", 90, 32),
                           options={"num_warps": 4, "num_stages": 3})
        assert ".entry" in k.asm["ptx"], (name, la["fn"])
        print(name, la["fn"], "ptx ok", flush=True)


def compile_for_hopper() -> None:
    tmp = tempfile.mkdtemp()
    for name, kern, _args, consts in qwen3_cases():
        ptx_for_hopper(name, mt.compile(kern, target="cuda", **consts), tmp)


if __name__ == "__main__":
    compile_for_hopper()
