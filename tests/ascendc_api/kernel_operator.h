// Declare-only stand-in for the Ascend C "kernel_operator.h", for syntax/type checking with
// the system g++ (`g++ -std=c++17 -fsyntax-only -I tests/ascendc_api file.cpp`). Nothing here
// is implemented and nothing links. It covers the subset of the Ascend C API that the mixtile
// backend emits, with the template parameters, argument order and parameter types of the
// public API, so that a wrong call fails to compile.
//
// Sources (see README.md for the full list and version notes):
//   [DEVKIT]  gitcode.com/cann/asc-devkit (the open-sourced Ascend C headers, CANN 8.5/9.0 line),
//             read through the GitHub mirror cannmirror/asc-devkit, include/basic_api/*.h and
//             include/adv_api/{activation,math,index}/*.h. Paths below are relative to that repository.
//   [DOC80]   hiascend.com Ascend C API reference, canncommercial/800 (CANN 8.0.0) and the
//             8.0.RC2/8.0.RC3/8.1.RC1 community editions, page ids atlasascendc_api_07_NNNN.
// Each comment names the header and/or doc page the declaration was matched against; a
// declaration citing only [DEVKIT] was not cross-checked on an 8.x doc page. `UNVERIFIED:`
// marks what could not be confirmed. Target SoC: Atlas A2/A3 (__NPU_ARCH__ 2201, dav-c220).
// A wrong QuantMode_t / event_t / pipe_t VALUE is irrelevant: code must use the names.
#ifndef MIXTILE_TESTS_ASCENDC_KERNEL_OPERATOR_H
#define MIXTILE_TESTS_ASCENDC_KERNEL_OPERATOR_H
#if defined(__GNUC__)
#pragma GCC system_header  // silences "inline function used but never defined" for the stubs
#endif

#include <cstddef>
#include <cstdint>
#include <type_traits>

// ---------------------------------------------------------------- qualifiers and macros
// Real: `#define __aicore__ [aicore]` and __global__/__gm__ are bisheng (clang) keywords /
// address spaces ([DEVKIT] impl/utils/sys_macros.h, kernel_macros.h). Empty for g++.
#define __aicore__
#define __global__
#define __gm__
#define __ubuf__
#define __cbuf__
// [DEVKIT] kernel_utils_macros.h: `#define GM_ADDR __gm__ uint8_t*`
#define GM_ADDR __gm__ uint8_t*

// bisheng builtin scalar types (global namespace on the device compiler). Modelled as distinct
// 16-bit structs: implicit from/to float, so `static_cast<half>(x)` works, but template
// argument deduction stays exact (a float scalar for a LocalTensor<half> op does not deduce,
// as on the real compiler). Layout/arithmetic are NOT modelled.
struct half {
    uint16_t bits;
    half() = default;
    half(float v);
    operator float() const;
};
struct bfloat16_t {
    uint16_t bits;
    bfloat16_t() = default;
    bfloat16_t(float v);
    operator float() const;
};

// pipe_t / event_t are compiler builtins (global namespace). PIPE_S/V/M/MTE1/MTE2/MTE3/FIX/ALL
// and EVENT_ID0..7 are used throughout [DEVKIT] and the docs; PIPE_MTE4/MTE5/V2 only in
// third-party stubs. UNVERIFIED: all numeric values (they differ between stubs).
enum pipe_t {
    PIPE_S = 0, PIPE_V = 1, PIPE_M = 2, PIPE_MTE1 = 3, PIPE_MTE2 = 4, PIPE_MTE3 = 5,
    PIPE_ALL = 6, PIPE_MTE4 = 7, PIPE_MTE5 = 8, PIPE_V2 = 9, PIPE_FIX = 10,
};
enum event_t {
    EVENT_ID0 = 0, EVENT_ID1, EVENT_ID2, EVENT_ID3, EVENT_ID4, EVENT_ID5, EVENT_ID6, EVENT_ID7,
};
// Fixpipe quantisation mode, compiler builtin, unscoped (used as QuantMode_t::F322F16).
// Names from [DOC80] Fixpipe page (07_0251, 8.1.RC1). UNVERIFIED: values (pto-isa cce stub).
enum QuantMode_t {
    NoQuant = 0, F322F16 = 1, F322BF16 = 16, DEQF16 = 5, VDEQF16 = 4,
    QF322B8_PRE = 24, VQF322B8_PRE = 23, REQ8 = 3, VREQ8 = 2,
};

// 设置Kernel类型, [DOC80] canncommercial/800 07_0218; [DEVKIT] kernel_utils_macros.h
// (`enum KernelMetaType : uint8_t`, global namespace). The real KERNEL_TASK_TYPE_DEFAULT
// expands to nothing outside the precompile pass; here it type-checks its argument.
enum KernelMetaType : uint8_t {
    KERNEL_TYPE_AIV_ONLY, KERNEL_TYPE_AIC_ONLY, KERNEL_TYPE_MIX_AIV_1_0, KERNEL_TYPE_MIX_AIC_1_0,
    KERNEL_TYPE_MIX_AIC_1_1, KERNEL_TYPE_MIX_AIC_1_2, KERNEL_TYPE_AICORE, KERNEL_TYPE_VECTORCORE,
    KERNEL_TYPE_MIX_AICORE, KERNEL_TYPE_MIX_VECTOR_CORE, KERNEL_TYPE_MAX,
};
namespace mixtile_ascendc_stub {
constexpr bool IsKernelMetaType(KernelMetaType) { return true; }
}  // namespace mixtile_ascendc_stub
#define KERNEL_TASK_TYPE_DEFAULT(value) \
    static_assert(::mixtile_ascendc_stub::IsKernelMetaType(value), "KERNEL_TASK_TYPE_DEFAULT")
#define KERNEL_TASK_TYPE(key, value) \
    static_assert((key) >= 0 && ::mixtile_ascendc_stub::IsKernelMetaType(value), "KERNEL_TASK_TYPE")

namespace AscendC {
// [DEVKIT] impl/utils/sys_constants.h
constexpr int32_t MIX = 0;
constexpr int32_t AIC = 1;
constexpr int32_t AIV = 2;
}  // namespace AscendC
// Core-type dispatch. Device build: `constexpr int32_t g_coreType` and
// `#define ASCEND_IS_AIV constexpr(g_coreType == AscendC::AIV)` (so `if ASCEND_IS_AIV {` is an
// `if constexpr`). We use the ASCENDC_CPU_DEBUG form of [DEVKIT] sys_macros.h (runtime
// `extern int32_t g_coreType`) so that BOTH the AIC and the AIV branch are type-checked.
extern int32_t g_coreType;
#define ASCEND_IS_AIV (g_coreType == AscendC::AIV)
#define ASCEND_IS_AIC (g_coreType == AscendC::AIC)
#define ASCEND_IS_NOT_AIV (g_coreType != AscendC::AIV)
#define ASCEND_IS_NOT_AIC (g_coreType != AscendC::AIC)

namespace AscendC {
// ---------------------------------------------------------------- enums
// TPosition: [DEVKIT] impl/basic_api/kernel_event.h, doc page "TPosition" (8.0-9.0 identical).
enum class TPosition : uint8_t {
    GM, A1, A2, B1, B2, C1, C2, CO1, CO2, VECIN, VECOUT, VECCALC,
    LCM = VECCALC, SPM, SHM = SPM, TSCM, C2PIPE2GM, C2PIPE2LOCAL, MAX,
};
using QuePosition = TPosition;
// HardEvent: [DEVKIT] kernel_event.h; the SetFlag/WaitFlag doc page (8.5: 07_0270) lists the
// same names up to FIX_MTE3. UNVERIFIED: MTE1_FIX, FIX_MTE1, FIX_FIX on 8.x (header-only names).
enum class HardEvent : uint8_t {
    MTE2_MTE1, MTE1_MTE2, MTE1_M, M_MTE1, MTE2_V, V_MTE2, MTE3_V, V_MTE3, M_V, V_M, V_V,
    MTE3_MTE1, MTE1_MTE3, MTE1_V, MTE2_M, M_MTE2, V_MTE1, M_FIX, FIX_M, MTE3_MTE2, MTE2_MTE3,
    S_V, V_S, S_MTE2, MTE2_S, S_MTE3, MTE3_S, MTE2_FIX, FIX_MTE2, FIX_S, M_S, FIX_MTE3,
    MTE1_FIX, FIX_MTE1, FIX_FIX, MAX,
};
using TEventID = int8_t;
// RoundMode / CMPMODE / SELMODE / ReduceOrder: [DEVKIT] impl/basic_api/utils/kernel_utils_mode.h.
// Note the real order: CAST_FLOOR/CAST_CEIL come before CAST_ROUND (values are not part of
// the API; code must use the names). CAST_HYBRID/EVEN/ZERO exist only on 3510/5102.
enum class RoundMode : uint8_t {
    CAST_NONE = 0, CAST_RINT, CAST_FLOOR, CAST_CEIL, CAST_ROUND, CAST_TRUNC, CAST_ODD,
    UNKNOWN = 0xFF,
};
enum class CMPMODE : uint8_t { LT = 0, GT, EQ, LE, GE, NE };
enum class SELMODE : uint8_t { VSEL_CMPMASK_SPR = 0, VSEL_TENSOR_SCALAR_MODE, VSEL_TENSOR_TENSOR_MODE };
enum class ReduceOrder : uint8_t { ORDER_VALUE_INDEX = 0, ORDER_INDEX_VALUE, ORDER_ONLY_VALUE, ORDER_ONLY_INDEX };
// CMPMODE is {LT, GT, EQ, LE, GE, NE} and SELMODE {VSEL_CMPMASK_SPR, VSEL_TENSOR_SCALAR_MODE,
// VSEL_TENSOR_TENSOR_MODE} (modes 0/1/2); all three modes exist on A2/A3 (Select doc 9.0beta1 07_0070:
// "Atlas A2 ... 支持模式0、1、2"; the Atlas training series has only mode 0).
// CacheLine / DcciDst (template arguments of DataCacheCleanAndInvalid): [DEVKIT]
// impl/basic_api kernel_reg.h / kernel_operator_common_impl.h (both `enum class : uint64_t`, same
// enumerators in the 8.0-era and 9.0 copies); [DOC80] canncommercial/800 07_0177.
enum class CacheLine : uint64_t { SINGLE_CACHE_LINE = 0, ENTIRE_DATA_CACHE };
enum class DcciDst : uint64_t { CACHELINE_ALL = 0, CACHELINE_UB, CACHELINE_OUT, CACHELINE_ATOMIC };

// PrimT<T> is T for plain element types (TensorTrait<T> is not modelled).
template <typename T> using PrimT = T;

// ---------------------------------------------------------------- parameter structs
// [DEVKIT] kernel_struct_data_copy.h (A2/A3 branch). 9.0 also has union aliases srcGap/dstGap
// for srcStride/dstStride; UNVERIFIED for 8.x, so only srcStride/dstStride are declared.
struct DataCopyParams {
    __aicore__ DataCopyParams() {}
    __aicore__ DataCopyParams(const uint16_t count, const uint16_t len, const uint16_t srcStrideIn,
                              const uint16_t dstStrideIn);
    uint16_t blockCount = 1, blockLen = 0, srcStride = 0, dstStride = 0;
};
struct DataCopyExtParams {  // blockLen in bytes (DataCopyPad)
    __aicore__ DataCopyExtParams() {}
    __aicore__ DataCopyExtParams(const uint16_t count, const uint32_t len, const uint32_t srcStrideIn,
                                 const uint32_t dstStrideIn, const uint32_t rsvIn);
    uint16_t blockCount = 1;
    uint32_t blockLen = 0, srcStride = 0, dstStride = 0, rsv = 0;
};
struct DataCopyPadParams {
    __aicore__ DataCopyPadParams() {}
    __aicore__ DataCopyPadParams(const bool isPadValue, const uint8_t leftPadValue,
                                 const uint8_t rightPadValue, const uint64_t padValue);
    bool isPad = false;
    uint8_t leftPadding = 0, rightPadding = 0;
    uint64_t paddingValue = 0;
};
template <typename T> struct DataCopyPadExtParams {
    __aicore__ DataCopyPadExtParams() {}
    __aicore__ DataCopyPadExtParams(const bool isPadValue, const uint8_t leftPadValue,
                                    const uint8_t rightPadValue, T padValue);
    bool isPad = false;
    uint8_t leftPadding = 0, rightPadding = 0;
    T paddingValue = 0;
};
// GM -> L1 with ND->NZ transform (A2/A3 branch: all uint16_t).
struct Nd2NzParams {
    __aicore__ Nd2NzParams() {}
    __aicore__ Nd2NzParams(const uint16_t ndNumIn, const uint16_t nValueIn, const uint16_t dValueIn,
                           const uint16_t srcNdMatrixStrideIn, const uint16_t srcDValueIn,
                           const uint16_t dstNzC0StrideIn, const uint16_t dstNzNStrideIn,
                           const uint16_t dstNzMatrixStrideIn);
    uint16_t ndNum = 0, nValue = 0, dValue = 0, srcNdMatrixStride = 0, srcDValue = 0;
    uint16_t dstNzC0Stride = 0, dstNzNStride = 0, dstNzMatrixStride = 0;
};
// [DEVKIT] kernel_struct_mm.h; the 7-argument constructor is the only non-default one in every
// header version found (8.0-era Apache-2.0 copy and 9.0).
struct LoadData2DParams {
    __aicore__ LoadData2DParams() {}
    __aicore__ LoadData2DParams(const uint16_t startIndexIn, const uint8_t repeatTimesIn,
                                const uint16_t srcStrideIn, const uint8_t sidIn, const uint16_t dstGapIn,
                                const bool ifTransposeIn, const uint8_t addrModeIn);
    uint16_t startIndex = 0, dstGap = 0, srcStride = 0;
    bool ifTranspose = 0;
    uint8_t repeatTimes = 0, sid = 0, addrMode = 0;
};
using LoadData2dParams = LoadData2DParams;
struct LoadData2dTransposeParams {
    __aicore__ LoadData2dTransposeParams() {}
    __aicore__ LoadData2dTransposeParams(const uint16_t startIndexIn, const uint8_t repeatTimesIn,
                                         const uint16_t srcStrideIn, const uint16_t dstGapIn,
                                         const uint16_t dstfracGapIn);
    uint16_t startIndex = 0;
    uint8_t repeatTimes = 0;
    uint16_t srcStride = 0, dstGap = 0, dstFracGap = 0;
    uint8_t addrMode = 0;
};
// Mmad: [DOC80] 8.0.RC3 07_0242 lists the same fields; cmatrixInitVal defaults to true.
// Meaning ([DOC80] 8.0.RC1 07_0101 / 8.0.RC2 07_0239; [DEVKIT] kernel_struct_mm.h comments):
//   cmatrixInitVal = true : the accumulator starts from 0, i.e. C = A*B (the C source is ignored);
//   cmatrixInitVal = false: the accumulator starts from the "C matrix" named by cmatrixSource:
//     cmatrixSource = false: from L0C itself (C += A*B, i.e. K-loop accumulation);
//     cmatrixSource = true : from the bias table (C2), i.e. C = A*B + bias (bias broadcast over M).
// In the 5-argument Mmad(dst, fm, filter, bias, params) the dav_c220 implementation derives
// cmatrixSource from bias.GetPosition() (C2 -> true, CO1 -> false; anything else asserts) and
// IGNORES params.cmatrixSource; params.cmatrixInitVal is passed through unchanged, so a bias add
// needs cmatrixInitVal = false ([DEVKIT] impl kernel_operator_mm_base_impl.h / dav_c220
// kernel_operator_mm_impl.h). In the 4-argument form the hardware flag is
// `cmatrixInitVal && !isBias` (isBias is deprecated; leave it false).
struct MmadParams {
    __aicore__ MmadParams() {}
    __aicore__ MmadParams(const uint16_t mIn, const uint16_t nIn, const uint16_t kIn, const bool isBiasIn,
                          const int32_t fmOffsetIn, const bool enSsparseIn, const bool enWinogradAIn,
                          const bool enWinogradBIn);
    __aicore__ MmadParams(const uint16_t mIn, const uint16_t nIn, const uint16_t kIn,
                          const uint8_t unitFlagIn, const bool cmatrixSourceIn, const bool cmatrixInitValIn);
    uint16_t m = 0, n = 0, k = 0;
    bool isBias = false;
    int32_t fmOffset = 0;
    bool enSsparse = false, enWinogradA = false, enWinogradB = false;
    uint8_t unitFlag = 0;
    bool kDirectionAlign = false;  // UNVERIFIED on 8.x: in the 9.0 header, not in the 8.0 doc
    bool cmatrixSource = false;
    bool cmatrixInitVal = true;
};
// InitConstValue parameters: [DEVKIT] kernel_struct_mm.h (the generic branch, used for
// __NPU_ARCH__ 2201; only 2103/3003/3103/3113 have other layouts); [DOC80] 8.0.RC3 07_0230,
// 8.1.RC1 07_0237, 8.5 07_0237. A2/A3 honour all four fields: repeatTimes in [0, 32767]
// iterations, each writing blockNum blocks (32 B blocks for A1/B1, 512 B blocks for A2/B2),
// dstGap blocks skipped between iterations (same unit). The 2-argument constructor sets only
// repeatTimes/initValue (blockNum = 0!), which is the training-series (512 B per repeat) form.
template <typename T> struct InitConstValueParams {
    __aicore__ InitConstValueParams() {}
    __aicore__ InitConstValueParams(const uint16_t repeatTimesIn, const uint16_t blockNumIn, const uint16_t dstGapIn,
                                    const T initValueIn);
    __aicore__ InitConstValueParams(const uint16_t repeatTimesIn, const T initValueIn);
    uint16_t repeatTimes = 0;
    uint16_t blockNum = 0;
    uint16_t dstGap = 0;
    T initValue = 0;
};
// Fixpipe: [DEVKIT] kernel_struct_fixpipe.h; [DOC80] 8.1.RC1 07_0251. dstStride/srcStride units:
// see the doc (datablocks of 32 B for dstStride on V220).
enum class CO2Layout : uint8_t { NZ = 0, ROW_MAJOR, COLUMN_MAJOR };
struct FixpipeConfig { CO2Layout format; };
constexpr FixpipeConfig CFG_NZ = {CO2Layout::NZ};
constexpr FixpipeConfig CFG_ROW_MAJOR = {CO2Layout::ROW_MAJOR};
constexpr FixpipeConfig CFG_COLUMN_MAJOR = {CO2Layout::COLUMN_MAJOR};
struct FixpipeParamsV220 {
    __aicore__ FixpipeParamsV220() {}
    __aicore__ FixpipeParamsV220(const uint16_t nSizeIn, const uint16_t mSizeIn, const uint16_t srcStrideIn,
                                 const uint32_t dstStrideIn, const bool reluEnIn);
    __aicore__ FixpipeParamsV220(const uint16_t nSizeIn, const uint16_t mSizeIn, const uint16_t srcStrideIn,
                                 const uint32_t dstStrideIn, const bool reluEnIn, const QuantMode_t quantPreIn,
                                 const int64_t deqScalarIn, const uint16_t ndNumIn,
                                 const uint16_t srcNdStrideIn, const uint16_t dstNdStrideIn,
                                 const uint8_t unitFlagIn);
    uint16_t nSize = 0, mSize = 0, srcStride = 0;
    uint32_t dstStride = 0;
    QuantMode_t quantPre = QuantMode_t::NoQuant;
    uint64_t deqScalar;
    uint16_t ndNum = 1, srcNdStride = 0, dstNdStride = 0;
    bool reluEn = false;
    uint8_t unitFlag = 0;
    bool isChannelSplit = false;
};
// [DEVKIT] kernel_struct_binary.h / kernel_struct_unary.h (level-0 vector APIs).
struct BinaryRepeatParams {
    __aicore__ BinaryRepeatParams() {}
    __aicore__ BinaryRepeatParams(const uint8_t dstBlkStrideIn, const uint8_t src0BlkStrideIn,
                                  const uint8_t src1BlkStrideIn, const uint8_t dstRepStrideIn,
                                  const uint8_t src0RepStrideIn, const uint8_t src1RepStrideIn);
    uint32_t blockNumber = 8;
    uint8_t dstBlkStride = 1, src0BlkStride = 1, src1BlkStride = 1;
    uint8_t dstRepStride = 8, src0RepStride = 8, src1RepStride = 8;
    bool repeatStrideMode = false, strideSizeMode = false;
};
struct UnaryRepeatParams {
    __aicore__ UnaryRepeatParams() {}
    __aicore__ UnaryRepeatParams(const uint16_t dstBlkStrideIn, const uint16_t srcBlkStrideIn,
                                 const uint8_t dstRepStrideIn, const uint8_t srcRepStrideIn);
    uint32_t blockNumber = 8;
    uint16_t dstBlkStride = 1, srcBlkStride = 1;
    uint8_t dstRepStride = 8, srcRepStride = 8;
    bool repeatStrideMode = false, strideSizeMode = false, halfBlock = false;
};

// ---------------------------------------------------------------- tensors
// [DEVKIT] include/basic_api/kernel_tensor.h (device branch); doc pages LocalTensor/GlobalTensor.
template <typename T> class LocalTensor {
public:
    using PrimType = PrimT<T>;
    __aicore__ inline LocalTensor() {}
    __aicore__ inline PrimType GetValue(const uint32_t index) const;
    template <typename S> __aicore__ inline void SetValue(const uint32_t index, const S value) const;
    __aicore__ inline LocalTensor operator[](const uint32_t offset) const;
    template <typename U> __aicore__ inline LocalTensor<U> ReinterpretCast() const;
    __aicore__ inline uint32_t GetSize() const;
    __aicore__ inline void SetSize(const uint32_t size);
    __aicore__ inline int32_t GetPosition() const;
    __aicore__ inline uint64_t GetPhyAddr() const;
    __aicore__ inline uint64_t GetPhyAddr(const uint32_t offset) const;
};
template <typename T> class GlobalTensor {
public:
    using PrimType = PrimT<T>;
    __aicore__ inline GlobalTensor() {}
    // Takes `__gm__ T*`: passing a raw GM_ADDR (uint8_t*) without a cast does not compile.
    __aicore__ inline void SetGlobalBuffer(__gm__ PrimType* buffer, uint64_t bufferSize);
    __aicore__ inline void SetGlobalBuffer(__gm__ PrimType* buffer);
    __aicore__ inline const __gm__ PrimType* GetPhyAddr() const;
    __aicore__ inline __gm__ PrimType* GetPhyAddr(const uint64_t offset) const;
    __aicore__ inline PrimType GetValue(const uint64_t offset) const;
    __aicore__ inline void SetValue(const uint64_t offset, PrimType value);
    __aicore__ inline uint64_t GetSize() const;
    __aicore__ inline GlobalTensor operator[](const uint64_t offset) const;
};

// ---------------------------------------------------------------- TPipe / TQue / TBuf
// [DEVKIT] include/basic_api/kernel_tpipe.h. In 9.0 TQue is `template <TPosition pos,
// int32_t depth, auto mask = 0>` deriving from TQueBind; UNVERIFIED: the exact type of `mask`
// in 8.x (an integral non-type parameter either way; code should not pass it).
template <TPosition src, TPosition dst, int32_t depth, auto mask = 0> class TQueBind {
public:
    __aicore__ inline TQueBind();
    template <typename T> __aicore__ inline LocalTensor<T> AllocTensor();
    template <typename T> __aicore__ inline void AllocTensor(LocalTensor<T>& tensor);
    template <typename T> __aicore__ inline void FreeTensor(LocalTensor<T>& tensor);
    template <typename T> __aicore__ inline bool EnQue(const LocalTensor<T>& tensor);
    template <typename T> __aicore__ inline LocalTensor<T> DeQue();
    template <typename T> __aicore__ inline void DeQue(LocalTensor<T>& tensor);
    __aicore__ inline bool VacantInQue();
    __aicore__ inline bool HasTensorInQue();
    __aicore__ inline int32_t GetTensorCountInQue();
    __aicore__ inline bool HasIdleBuffer();
    __aicore__ inline void FreeAllEvent();
};
template <TPosition pos, int32_t depth, auto mask = 0>
class TQue : public TQueBind<pos, pos, depth, mask> {
public:
    __aicore__ inline TQue() = default;
};
// TBuf<pos>: pos may be any buffer position, not only VECCALC. The 8.x/9.0 doc pages (TBuf 07_0154 /
// 07_0162) name only VECCALC, but the implementation is position-generic (InitBuffer allocates in
// the physical buffer of pos: A1/B1/C1 -> L1, A2 -> L0A, B2 -> L0B, CO1 -> L0C, C2 -> bias table
// (1 KB on A2/A3), VECIN/VECOUT/VECCALC -> UB), and CANN's own code uses TBuf<TPosition::CO1>
// (adv_api matmul L0cType) and TBuf<A1/B1/A2/B2/C2/CO1> (catlass LocalTensorBuffer for AtlasA2).
// So {VECCALC, A1, B1, A2, B2, CO1, C2} are all usable ([DEVKIT] kernel_tpipe impl; CANN 6.3 doc
// listed VECIN/VECCALC/VECOUT/A1/A2/B1/B2/CO1/CO2 explicitly).
// GetWithOffset<T>(size, bufOffset): size = number of ELEMENTS of T, bufOffset = BYTES from the
// start of the TBuf, 32 B aligned; size*sizeof(T) + bufOffset must not exceed the InitBuffer
// length ([DOC80] 8.0.RC2/8.0.RC3 07_0157, 8.5 07_0164; [DEVKIT] impl sets
// address = base + bufOffset, dataLen = size * sizeof(T)). Get<T>(len): len in elements too.
template <TPosition pos = TPosition::LCM> class TBuf {
public:
    __aicore__ inline TBuf() = default;
    template <typename T> __aicore__ inline LocalTensor<T> Get();
    template <typename T> __aicore__ inline LocalTensor<T> Get(uint32_t len);
    template <typename T> __aicore__ inline LocalTensor<T> GetWithOffset(uint32_t size, uint32_t bufOffset);
};
class TPipe {
public:
    __aicore__ inline TPipe();
    __aicore__ inline ~TPipe();
    __aicore__ inline void Init();
    // InitBuffer(queue, bufferNum, bytesPerBuffer) for TQue/TQueBind; InitBuffer(tbuf, bytes).
    template <class T> __aicore__ inline bool InitBuffer(T& que, uint8_t num, uint32_t len);
    template <TPosition pos> __aicore__ inline bool InitBuffer(TBuf<pos>& buf, uint32_t len);
    template <HardEvent evt> __aicore__ inline TEventID AllocEventID();
    template <HardEvent evt> __aicore__ inline void ReleaseEventID(TEventID id);
    template <HardEvent evt> __aicore__ inline TEventID FetchEventID();
    __aicore__ inline TEventID FetchEventID(HardEvent evt);
    __aicore__ inline void Destroy();
    __aicore__ inline void Reset();
};
__aicore__ inline TPipe* GetTPipePtr();

// ---------------------------------------------------------------- system variables
// [DEVKIT] kernel_operator_sys_var_intf.h; [DOC80] GetBlockIdx/GetBlockNum/GetSubBlockIdx.
// dav_c220 impl (8.0-era and 9.0): on an AIV GetBlockIdx() = get_block_idx()*GetTaskRation()
// + GetSubBlockIdx() (0..2*BD-1 in MIX_AIC_1_2), on the AIC it is get_block_idx() (0..BD-1);
// GetBlockNum() is BD on both. The AIC's partner group on an AIV is GetBlockIdx()/GetTaskRation().
__aicore__ inline int64_t GetBlockNum();
__aicore__ inline int64_t GetBlockIdx();
__aicore__ inline int64_t GetSubBlockIdx();
__aicore__ inline int64_t GetSubBlockNum();
// CANN 8.0.RC2..8.3 name: GetTaskRation ([DOC80] 8.1.RC1 07_0188). CANN 9.0 renamed it
// GetTaskRatio (canncommercial/900 07_0188) and keeps GetTaskRation as a forwarding alias
// ([DEVKIT] impl kernel_operator_sys_var_intf_impl.h). Both are declared; emit GetTaskRation
// for 8.x compatibility.
__aicore__ inline int64_t GetTaskRation();
__aicore__ inline int64_t GetTaskRatio();

// ---------------------------------------------------------------- synchronisation
// SetFlag/WaitFlag: [DEVKIT] kernel_operator_block_sync_intf.h; doc 8.5 07_0270. The event id
// is a RUNTIME int32_t argument (not a template argument and not event_t); EVENT_ID0.. convert.
template <HardEvent event> __aicore__ inline void SetFlag(int32_t eventID);
template <HardEvent event> __aicore__ inline void WaitFlag(int32_t eventID);
// PipeBarrier<PIPE_V>() etc. Same header.
template <pipe_t pipe> __aicore__ inline void PipeBarrier();
template <pipe_t src, pipe_t dst> class TQueSync {
public:
    __aicore__ inline void SetFlag(TEventID id);
    __aicore__ inline void WaitFlag(TEventID id);
};
// CrossCoreSetFlag: `template <uint8_t modeId, pipe_t pipe> void CrossCoreSetFlag(uint16_t
// flagId)` — [DOC80] canncommercial/800 07_0273, 8.0.RC2 07_0268; [DEVKIT] block_sync_intf.h.
// Both template arguments are mandatory. modeId 0/1/2 on A2/A3 (4 only on Ascend 950);
// flagId 0-10 on A2/A3 (runtime-checked only). The body only holds documented compile-time
// constraints: 8.0.RC2/RC3 say pipe may not be PIPE_S or PIPE_ALL on A2/A3.
template <uint8_t modeId, pipe_t pipe> __aicore__ inline void CrossCoreSetFlag(uint16_t flagId)
{
    static_assert(modeId <= 2, "CrossCoreSetFlag: modeId must be 0, 1 or 2 on Atlas A2/A3");
    static_assert(pipe != PIPE_S && pipe != PIPE_ALL, "CrossCoreSetFlag: PIPE_S/PIPE_ALL not allowed on A2/A3");
    (void)flagId;
}
// CrossCoreWaitFlag: the header has DEFAULTED template parameters, so the documented call
// `CrossCoreWaitFlag(flagId)` is valid ([DEVKIT] block_sync_intf.h; also the 8.0-era
// kernel_operator_common_intf.h). Some 8.0 doc pages (800alpha002 07_0274) print the
// prototype without the defaults but their examples call it without template arguments.
template <uint8_t modeId = 0, pipe_t pipe = PIPE_S> __aicore__ inline void CrossCoreWaitFlag(uint16_t flagId);
// SetSyncBaseAddr: `void SetSyncBaseAddr(uint64_t config)` sets the FFTS base address that
// cross-core flags and the hard SyncAll use on dav-c220 (asc-devkit
// impl/basic_api/dav_c220/kernel_operator_sync_impl.h, via set_ffts_base_addr; the host gets
// the address with aclrtGetHardwareSyncAddr or the older rtGetC2cCtrlAddr).
__aicore__ inline void SetSyncBaseAddr(uint64_t config);
// SyncAll: soft form (GM + UB int32 workspaces, >= 32 B per core, GM zero-initialised) and hard
// form. [DOC80] 8.0.RC2 07_0198, 8.2.RC1 / 8.5 / 9.0 07_0204. isAIVOnly=false (hard form only;
// "软同步接口不支持此功能"): a mixed-kernel barrier over ALL cores of the launch - the AIVs sync
// among themselves, the AICs among themselves, then the two groups with each other. So
// `SyncAll<false>()` is the AIC+AIV barrier; SyncAll() / SyncAll<true>() syncs AIVs only.
// 9.x adds `const SyncAllConfig& config` only for Ascend 950.
template <bool isAIVOnly = true>
__aicore__ inline void SyncAll(const GlobalTensor<int32_t>& gmWorkspace, const LocalTensor<int32_t>& ubWorkspace,
                               const int32_t usedCores = 0);
template <bool isAIVOnly = true> __aicore__ inline void SyncAll();
// Atomic accumulation for subsequent writes to GM: [DEVKIT] kernel_operator_set_atomic_intf.h.
template <typename T> __aicore__ inline void SetAtomicAdd();
template <typename T> __aicore__ inline void SetAtomicMax();
template <typename T> __aicore__ inline void SetAtomicMin();
template <typename T> __aicore__ inline void SetAtomicType();
__aicore__ inline void SetAtomicNone();
// User part of the workspace (skips the system-reserved area): 8.0-era dav_c220
// kernel_operator_common_impl.h. Doc page not looked up.
__aicore__ inline GM_ADDR GetUserWorkspace(GM_ADDR workspace);
// DataCacheCleanAndInvalid: flush/invalidate the scalar data cache for a GM address, e.g. after
// GlobalTensor::SetValue (scalar GM writes go through the per-core data cache and are not seen by
// other cores or by DMA until flushed) or before GetValue of data another core wrote.
// [DEVKIT] include/basic_api/kernel_operator_cache_intf.h (__NPU_ARCH__ 2201 branch);
// [DOC80] canncommercial/800 07_0177, 8.0.RC2 07_0170, 8.5 / 9.0 07_0177. Both template
// arguments after T are mandatory (no defaults) and are NOT deducible. For A2/A3 the 8.0 doc lists
// only the 3-parameter form (the 2-parameter GlobalTensor form is "Atlas inference AI Core" there;
// 9.0 lists it for A2/A3 too) -> emit DataCacheCleanAndInvalid<T, CacheLine::SINGLE_CACHE_LINE,
// DcciDst::CACHELINE_OUT>(gm). SINGLE_CACHE_LINE flushes the 64 B line holding the address
// (unaligned: only up to the next 64 B boundary). The LocalTensor form is reserved (UB variant
// "not yet supported" in the docs).
template <typename T, CacheLine entireType, DcciDst dcciDst>
__aicore__ inline void DataCacheCleanAndInvalid(const GlobalTensor<T>& dst);
template <typename T, CacheLine entireType, DcciDst dcciDst>
__aicore__ inline void DataCacheCleanAndInvalid(const LocalTensor<T>& dst);
template <typename T, CacheLine entireType>
__aicore__ inline void DataCacheCleanAndInvalid(const GlobalTensor<T>& dst);

// ---------------------------------------------------------------- data movement
// DataCopy: [DEVKIT] kernel_operator_data_copy_intf.h; [DOC80] canncommercial/800 07_0102
// ("普通数据搬运"). Same element type T on both sides; `count` is in elements and
// count*sizeof(T) must be a multiple of 32 B.
template <typename T> __aicore__ inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const uint32_t count);
template <typename T> __aicore__ inline void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const uint32_t count);
template <typename T> __aicore__ inline void DataCopy(const LocalTensor<T>& dst, const LocalTensor<T>& src, const uint32_t count);
template <typename T> __aicore__ inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyParams& repeatParams);
template <typename T> __aicore__ inline void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyParams& repeatParams);
template <typename T> __aicore__ inline void DataCopy(const LocalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyParams& repeatParams);
// L1 (C1) -> bias table (C2) for Mmad bias ("DataCopy(L1ToBiasTable)", [DEVKIT] docs
// DataCopy_L1ToBiasTable.md, header kernel_operator_data_copy_intf.h; the 8.5 doc "基础数据搬运"
// 07_0103 lists the T/U prototype for A2/A3 only): uses the plain local->local overloads above
// (count form, or DataCopyParams form, same T) or this T != U form (e.g. half in L1 -> float in
// the bias table). The source position is C1 (TPosition::C1 / an L1 TBuf<C1>; A1 is the same L1
// memory), dst C2 64 B aligned, src 32 B aligned. On A2/A3 blockLen and dstGap are in 64 B units
// (srcGap in 32 B units): a bias of n floats is DataCopyParams(1, n * 4 / 64, 0, 0). src types
// half/int32_t/float, dst int32_t/float. Bias table total size: 1 KB on A2/A3.
template <typename T, typename U>
__aicore__ inline void DataCopy(const LocalTensor<T>& dst, const LocalTensor<U>& src, const DataCopyParams& repeatParams);
// GM -> A1/B1 with ND->NZ ("随路格式转换").
template <typename T> __aicore__ inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const Nd2NzParams& intriParams);
// DataCopyPad (A2/A3): old DataCopyParams/DataCopyPadParams form and the Ext form (blockLen in
// bytes). [DEVKIT] same header; doc page "DataCopyPad(ISASI)".
template <typename T>
__aicore__ inline void DataCopyPad(const LocalTensor<T>& dst, const GlobalTensor<T>& src,
                                   const DataCopyParams& dataCopyParams, const DataCopyPadParams& padParams);
template <typename T>
__aicore__ inline void DataCopyPad(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyParams& dataCopyParams);
template <typename T>
__aicore__ inline void DataCopyPad(const LocalTensor<T>& dst, const GlobalTensor<T>& src,
                                   const DataCopyExtParams& dataCopyParams, const DataCopyPadExtParams<T>& padParams);
template <typename T>
__aicore__ inline void DataCopyPad(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyExtParams& dataCopyParams);

// ---------------------------------------------------------------- cube
// LoadData (Load2D) GM/A1/B1 -> A2/B2: [DOC80] 8.1.RC1 07_0238, 9.0 07_00169 (Load2D).
template <typename T> __aicore__ inline void LoadData(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LoadData2DParams& loadDataParams);
template <typename T> __aicore__ inline void LoadData(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const LoadData2DParams& loadDataParams);
template <typename T>
__aicore__ inline void LoadDataWithTranspose(const LocalTensor<T>& dst, const LocalTensor<T>& src,
                                             const LoadData2dTransposeParams& loadDataParams);
// Mmad: dst (CO1) = fm (A2) x filter (B2). Three independent element types, all deduced.
// [DOC80] 8.0.RC3 07_0242; [DEVKIT] kernel_operator_mm_intf.h.
template <typename T, typename U, typename S>
__aicore__ inline void Mmad(const LocalTensor<T>& dst, const LocalTensor<U>& fm, const LocalTensor<S>& filter,
                            const MmadParams& mmadParams);
// Bias form: bias is a C2 (bias table) tensor, typically float (int32_t for int8 inputs), or a CO1
// tensor; [DOC80] 8.0.RC3 07_0242 / canncommercial/800 07_0249 ("biasLocal ... TPosition C2、CO1").
// Set mmadParams.cmatrixInitVal = false for the bias to be added (see MmadParams above).
template <typename T, typename U, typename S, typename V>
__aicore__ inline void Mmad(const LocalTensor<T>& dst, const LocalTensor<U>& fm, const LocalTensor<S>& filter,
                            const LocalTensor<V>& bias, const MmadParams& mmadParams);
// InitConstValue: fill an A1/B1 (L1, dst 32 B aligned) or A2/B2 (L0A/L0B, dst 512 B aligned) tensor
// with a constant. [DEVKIT] kernel_operator_mm_intf.h; [DOC80] 8.1.RC1 07_0237, 8.2.RC1 07_0236,
// 8.5 07_0237 (this template form, `std::enable_if<IsSameType<...>>` in the 8.x text,
// `Std::enable_if<Std::is_same<...>>` in 9.0). 8.0.RC3 (07_0230) printed it as
// `template <typename T> InitConstValue(const LocalTensor<T>&, const InitConstValueParams<T>&)`;
// both accept the same calls. The value type U of the params must equal T, else it does not
// compile. A2/A3 types: half/int16_t/uint16_t/bfloat16_t/float/int32_t/uint32_t. UNVERIFIED: which
// pipe it is issued on (MTE2 for L1 / MTE1 for L0 is plausible; synchronise conservatively).
template <typename T, typename U = PrimT<T>,
          typename std::enable_if<std::is_same<PrimT<T>, U>::value, bool>::type = true>
__aicore__ inline void InitConstValue(const LocalTensor<T>& dst, const InitConstValueParams<U>& initConstValueParams);
// Fixpipe CO1 -> GM (and -> A1/L1) on A2/A3: [DOC80] 8.1.RC1 07_0251; [DEVKIT]
// kernel_operator_fixpipe_intf.h. T = GM element type, U = L0C element type (float/int32_t);
// config defaults to CFG_ROW_MAJOR (NZ->ND on the way out).
template <typename T, typename U, const FixpipeConfig& config = CFG_ROW_MAJOR>
__aicore__ inline void Fixpipe(const GlobalTensor<T>& dst, const LocalTensor<U>& src, const FixpipeParamsV220& intriParams);
template <typename T, typename U, const FixpipeConfig& config = CFG_ROW_MAJOR>
__aicore__ inline void Fixpipe(const LocalTensor<T>& dst, const LocalTensor<U>& src, const FixpipeParamsV220& intriParams);

// ---------------------------------------------------------------- vector: element-wise
// [DEVKIT] kernel_operator_vec_binary_intf.h / _vec_unary_intf.h; doc pages Add/Sub/.../Exp.
// Level 2 (count) form plus the level-0 (mask/repeat) forms. All operands share one T.
#define MIXTILE_ASC_BINARY(NAME)                                                                        \
    template <typename T, bool isSetMask = true>                                                      \
    __aicore__ inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, \
                                uint64_t mask[], const uint8_t repeatTime, const BinaryRepeatParams& repeatParams); \
    template <typename T, bool isSetMask = true>                                                      \
    __aicore__ inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, \
                                uint64_t mask, const uint8_t repeatTime, const BinaryRepeatParams& repeatParams); \
    template <typename T>                                                                             \
    __aicore__ inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, \
                                const int32_t& count);
MIXTILE_ASC_BINARY(Add)
MIXTILE_ASC_BINARY(Sub)
MIXTILE_ASC_BINARY(Mul)
MIXTILE_ASC_BINARY(Div)
MIXTILE_ASC_BINARY(Max)
MIXTILE_ASC_BINARY(Min)
MIXTILE_ASC_BINARY(And)
MIXTILE_ASC_BINARY(Or)
#undef MIXTILE_ASC_BINARY

#define MIXTILE_ASC_UNARY(NAME)                                                                         \
    template <typename T, bool isSetMask = true>                                                      \
    __aicore__ inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, uint64_t mask[], \
                                const uint8_t repeatTime, const UnaryRepeatParams& repeatParams);      \
    template <typename T, bool isSetMask = true>                                                      \
    __aicore__ inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, uint64_t mask,   \
                                const uint8_t repeatTime, const UnaryRepeatParams& repeatParams);      \
    template <typename T>                                                                             \
    __aicore__ inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t& count);
MIXTILE_ASC_UNARY(Exp)
MIXTILE_ASC_UNARY(Ln)
MIXTILE_ASC_UNARY(Abs)
MIXTILE_ASC_UNARY(Reciprocal)
MIXTILE_ASC_UNARY(Sqrt)
MIXTILE_ASC_UNARY(Rsqrt)
MIXTILE_ASC_UNARY(Relu)
MIXTILE_ASC_UNARY(Not)
#undef MIXTILE_ASC_UNARY

// Tensor-scalar: [DEVKIT] kernel_operator_vec_binary_scalar_intf.h. The scalar is `const T&`
// with T also deduced from the tensors: Muls(floatDst, floatSrc, 0.5, n) (a double) does NOT
// compile on the real toolchain either; cast the scalar (static_cast<float>(0.5)).
#define MIXTILE_ASC_SCALAR(NAME)                                                                        \
    template <typename T, bool isSetMask = true>                                                      \
    __aicore__ inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& scalarValue, \
                                uint64_t mask[], const uint8_t repeatTime, const UnaryRepeatParams& repeatParams); \
    template <typename T, bool isSetMask = true>                                                      \
    __aicore__ inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& scalarValue, \
                                uint64_t mask, const uint8_t repeatTime, const UnaryRepeatParams& repeatParams); \
    template <typename T, bool isSetMask = true>                                                      \
    __aicore__ inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& scalarValue, \
                                const int32_t& count);
MIXTILE_ASC_SCALAR(Adds)
MIXTILE_ASC_SCALAR(Muls)
MIXTILE_ASC_SCALAR(Maxs)
MIXTILE_ASC_SCALAR(Mins)
#undef MIXTILE_ASC_SCALAR

// Duplicate (fill): [DEVKIT] kernel_operator_vec_duplicate_intf.h.
template <typename T, bool isSetMask = true>
__aicore__ inline void Duplicate(const LocalTensor<T>& dst, const T& scalarValue, uint64_t mask,
                                 const uint8_t repeatTime, const uint16_t dstBlockStride, const uint8_t dstRepeatStride);
template <typename T>
__aicore__ inline void Duplicate(const LocalTensor<T>& dst, const T& scalarValue, const int32_t& count);

// Cast<T = dst type, U = src type>(dst, src, roundMode, count): [DEVKIT]
// kernel_operator_vec_vconv_intf.h; doc "Cast". RoundMode is passed by const reference.
template <typename T, typename U>
__aicore__ inline void Cast(const LocalTensor<T>& dst, const LocalTensor<U>& src, const RoundMode& roundMode,
                            const uint32_t count);
template <typename T, typename U, bool isSetMask = true>
__aicore__ inline void Cast(const LocalTensor<T>& dst, const LocalTensor<U>& src, const RoundMode& roundMode,
                            const uint64_t mask, const uint8_t repeatTime, const UnaryRepeatParams& repeatParams);

// Select scalar form (SELMODE::VSEL_TENSOR_SCALAR_MODE, "mode 1"): dst[i] = mask bit i ? src0[i] :
// src1 (scalar); src1 is `T` by value, deduced together with the tensors (cast literals). The
// mask is the bit mask written by Compare/CompareScalar, normally LocalTensor<uint8_t> (the
// header comment says "U must be uint8_t"). [DEVKIT] cmpsel_intf.h; doc 9.0beta1 07_0070.
// Compare / CompareScalar / Select: [DEVKIT] kernel_operator_vec_cmpsel_intf.h. NOTE the
// template order <T = source type, U = mask type> while the argument order is (dst mask, src...).
// dst is a bit mask (typically LocalTensor<uint8_t>); count-mode Compare needs count*sizeof(T)
// to be a multiple of 256 B (doc constraint, not checked here).
template <typename T, typename U>
__aicore__ inline void Compare(const LocalTensor<U>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1,
                               CMPMODE cmpMode, uint32_t count);
template <typename T, typename U>
__aicore__ inline void CompareScalar(const LocalTensor<U>& dst, const LocalTensor<T>& src0, const T src1Scalar,
                                     CMPMODE cmpMode, uint32_t count);
template <typename T, typename U>
__aicore__ inline void Select(const LocalTensor<T>& dst, const LocalTensor<U>& selMask, const LocalTensor<T>& src0,
                              const LocalTensor<T>& src1, SELMODE selMode, uint32_t count);
template <typename T, typename U>
__aicore__ inline void Select(const LocalTensor<T>& dst, const LocalTensor<U>& selMask, const LocalTensor<T>& src0,
                              T src1, SELMODE selMode, uint32_t count);

// ---------------------------------------------------------------- vector: reductions
// [DEVKIT] kernel_operator_vec_reduce_intf.h (A2/A3 branch). ReduceXxx reduce the whole range
// to one value (+ index for Max/Min with calIndex) and need a work tensor; WholeReduceXxx and
// BlockReduceXxx reduce per repeat / per 32 B block.
template <typename T, bool isSetMask = true>
__aicore__ inline void ReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src,
                                 const LocalTensor<T>& sharedTmpBuffer, const int32_t count);
template <typename T>
__aicore__ inline void ReduceMax(const LocalTensor<T>& dst, const LocalTensor<T>& src,
                                 const LocalTensor<T>& sharedTmpBuffer, const int32_t count, bool calIndex = 0);
template <typename T>
__aicore__ inline void ReduceMin(const LocalTensor<T>& dst, const LocalTensor<T>& src,
                                 const LocalTensor<T>& sharedTmpBuffer, const int32_t count, bool calIndex = 0);
template <typename T>
__aicore__ inline void ReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& sharedTmpBuffer,
                                 const int32_t mask, const int32_t repeatTime, const int32_t srcRepStride);
template <typename T>
__aicore__ inline void ReduceMax(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& sharedTmpBuffer,
                                 const int32_t mask, const int32_t repeatTime, const int32_t srcRepStride, bool calIndex = 0);
template <typename T>
__aicore__ inline void ReduceMin(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& sharedTmpBuffer,
                                 const int32_t mask, const int32_t repeatTime, const int32_t srcRepStride, bool calIndex = 0);
template <typename T, bool isSetMask = true>
__aicore__ inline void WholeReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t mask,
                                      const int32_t repeatTime, const int32_t dstRepStride, const int32_t srcBlkStride,
                                      const int32_t srcRepStride);
template <typename T, bool isSetMask = true>
__aicore__ inline void WholeReduceMax(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t mask,
                                      const int32_t repeatTime, const int32_t dstRepStride, const int32_t srcBlkStride,
                                      const int32_t srcRepStride, ReduceOrder order = ReduceOrder::ORDER_VALUE_INDEX);
template <typename T, bool isSetMask = true>
__aicore__ inline void WholeReduceMin(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t mask,
                                      const int32_t repeatTime, const int32_t dstRepStride, const int32_t srcBlkStride,
                                      const int32_t srcRepStride, ReduceOrder order = ReduceOrder::ORDER_VALUE_INDEX);
#define MIXTILE_ASC_BLOCK_REDUCE(NAME)                                                                 \
    template <typename T, bool isSetMask = true>                                                      \
    __aicore__ inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t repeatTime, \
                                const int32_t mask, const int32_t dstRepStride, const int32_t srcBlkStride, \
                                const int32_t srcRepStride);
MIXTILE_ASC_BLOCK_REDUCE(BlockReduceSum)
MIXTILE_ASC_BLOCK_REDUCE(BlockReduceMax)
MIXTILE_ASC_BLOCK_REDUCE(BlockReduceMin)
#undef MIXTILE_ASC_BLOCK_REDUCE

// ---------------------------------------------------------------- index ramps
// CreateVecIndex (basic API, vector pipe): dst[i] = firstValue + i. Exists on A2/A3 for
// int16_t/half/int32_t/float ([DOC80] canncommercial/800 07_0090 (parameter names dstLocal/calCount),
// 8.3.RC1 / 8.5 / 9.0 07_0090; [DEVKIT] kernel_operator_vec_createvecindex_intf.h). NOTE: the count
// form takes dst BY VALUE, the level-0 forms by non-const reference; firstValue is `const T&` with
// T deduced from dst too (pass static_cast<float>(0), not 0). dst in VECIN/VECCALC/VECOUT, 32 B aligned.
template <typename T>
__aicore__ inline void CreateVecIndex(LocalTensor<T> dst, const T& firstValue, uint32_t count);
template <typename T>
__aicore__ inline void CreateVecIndex(LocalTensor<T>& dst, const T& firstValue, uint64_t mask, uint8_t repeatTime,
                                      uint16_t dstBlkStride, uint8_t dstRepStride);
template <typename T>
__aicore__ inline void CreateVecIndex(LocalTensor<T>& dst, const T& firstValue, uint64_t mask[], uint8_t repeatTime,
                                      uint16_t dstBlkStride, uint8_t dstRepStride);
// ArithProgression (high-level API, arbitrary step): dst[i] = firstValue + i * diffValue, diffValue >= 0,
// count > 0; half/float/int16_t/int32_t. [DOC80] 8.0.RC1 07_0532, canncommercial/800 07_0856,
// 8.3.RC1 07_0856. UNVERIFIED for 9.x: the asc-devkit header adv_api/index/arithprogression.h
// seen here declares the same signature under the name `Arange` (whether `ArithProgression`
// remains as an alias was not found). Prefer CreateVecIndex (+ Muls/Adds) for portability.
template <typename T>
__aicore__ inline void ArithProgression(const LocalTensor<T>& dstLocal, const T firstValue, const T diffValue,
                                        const int32_t count);

// ---------------------------------------------------------------- high-level math APIs
// Tanh / Sin / Cos / Erf: [DEVKIT] include/adv_api/math/{tanh,sin,cos,erf}.h (non-3510 branch,
// which is the one compiled for __NPU_ARCH__ 2201); [DOC80] Tanh canncommercial/800 07_0491,
// Cos canncommercial/800 07_0508 (Sin/Erf doc pages not opened). Four overloads each: with or
// without an explicit `const LocalTensor<uint8_t>& sharedTmpBuffer` (size from
// GetXxxMaxMinTmpSize; without it the framework reserves the space), with or without calCount
// (without: whole srcTensor.GetSize()). T = half/float; dst and src share T. isReuseSource: Tanh
// "reserved, keep false"; Sin/Cos only effective for float. The Ascend 950 headers add a 3rd
// template parameter (TanhConfig / CosConfig / ErfConfig) that does not exist on A2/A3.
// Constraints (not checked): no address overlap between src/dst/tmp; 32 B aligned tensors;
// Sin/Cos input range [-65504, 65504]. Same include-path caveat as the activation APIs below.
#define MIXTILE_ASC_ADV_MATH(NAME)                                                                     \
    template <typename T, bool isReuseSource = false>                                                 \
    __aicore__ inline void NAME(const LocalTensor<T>& dstTensor, const LocalTensor<T>& srcTensor,      \
                                const LocalTensor<uint8_t>& sharedTmpBuffer, const uint32_t calCount); \
    template <typename T, bool isReuseSource = false>                                                 \
    __aicore__ inline void NAME(const LocalTensor<T>& dstTensor, const LocalTensor<T>& srcTensor,      \
                                const LocalTensor<uint8_t>& sharedTmpBuffer);                         \
    template <typename T, bool isReuseSource = false>                                                 \
    __aicore__ inline void NAME(const LocalTensor<T>& dstTensor, const LocalTensor<T>& srcTensor,      \
                                const uint32_t calCount);                                             \
    template <typename T, bool isReuseSource = false>                                                 \
    __aicore__ inline void NAME(const LocalTensor<T>& dstTensor, const LocalTensor<T>& srcTensor);
MIXTILE_ASC_ADV_MATH(Tanh)
MIXTILE_ASC_ADV_MATH(Sin)
MIXTILE_ASC_ADV_MATH(Cos)
MIXTILE_ASC_ADV_MATH(Erf)
#undef MIXTILE_ASC_ADV_MATH

// ---------------------------------------------------------------- high-level activation APIs
// Real headers: [DEVKIT] include/adv_api/activation/sigmoid.h, silu.h, gelu.h (installed as
// "lib/activation/<name>.h"; the 8.0 doc samples include only "kernel_operator.h").
// UNVERIFIED: the exact include line the 8.x toolchain needs. Sigmoid needs a temp buffer
// (explicit `LocalTensor<uint8_t>` or framework-reserved); size via GetSigmoidMaxMinTmpSize.
// Sigmoid: [DOC80] canncommercial/800 07_0792.
template <typename T, bool isReuseSource = false>
__aicore__ inline void Sigmoid(const LocalTensor<T>& dstTensor, const LocalTensor<T>& srcTensor,
                               const LocalTensor<uint8_t>& sharedTmpBuffer, const uint32_t calCount);
template <typename T, bool isReuseSource = false>
__aicore__ inline void Sigmoid(const LocalTensor<T>& dstTensor, const LocalTensor<T>& srcTensor, const uint32_t calCount);
// Silu: [DOC80] canncommercial/800 07_0779.
template <typename T, bool isReuseSource = false>
__aicore__ inline void Silu(const LocalTensor<T>& dstLocal, const LocalTensor<T>& srcLocal, uint32_t dataSize);
// Gelu (tanh-approximation form): [DEVKIT] gelu.h only (doc page not looked up).
template <typename T, bool highPrecision = false, bool highPerformance = false>
__aicore__ inline void Gelu(const LocalTensor<T>& dstLocal, const LocalTensor<T>& srcLocal,
                            const LocalTensor<uint8_t>& sharedTmpBuffer, const uint32_t dataSize);
template <typename T, bool highPrecision = false, bool highPerformance = false>
__aicore__ inline void Gelu(const LocalTensor<T>& dstLocal, const LocalTensor<T>& srcLocal, const uint32_t dataSize);
}  // namespace AscendC

#endif  // MIXTILE_TESTS_ASCENDC_KERNEL_OPERATOR_H
