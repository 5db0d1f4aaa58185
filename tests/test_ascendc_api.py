"""The declare-only Ascend C header (tests/ascendc_api) type-checks real-shaped kernels.

No NPU or CANN is needed: g++ -fsyntax-only against tests/ascendc_api/kernel_operator.h, which
declares the public Ascend C API with its real template parameters and argument order.
"""
import shutil
import subprocess
from pathlib import Path

import pytest

API_DIR = Path(__file__).resolve().parent / "ascendc_api"
GXX = shutil.which("g++")

pytestmark = pytest.mark.skipif(GXX is None, reason="g++ is not installed")


def _syntax_check(source: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [GXX, "-std=c++17", "-fsyntax-only", "-I", str(API_DIR), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_smoke_mixed_kernel_compiles():
    result = _syntax_check(API_DIR / "smoke.cpp")
    assert result.returncode == 0, result.stderr


# A small vector+cross-core kernel; {call} is replaced by the line under test.
_SNIPPET = """
#include "kernel_operator.h"
using namespace AscendC;
extern "C" __global__ __aicore__ void snippet(GM_ADDR x, GM_ADDR y)
{{
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_MIX_AIC_1_2);
    TPipe pipe;
    TQue<TPosition::VECIN, 1> qIn;
    TQue<TPosition::VECOUT, 1> qOut;
    pipe.InitBuffer(qIn, 1, 256 * sizeof(float));
    pipe.InitBuffer(qOut, 1, 256 * sizeof(half));
    GlobalTensor<float> xGm;
    xGm.SetGlobalBuffer((__gm__ float*)x, 256);
    LocalTensor<float> src = qIn.AllocTensor<float>();
    LocalTensor<half> dst = qOut.AllocTensor<half>();
    const uint32_t n = 256;
    {call}
}}
"""

# (what is wrong, a correct call, the same call made wrong)
_CASES = [
    ("missing template arguments", "CrossCoreSetFlag<2, PIPE_FIX>(3);", "CrossCoreSetFlag(3);"),
    (
        "round mode and count swapped",
        "Cast(dst, src, RoundMode::CAST_RINT, n);",
        "Cast(dst, src, n, RoundMode::CAST_RINT);",
    ),
    (
        "event id passed as a template argument",
        "SetFlag<HardEvent::MTE2_V>(EVENT_ID0); WaitFlag<HardEvent::MTE2_V>(EVENT_ID0);",
        "SetFlag<HardEvent::MTE2_V, EVENT_ID0>();",
    ),
    ("double scalar for a float tensor", "Muls(src, src, 0.5f, n);", "Muls(src, src, 0.5, n);"),
    (
        "GM_ADDR not cast to the element type",
        "GlobalTensor<float> g; g.SetGlobalBuffer((__gm__ float*)y, n);",
        "GlobalTensor<float> g; g.SetGlobalBuffer(y, n);",
    ),
    (
        "cross-core mode not on A2/A3",
        "CrossCoreSetFlag<1, PIPE_MTE3>(3);",
        "CrossCoreSetFlag<4, PIPE_MTE3>(3);",
    ),
    ("element types differ", "DataCopy(src, xGm, n);", "DataCopy(dst, xGm, n);"),
]


@pytest.mark.parametrize("what,good,bad", _CASES, ids=[c[0] for c in _CASES])
def test_wrong_call_does_not_compile(tmp_path, what, good, bad):
    ok_file = tmp_path / "good.cpp"
    ok_file.write_text(_SNIPPET.format(call=good))
    ok = _syntax_check(ok_file)
    assert ok.returncode == 0, f"control for '{what}' should compile:\n{ok.stderr}"

    bad_file = tmp_path / "bad.cpp"
    bad_file.write_text(_SNIPPET.format(call=bad))
    result = _syntax_check(bad_file)
    assert result.returncode != 0, f"'{what}' compiled but must not: {bad}"
    assert "error" in result.stderr
