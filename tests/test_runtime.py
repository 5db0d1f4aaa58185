"""The runtime: the backend table, compile / run_jit / bind across targets, the bound
launcher's checks, launch state on the compiled kernel, golden reporting, the Qwen3 CLI
on cuda. Without a GPU, target "cuda" runs in Triton's CPU interpreter."""
import dataclasses
import os
import re
from pathlib import Path

import pytest
import torch

HAS_GPU = torch.cuda.is_available()
if not HAS_GPU:  # before Triton is imported: it reads the switch then
    os.environ["TRITON_INTERPRET"] = "1"
HAS_TRITON = True
try:
    import triton  # noqa: F401
except ImportError:
    HAS_TRITON = False

import mixtile as mt  # noqa: E402
from tilelang_models.kernels import gemm as G  # noqa: E402
from tilelang_models.kernels import vector as V  # noqa: E402

DEV = "cuda" if HAS_GPU else "cpu"  # where target "cuda" takes its tensors
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="needs Triton")
TARGETS = ["sim", pytest.param("cuda", marks=needs_triton)]


def _dev(target):
    return DEV if target == "cuda" else "cpu"


@mt.kernel
def _scale(x: mt.Tensor["R", "C", mt.f32], y: mt.Out["R", "C", mt.f32],
           a: mt.Scalar[mt.f32], T: mt.const = 8, TC: mt.const = 32):
    R, C = x.shape
    for blk in mt.spmd(mt.cdiv(R, T)):
        t = mt.load(x[blk * T:blk * T + T, 0:TC])
        mt.store(y[blk * T:blk * T + T, 0:TC], t * a + 1.0)


@mt.kernel
def _first_blocks(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32],
                  nb: mt.Scalar[mt.i32], T: mt.const = 8):
    """Writes only the first nb tiles of y: the grid comes from a scalar argument."""
    for blk in mt.spmd(nb):
        mt.store(y[blk * T:blk * T + T], mt.load(x[blk * T:blk * T + T]) * 2.0)


@mt.kernel
def _two_phase(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32], T: mt.const = 16):
    """Phase 1 writes 2x into a workspace, phase 2 reads it back: a workspace that lives
    across a syncall (a launch boundary on a GPU)."""
    ws = mt.workspace(("N",), mt.f32, "ws")
    for blk in mt.spmd(mt.cdiv(x.shape[0], T)):
        mt.store(ws[blk * T:blk * T + T], mt.load(x[blk * T:blk * T + T]) * 2.0)
        mt.fence()
        mt.syncall(mt.CoreType.AIV, mt.SyncMode.SOFT)
        mt.store(y[blk * T:blk * T + T], mt.load(ws[blk * T:blk * T + T]) + 1.0)


@mt.kernel
def _half_written(x: mt.Tensor["N", mt.f32], y: mt.Out["N", mt.f32], T: mt.const = 8):
    """Stores only the first tile of y."""
    for blk in mt.spmd(1):
        mt.store(y[0:T], mt.load(x[0:T]))


def _x(*shape, gen=None):
    return torch.randn(*shape, generator=gen or torch.Generator().manual_seed(1))


# ---------------------------------------------------------------- the backend table

def test_one_table_one_vocabulary():
    assert set(mt.BACKENDS) == {"sim", "cuda", "npu"}
    assert mt.get_backend("sim") is mt.BACKENDS["sim"]
    assert mt.BACKENDS["cuda"].machines == ("gpu",)
    assert mt.BACKENDS["sim"].default_machine == mt.BACKENDS["npu"].default_machine == "a2"
    assert mt.get_backend("auto").name == ("cuda" if HAS_GPU and HAS_TRITON else "sim")
    for name in ("tpu", "triton", "ascendc", None):
        with pytest.raises(mt.ArgumentError, match="unknown target") as e:
            mt.get_backend(name)
        assert all(n in str(e.value) for n in ("sim", "cuda", "npu", "auto"))


def test_unknown_target_is_refused_by_compile_and_run_jit():
    with pytest.raises(mt.ArgumentError, match=r"unknown target 'gpu'.*\n.*'sim', 'cuda'"):
        mt.compile(V.softmax, target="gpu")
    with pytest.raises(mt.ArgumentError, match="unknown target 'ascendc'"):
        mt.run_jit(V.softmax, _x(2, 8), torch.empty(2, 8), target="ascendc")


def test_each_target_compiles_for_its_own_machine():
    assert mt.compile(V.softmax).target.name == "a2"
    assert mt.compile(V.softmax, target="cuda").target.name == "gpu"
    assert mt.compile(V.softmax, target="npu").target.name == "a2"
    assert mt.compile(V.softmax, dict(arch="a5"), target="npu").target.name == "a5"
    assert mt.compile(V.softmax, dict(arch="a3")).target.name == "a3"
    ck = mt.compile(V.softmax, target="cuda")
    assert ck.backend is mt.BACKENDS["cuda"] and "target=cuda machine=gpu" in repr(ck)


def test_a_machine_the_target_does_not_compile_for_is_refused():
    with pytest.raises(mt.ArgumentError, match=r"target 'cuda' compiles for gpu, not arch "
                                                r"'a2'") as e:
        mt.compile(V.softmax, dict(arch="a2"), target="cuda")
    assert "leave arch out" in str(e.value)
    with pytest.raises(mt.ArgumentError, match="target 'sim' compiles for a2 / a3 / a5, not "
                                                "arch 'gpu'"):
        mt.run_jit(V.softmax, _x(2, 8), torch.empty(2, 8), compile_cfg=dict(arch="gpu"))


def test_the_old_backend_option_points_to_target():
    with pytest.raises(mt.ArgumentError, match=r"unknown compile_cfg option\(s\) "
                                                r"\['backend'\]") as e:
        mt.compile(V.softmax, dict(backend="triton", arch="gpu"))
    assert 'target="sim" | "cuda" | "npu"' in str(e.value)


def test_pipeline_option_runs_another_backends_passes_where_it_can():
    ck = mt.compile(G.gemm_bias_relu_bf16, dict(pipeline="npu"))
    assert "InsertPipeSync" in ck.ir_after and ck.backend.name == "sim"
    assert "InsertPipeSync" not in mt.compile(G.gemm_bias_relu_bf16).ir_after
    with pytest.raises(mt.ArgumentError, match="target 'sim' cannot run the 'cuda' "
                                                "pipeline's output"):
        mt.compile(V.softmax, dict(pipeline="cuda"))
    with pytest.raises(mt.ArgumentError, match="target 'npu' cannot run the 'sim'"):
        mt.compile(V.softmax, dict(pipeline="sim"), target="npu")


def test_code_per_target():
    assert mt.compile(V.softmax).code.startswith(mt.compile(V.softmax).ir[:20])
    assert "@triton.jit" in mt.compile(V.softmax, target="cuda").code
    assert "__aicore__" in mt.compile(V.softmax, target="npu").code
    with pytest.raises(mt.ArgumentError, match="compiled for target 'cuda'; the Ascend C "
                                                "kernel is made for target 'npu'"):
        _ = mt.compile(V.softmax, target="cuda").ascendc


def test_no_target_name_branches_in_run_jit_or_compile():
    """What differs per target is a field of its Backend record."""
    here = Path(mt.__file__).parent / "runtime"
    for f in ("jit.py", "compiler.py"):
        src = (here / f).read_text()
        assert not re.search(r"""[=!]= *["'](sim|cuda|npu|auto|triton|ascendc)["']""", src), f


def test_missing_hardware_is_named_before_the_arguments_are_checked(monkeypatch):
    monkeypatch.setitem(mt.BACKENDS, "npu", dataclasses.replace(
        mt.BACKENDS["npu"], missing=lambda: ["an Ascend NPU (test)"]))
    with pytest.raises(mt.UnsupportedError, match=r"target 'npu' needs an Ascend NPU "
                                                   r"\(test\)") as e:
        mt.run_jit(V.softmax, _x(2, 8), torch.empty(2, 8), target="npu")
    assert "CANN" in str(e.value)  # the backend's setup hint
    with pytest.raises(mt.UnsupportedError, match="target 'npu' needs"):
        mt.compile(V.softmax, target="npu").bind(_x(2, 8), torch.empty(2, 8))


# ---------------------------------------------------------------- devices

def _gpu_like():
    """The cuda record with a device this machine lacks, to test the device check."""
    return dataclasses.replace(mt.BACKENDS["cuda"], device=lambda: "cuda",
                               missing=lambda: [])


def test_device_check_comes_before_the_overlap_check_and_names_the_argument():
    x = _x(4, 8)  # x passed as both input and output: they overlap, on the wrong device
    with pytest.raises(mt.ArgumentError) as e:
        mt.run_jit(V.softmax, x, x, target=_gpu_like())
    msg = str(e.value)
    assert "argument `x` is on cpu; target 'cuda' needs cuda tensors" in msg, msg
    assert ".cuda()" in msg and "overlap" not in msg


def test_arguments_on_two_devices_are_refused():
    with pytest.raises(mt.ArgumentError, match="argument `y` is on meta; target 'sim' "
                                                "needs cpu tensors"):
        mt.run_jit(V.softmax, _x(2, 8), torch.empty(2, 8, device="meta"))


def test_overlap_is_still_refused_on_the_right_device():
    x = _x(4, 8)
    with pytest.raises(mt.ArgumentError, match="overlap in memory"):
        mt.run_jit(V.softmax, x, x)


# ---------------------------------------------------------------- the bound launcher

@pytest.mark.parametrize("target", TARGETS)
def test_bind_once_call_many(target):
    dev = _dev(target)
    x0, y0 = _x(20, 32).to(dev), torch.empty(20, 32, device=dev)
    launch = mt.compile(_scale, target=target).bind(x0, y0, 2.0)
    assert isinstance(launch, mt.Launcher) and "x[20, 32]" in repr(launch)
    for seed, a in ((2, 3.0), (3, -0.5), (4, 1)):  # fresh inputs; the scalar may change
        x = _x(20, 32, gen=torch.Generator().manual_seed(seed)).to(dev)
        y = torch.empty(20, 32, device=dev)
        assert launch(x, y, a) is None
        torch.testing.assert_close(y.cpu(), x.cpu() * a + 1, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("target", TARGETS)
def test_bound_launcher_follows_a_scalar_that_sets_the_grid(target):
    dev = _dev(target)
    x, y = _x(40).to(dev), torch.zeros(40, device=dev)
    launch = mt.compile(_first_blocks, target=target).bind(x, y, 5)
    for nb in (5, 2, 5):
        y = torch.zeros(40, device=dev)
        launch(x, y, nb)
        torch.testing.assert_close(y[:8 * nb].cpu(), 2 * x[:8 * nb].cpu())
        if nb < 5 and target == "cuda":  # the GPU leaves the rest; the sim poisons it
            assert not y[8 * nb:].any()


@pytest.mark.parametrize("target", TARGETS)
def test_bound_launcher_with_a_workspace_across_a_syncall(target):
    dev = _dev(target)
    launch = mt.compile(_two_phase, target=target).bind(_x(40).to(dev),
                                                        torch.empty(40, device=dev))
    for seed in (5, 6):
        x, y = _x(40, gen=torch.Generator().manual_seed(seed)).to(dev), \
            torch.empty(40, device=dev)
        launch(x, y)
        torch.testing.assert_close(y.cpu(), 2 * x.cpu() + 1)
        res = mt.run_jit(_two_phase, x, y, target=target, golden=lambda x, y: 2 * x + 1)
        assert res.passed, str(res)


@pytest.mark.parametrize("target", TARGETS)
def test_bound_launcher_refuses_another_signature(target):
    dev = _dev(target)
    x, y = _x(16, 32).to(dev), torch.empty(16, 32, device=dev)
    launch = mt.compile(_scale, target=target).bind(x, y, 2.0)
    bad = [
        ((_x(24, 32).to(dev), torch.empty(24, 32, device=dev), 2.0),
         r"argument `x` has shape \[24, 32\]; this launcher was bound to \[16, 32\]"),
        ((x.double(), y, 2.0), "argument `x` has dtype torch.float64; .* bound to "
                               "torch.float32"),
        ((_x(32, 16).to(dev).t(), y, 2.0), r"argument `x` has strides \[1, 16\]; .* "
                                           r"\[32, 1\]"),
        ((x, torch.empty(16, 32, device="meta"), 2.0), "argument `y` has device meta"),
        ((x, y), r"takes 3 runtime arguments \(x, y, a\), got 2"),
        ((x, y, "2"), "argument `a` must be a Python number, got str"),
        ((x, y.numpy() if dev == "cpu" else y.tolist(), 2.0),
         "argument `y` must be a torch.Tensor"),
    ]
    for args, msg in bad:
        with pytest.raises(mt.ArgumentError, match=msg) as e:
            launch(*args)
        assert "bind again" in str(e.value) or "Python number" in str(e.value) \
            or "takes 3" in str(e.value) or "torch.Tensor" in str(e.value)
    big = torch.empty(2, 16, 32, device=dev)
    with pytest.raises(mt.ArgumentError, match="overlap in memory"):
        launch(big[0], big[0], 2.0)  # right signature, but y is x
    launch(big[0], big[1], 2.0)  # new addresses that do not overlap: fine


def test_bind_checks_what_run_jit_checks():
    with pytest.raises(mt.ArgumentError, match="has dtype torch.float64"):
        mt.compile(_scale).bind(_x(4, 8).double(), torch.empty(4, 8), 1.0)
    x = _x(4, 8)
    with pytest.raises(mt.ArgumentError, match="overlap in memory"):
        mt.compile(_scale).bind(x, x, 1.0)
    with pytest.raises(mt.ArgumentError, match="`x` is on meta; target 'sim' needs cpu"):
        mt.compile(_scale).bind(torch.empty(4, 8, device="meta"), torch.empty(4, 8), 1.0)


def test_bind_refuses_sizes_other_than_the_static_ones():
    ck = mt.compile(_scale, dict(static_dims={"R": 16}))
    ck.bind(_x(16, 32), torch.empty(16, 32), 1.0)
    with pytest.raises(mt.ArgumentError, match=r"dim `R` is 24, but `_scale` was compiled "
                                                r"for a static R=16"):
        ck.bind(_x(24, 32), torch.empty(24, 32), 1.0)


def test_binding_the_same_signature_again_is_a_lookup():
    ck = mt.compile(_scale)
    a = ck.bind(_x(8, 32), torch.empty(8, 32), 1.0)
    assert ck.bind(_x(8, 32), torch.empty(8, 32), 3.0) is a
    assert mt.compile(_scale).bind(_x(8, 32), torch.empty(8, 32), 1.0) is a  # cache copy
    assert ck.bind(_x(9, 32), torch.empty(9, 32), 1.0) is not a


# ---------------------------------------------------------------- launch configs

def test_launch_options_are_refused_where_there_are_none():
    x, y = _x(8, 32), torch.empty(8, 32)
    with pytest.raises(mt.ArgumentError, match="target 'sim' has no launch configurations"):
        mt.run_jit(_scale, x, y, 1.0, tune=True)
    with pytest.raises(mt.ArgumentError, match="target 'npu' has no launch configurations"):
        mt.compile(_scale, target="npu").bind(x, y, 1.0, launch_config=(4, 3))


@needs_triton
def test_launch_options_are_checked():
    x, y = _x(8, 32).to(DEV), torch.empty(8, 32, device=DEV)
    ck = mt.compile(_scale, target="cuda")
    with pytest.raises(mt.ArgumentError, match="tune=True and launch_config both"):
        ck.bind(x, y, 1.0, tune=True, launch_config=(4, 3))
    for bad in ((4,), (4, 0), [4, 3], (4.0, 3)):
        with pytest.raises(mt.ArgumentError, match=r"launch_config must be \(num_warps, "
                                                    r"num_stages\)"):
            ck.bind(x, y, 1.0, launch_config=bad)


@needs_triton
def test_launch_configs_live_on_the_compiled_kernel():
    """Each compiled kernel keeps its own launch state (module, grids, configs)."""
    from mixtile.runtime import gpu

    assert not any(hasattr(gpu, n) for n in ("_generated", "_chosen", "_state"))
    x, y = _x(16, 32).to(DEV), torch.empty(16, 32, device=DEV)
    mt.run_jit(_scale, x, y, 1.0, target="cuda", T=16)
    a = mt.compile(_scale, target="cuda", T=16)
    b = mt.compile(_scale, target="cuda", T=4)
    assert [(g, c) for _, g, c in a.launch_configs()] == [(1, (4, 3))]
    assert b.launch_configs() == [] and mt.compile(_scale).launch_configs() == []
    mt.run_jit(_scale, x, y, 1.0, target="cuda", T=4, launch_config=(2, 2))
    assert b.launch_configs() == []  # a forced pair is not a choice to keep


@needs_triton
def test_tuning_goes_through_the_backends_tuner_once(monkeypatch):
    """tune=True asks the backend's tuner for the first launch of each (phase, grid, int
    arguments) and keeps its answer; later calls, tuned or not, reuse it."""
    @mt.kernel
    def k(x: mt.Tensor["N", mt.f32], y: mt.InOut["N", mt.f32], T: mt.const = 16):
        for blk in mt.spmd(mt.cdiv(x.shape[0], T)):
            mt.store(y[blk * T:blk * T + T], mt.load(y[blk * T:blk * T + T])
                     + mt.load(x[blk * T:blk * T + T]))

    calls = []

    def tuner(fn, grid, flat, mutable):
        calls.append((grid, [t.shape for t in mutable]))
        return 2, 2

    monkeypatch.setitem(mt.BACKENDS, "cuda", dataclasses.replace(mt.BACKENDS["cuda"],
                                                                  tuner=tuner))
    x, y = _x(40).to(DEV), torch.zeros(40, device=DEV)
    launch = mt.compile(k, target="cuda").bind(x, y, tune=True)
    launch(x, y)
    launch(x, y)
    mt.run_jit(k, x, y, target="cuda")
    assert calls == [(3, [torch.Size([40])])]
    assert [c for _, _, c in mt.compile(k, target="cuda").launch_configs()] == [(2, 2)]
    torch.testing.assert_close(y.cpu(), 3 * x.cpu())  # each call added x once


# ---------------------------------------------------------------- golden reporting

def test_no_golden_means_nothing_compared():
    res = mt.run_jit(_scale, _x(8, 32), torch.empty(8, 32), 1.0)
    assert res.passed is None and not res and res.comparisons == []
    assert "no golden given, nothing compared" in str(res) and "PASS" not in str(res)


def test_golden_of_the_wrong_shape_names_the_output_and_both_shapes():
    with pytest.raises(mt.ArgumentError, match=r"golden's tensor for output `y` has shape "
                                                r"\[8, 31\]; `y` has shape \[8, 32\]"):
        mt.run_jit(_scale, _x(8, 32), torch.empty(8, 32), 1.0,
                   golden=lambda x, y, a: (x * a + 1)[:, :31])


def test_golden_pass_and_fail_are_reported():
    x = _x(8, 32)
    ok = mt.run_jit(_scale, x, torch.empty(8, 32), 2.0, golden=lambda x, y, a: x * a + 1)
    assert ok.passed is True and ok and str(ok).startswith("PASS on sim")
    bad = mt.run_jit(_scale, x, torch.empty(8, 32), 2.0, golden=lambda x, y, a: x * a)
    assert bad.passed is False and "y: MISMATCH" in str(bad)


def test_never_written_elements_are_named_not_counted_as_mismatches():
    x = _x(20)
    res = mt.run_jit(_half_written, x, torch.empty(20), golden=lambda x, y: x)
    c = res.comparisons[0]
    assert res.passed is False and c.unwritten == 12 and c.mismatches == 0
    assert c.first_unwritten == (8,)
    assert "y: NEVER WRITTEN 12/20 elements (first at (8,)" in str(res)
    res = mt.run_jit(_half_written, x, torch.empty(20))  # no golden: still said
    assert res.passed is None and res.unwritten == {"y": (12, 20)}
    assert "y: 12/20 elements never written" in str(res)
    # a golden that holds NaN there too agrees with the poison
    want = torch.cat([x[:8], torch.full((12,), float("nan"))])
    assert mt.run_jit(_half_written, x, torch.empty(20), golden=lambda x, y: want).passed


def test_wrong_values_where_the_kernel_wrote_are_still_mismatches():
    x = _x(20)
    res = mt.run_jit(_half_written, x, torch.empty(20), golden=lambda x, y: x + 1)
    c = res.comparisons[0]
    assert c.mismatches == 8 and c.unwritten == 12 and "mismatches=8/20" in str(c)


# ---------------------------------------------------------------- the Qwen3 CLI on cuda

@needs_triton
def test_qwen3_cli_on_cuda_compiles_for_the_gpu():
    """The CLI compiled every kernel for the Ascend a2 (hard syncall in a launch of 96
    blocks on 24 clusters); now for the GPU, and it runs on the backend's device. Triton's
    interpreter has no bf16 tl.dot (it multiplies the bit patterns), so there the numbers
    are not checked; on a GPU they are."""
    from tilelang_models.qwen3 import __main__ as cli

    res = cli.run(["--config", "tiny", "--target", "cuda", "--batch", "2", "--seq", "24"])
    assert res["target"] == "cuda" and res["compile_s"] >= 0
    if HAS_GPU:
        assert res["passed"], res
    with pytest.raises(mt.ArgumentError, match="target 'cuda' compiles for gpu"):
        cli.run(["--config", "tiny", "--target", "cuda", "--arch", "a5"])
