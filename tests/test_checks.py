"""Every checker rejects a deliberately broken kernel, naming the line and the numbers."""
import inspect

import pytest
import torch

import mixtile as mt


def _line(fn, needle):
    src, start = inspect.getsourcelines(fn)
    return start + next(i for i, s in enumerate(src) if needle in s)


def test_capacity_l0c_overflow_at_compile_time():
    from tilelang_models.kernels.gemm import gemm

    # a 256x256 f32 accumulator is 256 KiB; L0C has 128 KiB
    with pytest.raises(mt.CapacityError) as ei:
        mt.compile(gemm, TM=256, TN=256, TK=64)
    msg = str(ei.value)
    assert "L0C" in msg and "262144" in msg and "131072" in msg and "fix:" in msg


def test_capacity_ub_overflow_names_kernel_line():
    @mt.kernel
    def big(x: mt.Tensor["N", "C", mt.f32], y: mt.Out["N", "C", mt.f32]):
        for blk in mt.spmd(1):
            t = mt.load(x[0:64, 0:1024])  # 256 KiB in UB (184 KiB usable)
            mt.store(y[0:64, 0:1024], mt.exp(t))

    with pytest.raises(mt.CapacityError, match="UB") as ei:
        mt.compile(big)
    assert f":{_line(big.fn, '256 KiB')}" in str(ei.value)


@mt.kernel
def gather(x: mt.Tensor["N", "H", mt.f32], idx: mt.Tensor["B", mt.i32],
           y: mt.Out["B", "H", mt.f32], TH: mt.const = 32):
    for b in mt.spmd(idx.shape[0]):
        r = idx[b]
        mt.store(y[b:b + 1, 0:TH], mt.load(x[r:r + 1, 0:TH]))  # GATHER


def test_out_of_bounds_gm_read_from_bad_index():
    x = torch.randn(10, 32)
    idx = torch.tensor([1, 12, 3], dtype=torch.int32)  # 12 is past the 10 rows
    y = torch.full((3, 32), 7.0)
    with pytest.raises(mt.OutOfBoundsError) as ei:
        mt.run_jit(gather, x, idx, y)
    msg = str(ei.value)
    assert f":{_line(gather.fn, '# GATHER')}" in msg and "12" in msg and "10" in msg
    assert torch.all(y == 7.0), "outputs must not be partially written on a failed check"


def test_out_of_bounds_scalar_read():
    @mt.kernel
    def k(lens: mt.Tensor["B", mt.i32], y: mt.Out["B", mt.i32]):
        for b in mt.spmd(1):
            n = lens[b + 5]  # BAD
            mt.store(y[0:1], mt.zeros((1,), mt.i32) + n)

    with pytest.raises(mt.OutOfBoundsError) as ei:
        mt.run_jit(k, torch.zeros(3, dtype=torch.int32), torch.zeros(3, dtype=torch.int32))
    assert f":{_line(k.fn, '# BAD')}" in str(ei.value)


def test_uninitialised_read_of_output():
    @mt.kernel
    def k(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32]):
        for b in mt.spmd(1):
            mt.store(y[0:16], mt.load(x[0:16]))
            t = mt.load(y[8:24])  # BAD: y[16:24] never written
            mt.store(y[0:16], t)

    with pytest.raises(mt.UninitializedReadError) as ei:
        mt.run_jit(k, torch.zeros(32), torch.zeros(32))
    assert f":{_line(k.fn, '# BAD')}" in str(ei.value) and "8" in str(ei.value)


def test_atomic_add_into_unzeroed_output_is_an_uninitialised_read():
    @mt.kernel
    def k(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32]):
        for b in mt.spmd(2):
            mt.atomic_add(y[0:16], mt.load(x[0:16]))  # BAD

    with pytest.raises(mt.UninitializedReadError):
        mt.run_jit(k, torch.zeros(16), torch.zeros(16))


def test_illegal_path_at_compile_time():
    @mt.kernel
    def k(x: mt.Tensor["N", "K", mt.f16], y: mt.Out["N", "K", mt.f16]):
        for b in mt.spmd(1):
            t = mt.load(x[0:16, 0:16], space=mt.L1)
            mt.store(y[0:16, 0:16], t)  # BAD: L1 has no path to GM

    with pytest.raises(mt.IllegalPathError, match="no data path from L1 to GM") as ei:
        mt.compile(k)
    assert f":{_line(k.fn, '# BAD')}" in str(ei.value)


def test_illegal_path_caught_by_simulator_when_not_legalized():
    @mt.kernel
    def k(x: mt.Tensor["N", "K", mt.f16], y: mt.Out["N", "K", mt.f16]):
        for b in mt.spmd(1):
            t = mt.load(x[0:16, 0:16], space=mt.L0A)  # BAD: GM -> L0A is no path
            mt.store(y[0:16, 0:16], mt.move(t, mt.UB))

    x = torch.randn(16, 16).half()
    y = torch.zeros(16, 16).half()
    cfg = dict(skip=("LegalizePaths", "ClassifyCores"), verify=False)
    with pytest.raises(mt.IllegalPathError, match="GM.*L0A") as ei:
        mt.run_jit(k, x, y, compile_cfg=cfg)
    assert f":{_line(k.fn, '# BAD')}" in str(ei.value)
    # legalized, the same kernel routes GM->L1->L0A and is rejected only for L0A->UB
    with pytest.raises(mt.IllegalPathError, match="no data path from L0A to UB"):
        mt.compile(k)
