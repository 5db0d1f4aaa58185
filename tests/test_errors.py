"""User mistakes: each raises a mixtile error naming the DSL line, the numbers and a fix."""
import inspect

import pytest
import torch

import mixtile as mt
from tilelang_models.kernels import gemm as G


def _line_of(fn, needle: str) -> int:
    src, start = inspect.getsourcelines(fn)
    for i, line in enumerate(src):
        if needle in line:
            return start + i
    raise AssertionError(needle)


def _no_compiler_frames(excinfo):
    """The error is raised on purpose: a MixtileError, not a crash inside the compiler."""
    assert isinstance(excinfo.value, mt.MixtileError)


# ------------------------------------------------------------------ arguments

def test_wrong_argument_count():
    with pytest.raises(mt.ArgumentError, match=r"takes 3 runtime arguments \(x, w, y\), got 2"):
        mt.run_jit(G.gemm, torch.zeros(4, 4).bfloat16(), torch.zeros(4, 4).bfloat16())


def test_wrong_dtype_names_the_fix():
    x = torch.zeros(4, 8)
    with pytest.raises(mt.ArgumentError, match=r"(?s)`x` has dtype torch.float32.*bf16.*\.to\("):
        mt.run_jit(G.gemm, x, torch.zeros(4, 8).bfloat16(), torch.zeros(4, 4))


def test_inconsistent_symbolic_dim():
    x, w = torch.zeros(4, 8).bfloat16(), torch.zeros(5, 9).bfloat16()
    with pytest.raises(mt.ArgumentError, match=r"dim `K` is 8 in `x` but 9 in `w`"):
        mt.run_jit(G.gemm, x, w, torch.zeros(4, 5))


def test_wrong_rank_and_static_dim():
    @mt.kernel
    def k(x: mt.Tensor[16, "N", mt.f32], y: mt.Out[16, "N", mt.f32]):
        pass

    with pytest.raises(mt.ArgumentError, match=r"axis 0 is 8, the kernel declares a static 16"):
        mt.run_jit(k, torch.zeros(8, 4), torch.zeros(8, 4))
    with pytest.raises(mt.ArgumentError, match=r"has 1 dims"):
        mt.run_jit(k, torch.zeros(16), torch.zeros(16, 4))


def test_unknown_constant_and_target():
    x = torch.zeros(4, 8).bfloat16()
    with pytest.raises(mt.ArgumentError, match=r"no constant parameter\(s\) \['TQ'\]"):
        mt.run_jit(G.gemm, x, x, torch.zeros(4, 4), TQ=3)
    with pytest.raises(mt.ArgumentError, match="unknown target"):
        mt.run_jit(G.gemm, x, x, torch.zeros(4, 4), target="tpu")


# ------------------------------------------------------------------ tracing

def test_shape_mismatch_names_the_line():
    @mt.kernel
    def bad(x: mt.Tensor["N", "M", mt.f32], y: mt.Out["N", "M", mt.f32]):
        for blk in mt.spmd(1):
            a = mt.load(x[0:8, 0:16])
            b = mt.load(x[0:8, 0:8])
            mt.store(y[0:8, 0:16], a + b)  # BAD

    with pytest.raises(mt.TraceError) as ei:
        mt.compile(bad)
    msg = str(ei.value)
    assert f"{__file__}:{_line_of(bad.fn, '# BAD')}" in msg
    assert "[8, 16] and [8, 8] do not broadcast" in msg and "fix:" in msg


def test_python_if_on_runtime_value():
    @mt.kernel
    def bad(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32]):
        for blk in mt.spmd(2):
            if blk > 0:  # BAD
                pass

    with pytest.raises(mt.TraceError, match="cannot drive a Python `if`") as ei:
        mt.compile(bad)
    assert f":{_line_of(bad.fn, '# BAD')}" in str(ei.value)


def test_non_constant_tile_extent():
    @mt.kernel
    def bad(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32]):
        for blk in mt.spmd(2):
            n = x.shape[0]
            mt.store(y[0:n], mt.load(x[0:n]))

    with pytest.raises(mt.TraceError, match="not a compile-time constant"):
        mt.compile(bad)


def test_store_dtype_mismatch_suggests_cast():
    @mt.kernel
    def bad(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.bf16]):
        for blk in mt.spmd(1):
            mt.store(y[0:16], mt.load(x[0:16]))

    with pytest.raises(mt.TraceError, match=r"(?s)f32 tile into a bf16 tensor.*astype\(mt.bf16\)"):
        mt.compile(bad)


def test_matmul_k_mismatch():
    @mt.kernel
    def bad(x: mt.Tensor["M", "K", mt.f16], y: mt.Out["M", "M", mt.f32]):
        for blk in mt.spmd(1):
            a = mt.load(x[0:16, 0:32])
            mt.store(y[0:16, 0:16], mt.matmul(a, a))

    with pytest.raises(mt.TraceError, match="K mismatch: a gives K=32, b gives K=16"):
        mt.compile(bad)


def test_value_escaping_loop_body():
    @mt.kernel
    def bad(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32]):
        for blk in mt.spmd(1):
            for i in mt.range(0, 4):
                t = mt.load(x[0:16])
            mt.store(y[0:16], t)  # BAD

    with pytest.raises(mt.TraceError, match="used after that body ended") as ei:
        mt.compile(bad)
    assert f":{_line_of(bad.fn, '# BAD')}" in str(ei.value)


def test_loop_carried_type_change():
    @mt.kernel
    def bad(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.bf16]):
        for blk in mt.spmd(1):
            acc = mt.zeros((16,))
            for i in mt.range(0, 4):
                acc = (acc + mt.load(x[0:16])).astype(mt.bf16)
            mt.store(y[0:16], acc)

    with pytest.raises(mt.TraceError, match="changes type inside mt.range"):
        mt.compile(bad)


def test_store_into_input_is_rejected():
    @mt.kernel
    def bad(x: mt.Tensor["N", mt.f32]):
        for blk in mt.spmd(1):
            mt.store(x[0:16], mt.load(x[0:16]) + 1.0)

    with pytest.raises(mt.MixtileError, match=r"mt.Out or mt.InOut"):
        mt.compile(bad)


def test_non_cpu_tensor_for_the_simulator():
    x = torch.empty(4, 8, dtype=torch.bfloat16, device="meta")
    with pytest.raises(mt.ArgumentError, match="`x` is on meta; target .sim. needs cpu"):
        mt.run_jit(G.gemm, x, x, torch.empty(4, 4, device="meta"))


def test_hardware_targets_say_what_is_missing():
    x = torch.zeros(4, 8).bfloat16()
    with pytest.raises(mt.UnsupportedError, match="target 'npu' needs "):
        mt.run_jit(G.gemm, x, x, torch.zeros(4, 4), target="npu")


def test_equality_on_runtime_values_is_not_a_python_bool():
    @mt.kernel
    def bad(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32]):
        for blk in mt.spmd(2):
            if blk == 0:  # BAD
                pass

    with pytest.raises(mt.TraceError, match="cannot drive a Python `if`") as ei:
        mt.compile(bad)
    assert f":{_line_of(bad.fn, '# BAD')}" in str(ei.value)


def test_tile_work_outside_spmd_and_nested_spmd():
    @mt.kernel
    def outside(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32]):
        mt.store(y[0:16], mt.load(x[0:16]))

    with pytest.raises(mt.TraceError, match="outside mt.spmd"):
        mt.compile(outside)

    @mt.kernel
    def nested(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32]):
        for blk in mt.spmd(2):
            for b2 in mt.spmd(2):
                pass

    with pytest.raises(mt.TraceError, match="mt.spmd inside"):
        mt.compile(nested)


@mt.kernel
def _aiv_syncall_on_clusters(y: mt.Out["N", mt.f32]):
    for blk in mt.spmd(mt.target().clusters):  # a vector-only kernel: one block per AIV
        mt.store(y[blk:blk + 1], mt.full((1,), 1.0))
        mt.fence()
        mt.syncall(mt.CoreType.AIV, mt.SyncMode.HARD)


def test_hard_syncall_grid_fix_names_the_core_count_of_the_kernel():
    """A vector-only kernel's hard syncall needs one block per AIV: the fix says
    mt.target().aiv_count (not clusters), with the numbers."""
    with pytest.raises(mt.SyncallError) as e:
        mt.compile(_aiv_syncall_on_clusters)
    msg = str(e.value)
    assert "24 blocks on 48 AIV cores" in msg and "mt.target().aiv_count" in msg


def test_load_rows_must_be_an_index():
    @mt.kernel
    def bad(x: mt.Tensor["M", mt.f32], y: mt.Out["M", mt.f32]):
        for b in mt.spmd(1):
            mt.store(y[0:16], mt.load(x[0:16], rows=2.5))

    with pytest.raises(mt.TraceError) as e:
        mt.compile(bad)
    assert "rows must be an int or an index value" in str(e.value) and "2.5" in str(e.value)
    assert "test_errors.py" in str(e.value)


def test_an_output_that_overlaps_another_argument_is_refused():
    """An Out/InOut sharing memory with another argument is refused on every target: the
    simulator would read the input as it was before the call, a GPU or NPU program might
    read elements another thread already overwrote."""
    from tilelang_models.kernels import vector as V

    x = torch.randn(32, 64)
    with pytest.raises(mt.ArgumentError) as e:
        mt.run_jit(V.softmax, x, x)  # in place
    msg = str(e.value)
    assert "`x` and `y`" in msg and "softmax" in msg and "writes `y`" in msg
    assert "tensor of its own" in msg
    buf = torch.randn(48, 64)
    with pytest.raises(mt.ArgumentError, match="bytes 4096..8192 of `x`"):
        mt.run_jit(V.softmax, buf[:32], buf[16:])  # rows 16..31 shared
    # views that do not overlap, and one tensor read twice, are fine
    y = torch.empty(32, 64)
    mt.run_jit(V.softmax, buf[:16], buf[16:32])
    assert torch.allclose(buf[16:32], torch.softmax(buf[:16], -1), atol=1e-5)
    xb = x[:, :32].bfloat16()
    mt.run_jit(G.gemm, xb, xb, y[:, :32].contiguous(), TM=16, TN=32, TK=32)


# ------------------------------------------------------------------ signatures and regions

@pytest.mark.parametrize("dims", [(0, 8), (8, -1), (8, "not a name"), (True, 8)])
def test_a_bad_tensor_extent_is_located(dims):
    with pytest.raises(mt.TraceError, match=r"dim \d is") as ei:
        def k(x: mt.Tensor[dims[0], dims[1], mt.f32]):  # BAD
            pass
    assert ei.value.loc.line == _line_of(test_a_bad_tensor_extent_is_located, "# BAD")
    assert "symbolic" in ei.value.fix


def test_a_tensor_annotation_without_a_dtype_is_located():
    with pytest.raises(mt.TraceError, match="needs dims then a dtype") as ei:
        def k(x: mt.Out["M", 8]):  # BAD
            pass
    assert ei.value.loc.line == _line_of(test_a_tensor_annotation_without_a_dtype_is_located,
                                         "# BAD")


@pytest.mark.parametrize("region", ["split", "aiv", "aic"])
def test_work_for_the_other_core_inside_a_region_is_reported_at_its_line(region):
    @mt.kernel
    def k(x: mt.Tensor["M", "K", mt.f16], w: mt.Tensor["N", "K", mt.f16],
          y: mt.Out["M", "N", mt.f32]):
        for b in mt.spmd(1):
            if region == "split":
                with mt.split_aiv(2, mode=mt.SplitMode.NONE):
                    mt.store(y[0:16, 0:16], mt.matmul(mt.load(x[0:16, 0:32]),  # CUBE-split
                                                      mt.load(w[0:16, 0:32]), b_trans=True))
            elif region == "aiv":
                with mt.on_core(mt.CoreType.AIV):
                    mt.store(y[0:16, 0:16], mt.matmul(mt.load(x[0:16, 0:32]),  # CUBE-aiv
                                                      mt.load(w[0:16, 0:32]), b_trans=True))
            else:
                with mt.on_core(mt.CoreType.AIC):
                    mt.store(y[0:16, 0:32], mt.exp(mt.load(x[0:16, 0:32]).astype(mt.f32)))  # VEC

    what = "vector" if region == "aic" else "cube"
    with pytest.raises(mt.TraceError, match=f"is {what} work inside") as ei:
        mt.compile(k)
    marker = {"split": "# CUBE-split", "aiv": "# CUBE-aiv", "aic": "# VEC"}[region]
    here = test_work_for_the_other_core_inside_a_region_is_reported_at_its_line
    assert ei.value.loc.line == _line_of(here, marker)
