// Hand-written mixed cube/vector kernel against the declare-only tests/ascendc_api/kernel_operator.h.
// Only type-checked (g++ -std=c++17 -fsyntax-only -I tests/ascendc_api); never run.
//
//   AIC : C[16x16] = A[16x16] (half) @ B[16x16] (half), fp32 accumulation in L0C, written to a
//         GM workspace by Fixpipe (NZ -> ND), then CrossCoreSetFlag<mode 2, PIPE_FIX> to its AIVs.
//   AIV : both vector lanes wait on the flag, each copies its half of the rows into UB,
//         computes exp, converts to half and writes it out. Then all cores SyncAll<false>().
//
// Launch type KERNEL_TYPE_MIX_AIC_1_2: one AIC + two AIVs per block (group). On dav_c220
// GetBlockIdx() is the group index on the AIC but group*2 + sub-block on an AIV, so the group
// is GetBlockIdx() / GetTaskRation() there; GetSubBlockIdx() is 0/1 on the AIVs.
#include "kernel_operator.h"

using namespace AscendC;

namespace {
constexpr int32_t TILE_M = 16;
constexpr int32_t TILE_N = 16;
constexpr int32_t TILE_K = 16;
constexpr uint16_t FLAG_C2V = 3;  // flag ids 0..10 are available on Atlas A2/A3
constexpr int32_t ROWS_PER_AIV = TILE_M / 2;
constexpr int32_t ELEMS_PER_AIV = ROWS_PER_AIV * TILE_N;

__aicore__ inline void CubePart(TPipe& pipe, GlobalTensor<half>& aGm, GlobalTensor<half>& bGm,
                                GlobalTensor<float>& wsGm)
{
    TQue<TPosition::A1, 1> qA1;
    TQue<TPosition::B1, 1> qB1;
    TQue<TPosition::A2, 1> qA2;
    TQue<TPosition::B2, 1> qB2;
    TQue<TPosition::CO1, 1> qC;
    pipe.InitBuffer(qA1, 1, TILE_M * TILE_K * sizeof(half));
    pipe.InitBuffer(qB1, 1, TILE_K * TILE_N * sizeof(half));
    pipe.InitBuffer(qA2, 1, TILE_M * TILE_K * sizeof(half));
    pipe.InitBuffer(qB2, 1, TILE_K * TILE_N * sizeof(half));
    pipe.InitBuffer(qC, 1, TILE_M * TILE_N * sizeof(float));

    // GM (ND) -> L1 (NZ)
    LocalTensor<half> a1 = qA1.AllocTensor<half>();
    LocalTensor<half> b1 = qB1.AllocTensor<half>();
    Nd2NzParams ndA(1, TILE_M, TILE_K, 0, TILE_K, TILE_M, 1, 0);
    Nd2NzParams ndB(1, TILE_K, TILE_N, 0, TILE_N, TILE_K, 1, 0);
    DataCopy(a1, aGm, ndA);
    DataCopy(b1, bGm, ndB);
    qA1.EnQue(a1);
    qB1.EnQue(b1);
    a1 = qA1.DeQue<half>();
    b1 = qB1.DeQue<half>();

    // L1 -> L0A / L0B (one 16x16 half fractal each; B transposed into the zN layout)
    LocalTensor<half> a2 = qA2.AllocTensor<half>();
    LocalTensor<half> b2 = qB2.AllocTensor<half>();
    LoadData2DParams ldA;
    ldA.repeatTimes = 1;
    ldA.srcStride = 1;
    LoadData(a2, a1, ldA);
    LoadData2DParams ldB(0, 1, 1, 0, 0, true, 0);
    LoadData(b2, b1, ldB);
    qA2.EnQue(a2);
    qB2.EnQue(b2);
    qA1.FreeTensor(a1);
    qB1.FreeTensor(b1);
    a2 = qA2.DeQue<half>();
    b2 = qB2.DeQue<half>();

    // L0A x L0B -> L0C (fp32)
    LocalTensor<float> c = qC.AllocTensor<float>();
    MmadParams mm;
    mm.m = TILE_M;
    mm.n = TILE_N;
    mm.k = TILE_K;
    mm.cmatrixInitVal = true;
    Mmad(c, a2, b2, mm);
    qC.EnQue(c);
    qA2.FreeTensor(a2);
    qB2.FreeTensor(b2);
    c = qC.DeQue<float>();

    // L0C -> GM workspace, NZ -> ND, no quantisation (float stays float)
    FixpipeParamsV220 fp;
    fp.nSize = TILE_N;
    fp.mSize = TILE_M;
    fp.srcStride = TILE_M;
    fp.dstStride = TILE_N;
    fp.ndNum = 1;
    fp.quantPre = QuantMode_t::NoQuant;
    Fixpipe<float, float, CFG_ROW_MAJOR>(wsGm, c, fp);
    qC.FreeTensor(c);

    // Tell both AIVs of this block that the workspace tile is written (issued on the FIX pipe,
    // i.e. after the Fixpipe above).
    CrossCoreSetFlag<2, PIPE_FIX>(FLAG_C2V);
}

__aicore__ inline void VectorPart(TPipe& pipe, GlobalTensor<float>& wsGm, GlobalTensor<half>& outGm)
{
    TQue<TPosition::VECIN, 1> qIn;
    TQue<TPosition::VECOUT, 1> qOut;
    TBuf<TPosition::VECCALC> tmp;
    pipe.InitBuffer(qIn, 1, ELEMS_PER_AIV * sizeof(float));
    pipe.InitBuffer(qOut, 1, ELEMS_PER_AIV * sizeof(half));
    pipe.InitBuffer(tmp, ELEMS_PER_AIV * sizeof(float));

    const int64_t offset = GetSubBlockIdx() * ELEMS_PER_AIV;
    CrossCoreWaitFlag(FLAG_C2V);

    LocalTensor<float> x = qIn.AllocTensor<float>();
    DataCopy(x, wsGm[offset], ELEMS_PER_AIV);
    qIn.EnQue(x);
    x = qIn.DeQue<float>();

    LocalTensor<float> e = tmp.Get<float>();
    Exp(e, x, ELEMS_PER_AIV);
    PipeBarrier<PIPE_V>();
    Muls(e, e, static_cast<float>(0.5), ELEMS_PER_AIV);
    PipeBarrier<PIPE_V>();
    LocalTensor<half> y = qOut.AllocTensor<half>();
    Cast(y, e, RoundMode::CAST_RINT, ELEMS_PER_AIV);
    qOut.EnQue(y);
    qIn.FreeTensor(x);

    y = qOut.DeQue<half>();
    DataCopy(outGm[offset], y, ELEMS_PER_AIV);
    qOut.FreeTensor(y);

    // Hand-rolled intra-core ordering example: MTE3 (store) before a later MTE2 (load).
    SetFlag<HardEvent::MTE3_MTE2>(EVENT_ID0);
    WaitFlag<HardEvent::MTE3_MTE2>(EVENT_ID0);
}
}  // namespace

extern "C" __global__ __aicore__ void mixtile_smoke_gemm_exp(GM_ADDR a, GM_ADDR b, GM_ADDR out,
                                                             GM_ADDR workspace)
{
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_MIX_AIC_1_2);
    // GetTaskRation() is 1 on the AIC and 2 on an AIV of a MIX_AIC_1_2 kernel.
    const int64_t block = GetBlockIdx() / GetTaskRation();

    GlobalTensor<half> aGm;
    GlobalTensor<half> bGm;
    GlobalTensor<float> wsGm;
    GlobalTensor<half> outGm;
    aGm.SetGlobalBuffer((__gm__ half*)a + block * TILE_M * TILE_K, TILE_M * TILE_K);
    bGm.SetGlobalBuffer((__gm__ half*)b, TILE_K * TILE_N);
    wsGm.SetGlobalBuffer((__gm__ float*)workspace + block * TILE_M * TILE_N, TILE_M * TILE_N);
    outGm.SetGlobalBuffer((__gm__ half*)out + block * TILE_M * TILE_N, TILE_M * TILE_N);

    TPipe pipe;
    if ASCEND_IS_AIC {
        CubePart(pipe, aGm, bGm, wsGm);
    }
    if ASCEND_IS_AIV {
        VectorPart(pipe, wsGm, outGm);
    }
    SyncAll<false>();
}
