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


@pytest.mark.parametrize("source", ["smoke.cpp", "smoke_extra.cpp"])
def test_smoke_mixed_kernel_compiles(source):
    result = _syntax_check(API_DIR / source)
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
    # InitConstValue: the params' value type must equal the tensor's element type.
    (
        "InitConstValueParams of another type",
        "InitConstValue(src, InitConstValueParams<float>(1, 8, 0, 0.0f));",
        "InitConstValue(src, InitConstValueParams<half>(1, 8, 0, 0.0f));",
    ),
    (
        "InitConstValue without params struct",
        "InitConstValueParams<float> p; p.repeatTimes = 1; p.blockNum = 8; InitConstValue(src, p);",
        "InitConstValue(src, 1, 8, 0, 0.0f);",
    ),
    # CreateVecIndex / ArithProgression: the scalar is deduced together with the tensor type.
    (
        "int literal as CreateVecIndex start for a float tensor",
        "CreateVecIndex(src, static_cast<float>(0), n);",
        "CreateVecIndex(src, 0, n);",
    ),
    (
        "ArithProgression start and step of different types",
        "ArithProgression(src, 0.0f, 1.0f, static_cast<int32_t>(n));",
        "ArithProgression(src, 0.0f, 1, static_cast<int32_t>(n));",
    ),
    # Advanced math: the shared temporary buffer is a LocalTensor<uint8_t>.
    (
        "float tmp buffer for Tanh",
        "LocalTensor<uint8_t> tmp; Tanh(src, src, tmp, n);",
        "LocalTensor<float> tmp; Tanh(src, src, tmp, n);",
    ),
    ("dst/src types differ for Sin", "Sin(src, src, n);", "Sin(dst, src, n);"),
    (
        "Erf with calCount before the tmp buffer",
        "LocalTensor<uint8_t> tmp; Erf(src, src, tmp, n);",
        "LocalTensor<uint8_t> tmp; Erf(src, src, n, tmp);",
    ),
    (
        "Cos with a template argument that is not a type",
        "Cos<float, true>(src, src, n);",
        "Cos<true>(src, src, n);",
    ),
    # DataCacheCleanAndInvalid: CacheLine then DcciDst, both mandatory, not deducible.
    (
        "DataCacheCleanAndInvalid without CacheLine",
        "DataCacheCleanAndInvalid<float, CacheLine::SINGLE_CACHE_LINE,"
        " DcciDst::CACHELINE_OUT>(xGm);",
        "DataCacheCleanAndInvalid<float>(xGm);",
    ),
    (
        "DataCacheCleanAndInvalid template arguments swapped",
        "DataCacheCleanAndInvalid<float, CacheLine::ENTIRE_DATA_CACHE,"
        " DcciDst::CACHELINE_ALL>(xGm);",
        "DataCacheCleanAndInvalid<float, DcciDst::CACHELINE_OUT,"
        " CacheLine::SINGLE_CACHE_LINE>(xGm);",
    ),
    # L1 -> bias table: element types may differ only with DataCopyParams, not with a count.
    (
        "L1->BT type change with a count",
        "DataCopy(dst, src, DataCopyParams(1, 1, 0, 0));",
        "DataCopy(dst, src, n);",
    ),
    # Mmad with a bias tensor: bias goes before the params.
    (
        "Mmad bias after params",
        "LocalTensor<half> a; MmadParams mm; mm.cmatrixInitVal = false; Mmad(src, a, a, src, mm);",
        "LocalTensor<half> a; MmadParams mm; mm.cmatrixInitVal = false; Mmad(src, a, a, mm, src);",
    ),
    # TBuf::GetWithOffset<T>(elements, byteOffset): T is not deducible.
    (
        "GetWithOffset without element type",
        "TBuf<TPosition::C2> bt; pipe.InitBuffer(bt, 1024);"
        " LocalTensor<float> b = bt.GetWithOffset<float>(16, 64);",
        "TBuf<TPosition::C2> bt; pipe.InitBuffer(bt, 1024);"
        " LocalTensor<float> b = bt.GetWithOffset(16, 64);",
    ),
    # Select, tensor-scalar mode: the scalar has the tensor's type; SELMODE is scoped.
    (
        "double scalar for Select on float",
        "LocalTensor<uint8_t> m; Select(src, m, src, 0.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, n);",
        "LocalTensor<uint8_t> m; Select(src, m, src, 0.0, SELMODE::VSEL_TENSOR_SCALAR_MODE, n);",
    ),
    (
        "unscoped SELMODE enumerator",
        "LocalTensor<uint8_t> m; CompareScalar(m, src, 1.0f, CMPMODE::LE, n);"
        " Select(src, m, src, 1.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, n);",
        "LocalTensor<uint8_t> m; CompareScalar(m, src, 1.0f, CMPMODE::LE, n);"
        " Select(src, m, src, 1.0f, VSEL_TENSOR_SCALAR_MODE, n);",
    ),
    # SyncAll hard form: isAIVOnly is a template argument, not a runtime one.
    ("SyncAll mode as runtime argument", "SyncAll<false>();", "SyncAll(false);"),
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
