import pytest
import torch

import mixtile as mt


@pytest.fixture
def gen():
    """A fresh torch generator per test (seeded by pytest's random order is not needed)."""
    return torch.Generator().manual_seed(torch.seed() % (2**31))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Keep the disk compile cache of each test in its own folder."""
    import mixtile.runtime.compiler as c

    monkeypatch.setitem(c._DEFAULTS, "cache_dir", str(tmp_path / "cache"))
    c.clear_memory_cache()
    yield


# ragged sizes for the symbolic dims of the example kernels (tilelang_models.kernels)
EXAMPLE_SIZES = {"M": 37, "K": 70, "N": 50, "R": 9, "C": 100, "H": 100, "I": 40, "N2": 80,
                 "G": 5, "S": 300, "D": 128}


def random_args(kern, gen, sizes=EXAMPLE_SIZES, out=torch.zeros):
    """Arguments for an example kernel from its signature: random inputs (weights, the
    2-d inputs with 50 or 80 rows, scaled by 0.1), outputs from `out`, scalars 1e-6."""
    from mixtile.ir.types import Role
    from mixtile.runtime.jit import TORCH_DTYPE

    specs = dict(kern.tensors) | dict(kern.scalars)
    args = []
    for name in kern.order:
        spec = specs[name]
        if not hasattr(spec, "dims"):
            args.append(1e-6)
            continue
        shape = [d if isinstance(d, int) else sizes[d] for d in spec.dims]
        dt = TORCH_DTYPE[spec.dtype]
        if spec.role is Role.OUT:
            args.append(out(shape, dtype=dt))
        else:
            scale = 0.1 if len(shape) == 2 and shape[0] in (50, 80) else 1.0
            args.append((torch.randn(shape, generator=gen) * scale).to(dt))
    return args


@mt.kernel
def mixed_rows(a: mt.Tensor["M", "K", mt.f16], b: mt.Tensor["N", "K", mt.f16],
                r: mt.Tensor["M", "N", mt.f32], n: mt.Scalar[mt.i32],
                y: mt.Out["M", "N", mt.f32], TM: mt.const = 5, TN: mt.const = 16,
                TK: mt.const = 32):
    """A cube product plus a vector-side load of the first n rows: the 5 rows are split
    3 / 2 between the two lanes, and the lanes' row limit meets rows= (smin)."""
    N = b.shape[0]
    for blk in mt.spmd(mt.cdiv(N, TN)):
        n0 = blk * TN
        acc = mt.matmul(mt.load(a[0:TM, 0:TK]), mt.load(b[n0:n0 + TN, 0:TK]), b_trans=True)
        mt.store(y[0:TM, n0:n0 + TN], acc + mt.load(r[0:TM, n0:n0 + TN], rows=n))
