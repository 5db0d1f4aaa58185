// A functional CPU model of the Ascend C API subset mixtile's backend emits, for tests only.
//
// tests/ascendc_api/kernel_operator.h *declares* the API (compile checks); this header
// *implements* the same names so that an emitted kernel can run on the host: every core
// of every cluster is a thread (1 AIC + 2 AIV per block of a MIX_AIC_1_2 launch), GM is
// host memory, each TBuf is a byte array. Data layouts follow the CANN documentation as
// mixtile reads it (Nd2Nz NZ fractals, LoadData2D fractal copies, Mmad's zZ x nZ -> NZ,
// Fixpipe NZ -> ND, DataCopyPad row padding): running a kernel here checks the emitter's
// index math, tiling, strides, ring protocol and numerics against the simulator, not the
// hardware's behaviour. Pipe syncs do not reorder (a core runs in program order), but the
// event protocol is checked: SetFlag<E>(id) twice without WaitFlag is undefined, WaitFlag
// without a SetFlag hangs, an event left set at the end is an error, and the TPipe
// constructor sets M_MTE1 ids 0-2 on the AIC and its Destroy waits them (as the library
// does on dav-c220). Cross-core flags, SyncAll and atomics are real (counters, barriers, a
// lock) and need AscendC::SetSyncBaseAddr first; SyncAll needs the launch to fit the
// part's cores (`cores`, 24 by default) and a MIX_* kernel type. Cube instructions on an
// AIV and vector ones on an AIC, buffer addresses off their space's alignment (L0A/L0B
// 512 B, L0C and the bias table 64 B, others 32 B) and parameter fields past their
// documented ranges abort too, as do out-of-bounds GM and on-chip accesses, a flag
// counter past 15 and a wait that never returns (deadlock).
#ifndef MIXTILE_TESTS_ASCENDC_CPU_KERNEL_OPERATOR_H
#define MIXTILE_TESTS_ASCENDC_CPU_KERNEL_OPERATOR_H

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#define __aicore__
#define __global__
#define __gm__
using GM_ADDR = uint8_t*;

[[noreturn]] inline void mixtile_cpu_fail(const char* what, long long a = 0, long long b = 0)
{
    std::fprintf(stderr, "ascendc-cpu: %s (%lld, %lld)\n", what, a, b);
    std::fflush(stderr);
    std::_Exit(3);
}

// ---------------------------------------------------------------- element types
struct bfloat16_t {
    uint16_t bits = 0;
    bfloat16_t() = default;
    bfloat16_t(float f)
    {
        uint32_t u;
        std::memcpy(&u, &f, 4);
        if ((u & 0x7fffffffu) > 0x7f800000u) {
            bits = 0x7fc0;
        } else {
            u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
            bits = static_cast<uint16_t>(u >> 16);
        }
    }
    bfloat16_t(double d) : bfloat16_t(static_cast<float>(d)) {}
    bfloat16_t(int v) : bfloat16_t(static_cast<float>(v)) {}
    operator float() const
    {
        uint32_t u = static_cast<uint32_t>(bits) << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
    }
};
using half = _Float16;

template <typename T> inline float to_f(T v) { return static_cast<float>(v); }
template <typename T> inline T from_f(float v) { return static_cast<T>(v); }
template <> inline int32_t from_f<int32_t>(float v)
{
    double r = std::nearbyint(static_cast<double>(v));
    return static_cast<int32_t>(std::min(std::max(r, -2147483648.0), 2147483647.0));
}

// ---------------------------------------------------------------- enums and constants
enum pipe_t { PIPE_S, PIPE_V, PIPE_M, PIPE_MTE1, PIPE_MTE2, PIPE_MTE3, PIPE_ALL, PIPE_FIX };
enum event_t { EVENT_ID0 = 0, EVENT_ID1, EVENT_ID2, EVENT_ID3, EVENT_ID4, EVENT_ID5, EVENT_ID6, EVENT_ID7 };
enum QuantMode_t { NoQuant = 0, F322F16 = 1, F322BF16 = 16 };
enum KernelMetaType : uint8_t {
    KERNEL_TYPE_AIV_ONLY, KERNEL_TYPE_AIC_ONLY, KERNEL_TYPE_MIX_AIV_1_0, KERNEL_TYPE_MIX_AIC_1_0,
    KERNEL_TYPE_MIX_AIC_1_1, KERNEL_TYPE_MIX_AIC_1_2,
};
#define KERNEL_TASK_TYPE_DEFAULT(value) (::mixtile_cpu::core().declared = (int)(value))

namespace AscendC {
constexpr int32_t MIX = 0;
constexpr int32_t AIC = 1;
constexpr int32_t AIV = 2;
enum class TPosition : uint8_t { GM, A1, A2, B1, B2, C1, C2, CO1, CO2, VECIN, VECOUT, VECCALC };
enum class HardEvent : uint8_t {
    MTE2_MTE1, MTE1_MTE2, MTE1_M, M_MTE1, MTE2_V, V_MTE2, MTE3_V, V_MTE3, M_V, V_M, V_V,
    MTE3_MTE1, MTE1_MTE3, MTE1_V, MTE2_M, M_MTE2, V_MTE1, M_FIX, FIX_M, MTE3_MTE2, MTE2_MTE3,
    S_V, V_S, S_MTE2, MTE2_S, S_MTE3, MTE3_S, MTE2_FIX, FIX_MTE2, FIX_S, M_S, FIX_MTE3,
    MTE1_FIX, FIX_MTE1, FIX_FIX,
};
enum class RoundMode : uint8_t { CAST_NONE = 0, CAST_RINT, CAST_FLOOR, CAST_CEIL, CAST_ROUND, CAST_TRUNC, CAST_ODD };
enum class CMPMODE : uint8_t { LT = 0, GT, EQ, LE, GE, NE };
enum class SELMODE : uint8_t { VSEL_CMPMASK_SPR = 0, VSEL_TENSOR_SCALAR_MODE, VSEL_TENSOR_TENSOR_MODE };
enum class ReduceOrder : uint8_t { ORDER_VALUE_INDEX = 0, ORDER_INDEX_VALUE, ORDER_ONLY_VALUE, ORDER_ONLY_INDEX };
enum class CacheLine : uint64_t { SINGLE_CACHE_LINE = 0, ENTIRE_DATA_CACHE };
enum class DcciDst : uint64_t { CACHELINE_ALL = 0, CACHELINE_UB, CACHELINE_OUT, CACHELINE_ATOMIC };
enum class CO2Layout : uint8_t { NZ = 0, ROW_MAJOR, COLUMN_MAJOR };
struct FixpipeConfig { CO2Layout format; };
constexpr FixpipeConfig CFG_NZ = {CO2Layout::NZ};
constexpr FixpipeConfig CFG_ROW_MAJOR = {CO2Layout::ROW_MAJOR};
}  // namespace AscendC

// ---------------------------------------------------------------- the machine
namespace mixtile_cpu {
struct Region { const uint8_t* lo; const uint8_t* hi; };
inline std::vector<Region>& gm_regions() { static std::vector<Region> r; return r; }
inline void check_gm(const void* p, size_t bytes, const char* what)
{
    auto* b = static_cast<const uint8_t*>(p);
    for (const Region& r : gm_regions())
        if (b >= r.lo && b + bytes <= r.hi) return;
    mixtile_cpu_fail(what, (long long)bytes, 0);
}

struct Cluster {  // cross-core flag counters of one cluster
    int aic[16] = {0};
    int aiv[2][16] = {{0}};
    int aiv_pending[2][16] = {{0}};  // AIV -> AIC sets waiting for the other lane
};

struct Launch {
    int64_t blocks = 0, cores = 24;  // the launch's blocks; the part's cube cores
    int type = 0;
    std::mutex mu;
    std::condition_variable cv;
    std::vector<Cluster> clusters;
    int threads = 0, arrived = 0, generation = 0;  // SyncAll barrier
    int aiv_threads = 0, aiv_arrived = 0, aiv_generation = 0;
    std::mutex atomic_mu;
};
inline Launch*& launch() { static Launch* l = nullptr; return l; }

struct Core {
    int type = AscendC::AIV;
    int64_t block = 0, sub = 0, ratio = 1, blocks = 1;
    bool atomic_add = false;
    int declared = -1;  // KERNEL_TASK_TYPE_DEFAULT's value
    uint64_t sync_base = 0;  // AscendC::SetSyncBaseAddr's value
    std::map<int, const char*> events;  // (HardEvent << 8 | id) set and not yet waited: by whom
};
inline Core& core() { thread_local Core c; return c; }
inline void on(int type, const char* what)
{
    if (core().type != type) mixtile_cpu_fail(what, core().type, type);
}
inline void need_sync_base(const char* what)
{
    if (core().sync_base == 0) mixtile_cpu_fail(what, core().block, 0);
}
inline void limit(long long v, long long lo, long long hi, const char* what)
{
    if (v < lo || v > hi) mixtile_cpu_fail(what, v, hi);
}

constexpr auto kDeadlock = std::chrono::seconds(20);
}  // namespace mixtile_cpu

#define ASCEND_IS_AIV (::mixtile_cpu::core().type == AscendC::AIV)
#define ASCEND_IS_AIC (::mixtile_cpu::core().type == AscendC::AIC)

namespace AscendC {
// ---------------------------------------------------------------- tensors
template <typename T> class LocalTensor {
public:
    T* p = nullptr;
    uint32_t n = 0;  // elements reachable from p (bounds checks)
    uint32_t init_block = 32;  // InitConstValue's block: 32 bytes in L1, 512 in L0A/L0B
    LocalTensor() = default;
    LocalTensor(T* ptr, uint32_t count, uint32_t blk = 32) : p(ptr), n(count), init_block(blk) {}
    T& at(int64_t i) const
    {
        if (i < 0 || i >= (int64_t)n) mixtile_cpu_fail("on-chip access out of its buffer", i, n);
        return p[i];
    }
    T GetValue(uint32_t i) const { return at(i); }
    template <typename S> void SetValue(uint32_t i, S v) const { at(i) = static_cast<T>(v); }
    LocalTensor operator[](uint32_t off) const
    {
        if (off > n) mixtile_cpu_fail("LocalTensor offset past its buffer", off, n);
        if ((off * sizeof(T)) % 32) mixtile_cpu_fail("LocalTensor offset not 32-byte aligned", off, sizeof(T));
        return LocalTensor(p + off, n - off, init_block);
    }
    template <typename U> LocalTensor<U> ReinterpretCast() const
    {
        return LocalTensor<U>(reinterpret_cast<U*>(p), n * sizeof(T) / sizeof(U));
    }
};
template <typename T> class GlobalTensor {
public:
    T* p = nullptr;
    void SetGlobalBuffer(T* ptr, uint64_t = 0) { p = ptr; }
    GlobalTensor operator[](uint64_t off) const { GlobalTensor g; g.p = p + off; return g; }
    T GetValue(uint64_t i) const { mixtile_cpu::check_gm(p + i, sizeof(T), "GM read out of bounds"); return p[i]; }
    void SetValue(uint64_t i, T v) { mixtile_cpu::check_gm(p + i, sizeof(T), "GM write out of bounds"); p[i] = v; }
};

inline void set_event(HardEvent e, int32_t id, const char* by)
{
    auto& ev = mixtile_cpu::core().events;
    const int key = (int)e << 8 | id;
    auto it = ev.find(key);
    if (it != ev.end()) {
        std::fprintf(stderr, "ascendc-cpu: SetFlag<HardEvent %d>(%d) while it is set by %s and not waited\n",
                     (int)e, id, it->second);
        mixtile_cpu_fail("SetFlag twice without a WaitFlag is undefined (a TPipe alive on the AIC holds M_MTE1 0-2)",
                         (int)e, id);
    }
    ev[key] = by;
}
inline void wait_event(HardEvent e, int32_t id)
{
    auto& ev = mixtile_cpu::core().events;
    if (!ev.erase((int)e << 8 | id)) mixtile_cpu_fail("WaitFlag with no SetFlag before it (hangs)", (int)e, id);
}
template <TPosition pos = TPosition::VECCALC> class TBuf {
public:
    std::shared_ptr<std::vector<uint8_t>> mem;
    template <typename T> LocalTensor<T> GetWithOffset(uint32_t count, uint32_t byteOffset)
    {
        // the docs' address alignment per storage unit: L0A/L0B 512 B, L0C and C2 64 B, else 32 B
        const uint32_t align = (pos == TPosition::A2 || pos == TPosition::B2) ? 512
                             : (pos == TPosition::CO1 || pos == TPosition::C2) ? 64 : 32;
        if (byteOffset % align) mixtile_cpu_fail("GetWithOffset: offset off its space's alignment", byteOffset, align);
        if (!mem || byteOffset + (uint64_t)count * sizeof(T) > mem->size())
            mixtile_cpu_fail("GetWithOffset past the buffer", byteOffset + count * sizeof(T), mem ? mem->size() : 0);
        const uint32_t blk = (pos == TPosition::A2 || pos == TPosition::B2) ? 512 : 32;
        return LocalTensor<T>(reinterpret_cast<T*>(mem->data() + byteOffset), (uint32_t)((mem->size() - byteOffset) / sizeof(T)), blk);
    }
};
// as the library on dav-c220: the constructor sets M_MTE1 ids 0-2 on the AIC (the matmul
// macro's and the bias load's), Destroy (or the destructor) waits them
class TPipe {
public:
    bool destroyed = false;
    TPipe()
    {
        if (mixtile_cpu::core().type == AIC)
            for (int id = 0; id < 3; ++id) set_event(HardEvent::M_MTE1, id, "the TPipe constructor");
    }
    ~TPipe() { Destroy(); }
    void Destroy()
    {
        if (destroyed) return;
        destroyed = true;
        if (mixtile_cpu::core().type == AIC)
            for (int id = 0; id < 3; ++id) wait_event(HardEvent::M_MTE1, id);
    }
    template <TPosition pos> bool InitBuffer(TBuf<pos>& buf, uint32_t len)
    {
        buf.mem = std::make_shared<std::vector<uint8_t>>(len, 0xFF);  // poison: NaN / -1
        return true;
    }
};

// ---------------------------------------------------------------- system
inline int64_t GetBlockIdx() { auto& c = mixtile_cpu::core(); return c.type == AIV ? c.block * c.ratio + c.sub : c.block; }
inline int64_t GetBlockNum() { return mixtile_cpu::core().blocks; }
inline int64_t GetSubBlockIdx() { return mixtile_cpu::core().sub; }
inline int64_t GetTaskRation() { return mixtile_cpu::core().ratio; }

// ---------------------------------------------------------------- synchronisation
template <HardEvent e> inline void SetFlag(int32_t id) { set_event(e, id, "the kernel"); }
template <HardEvent e> inline void WaitFlag(int32_t id) { wait_event(e, id); }
template <pipe_t p> inline void PipeBarrier() {}
template <typename T, CacheLine c, DcciDst d> inline void DataCacheCleanAndInvalid(const GlobalTensor<T>&) {}

inline void SetSyncBaseAddr(uint64_t addr) { mixtile_cpu::core().sync_base = addr; }
template <uint8_t mode, pipe_t pipe> inline void CrossCoreSetFlag(uint16_t id)
{
    static_assert(mode == 2, "the CPU model implements mode 2 (AIC <-> its AIVs)");
    mixtile_cpu::need_sync_base("CrossCoreSetFlag before AscendC::SetSyncBaseAddr (no FFTS base: hangs on A2/A3)");
    auto* l = mixtile_cpu::launch();
    auto& c = mixtile_cpu::core();
    std::unique_lock<std::mutex> g(l->mu);
    auto& cl = l->clusters[c.block];
    if (c.type == AIC) {  // one set counts on both AIVs
        for (int s = 0; s < 2; ++s)
            if (++cl.aiv[s][id] > 15) mixtile_cpu_fail("AIV flag counter past 15 (chip freeze)", id, cl.aiv[s][id]);
    } else {  // counts on the AIC once both lanes have set
        cl.aiv_pending[c.sub][id]++;
        if (cl.aiv_pending[0][id] > 0 && cl.aiv_pending[1][id] > 0) {
            cl.aiv_pending[0][id]--;
            cl.aiv_pending[1][id]--;
            if (++cl.aic[id] > 15) mixtile_cpu_fail("AIC flag counter past 15 (chip freeze)", id, cl.aic[id]);
        }
    }
    l->cv.notify_all();
}
template <uint8_t mode = 0, pipe_t pipe = PIPE_S> inline void CrossCoreWaitFlag(uint16_t id)
{
    mixtile_cpu::need_sync_base("CrossCoreWaitFlag before AscendC::SetSyncBaseAddr (no FFTS base: hangs on A2/A3)");
    auto* l = mixtile_cpu::launch();
    auto& c = mixtile_cpu::core();
    std::unique_lock<std::mutex> g(l->mu);
    auto& cl = l->clusters[c.block];
    int& cnt = c.type == AIC ? cl.aic[id] : cl.aiv[c.sub][id];
    if (!l->cv.wait_for(g, mixtile_cpu::kDeadlock, [&] { return cnt > 0; }))
        mixtile_cpu_fail("CrossCoreWaitFlag never released (deadlock)", id, c.block);
    cnt--;
}
template <bool isAIVOnly = true> inline void SyncAll()
{
    mixtile_cpu::need_sync_base("SyncAll before AscendC::SetSyncBaseAddr (no FFTS base: hangs on A2/A3)");
    auto* l = mixtile_cpu::launch();
    // the SyncAll docs: blockDim may not exceed the cores that run the kernel (the launch
    // would run in rounds and the first round wait forever), and a one-unit kernel needs
    // the MIX_AIV_1_0 / MIX_AIC_1_0 type
    const int64_t have = isAIVOnly && l->type != KERNEL_TYPE_MIX_AIC_1_2 ? 2 * l->cores : l->cores;
    if (l->blocks > have) mixtile_cpu_fail("SyncAll in a launch of more blocks than the part has cores (hang)", l->blocks, have);
    if (l->type == KERNEL_TYPE_AIV_ONLY || l->type == KERNEL_TYPE_AIC_ONLY)
        mixtile_cpu_fail("SyncAll in an AIV_ONLY / AIC_ONLY kernel: the docs ask for MIX_AIV_1_0 / MIX_AIC_1_0", l->type, 0);
    std::unique_lock<std::mutex> g(l->mu);
    int& arrived = isAIVOnly ? l->aiv_arrived : l->arrived;
    int& gen = isAIVOnly ? l->aiv_generation : l->generation;
    int total = isAIVOnly ? l->aiv_threads : l->threads;
    int my = gen;
    if (++arrived == total) {
        arrived = 0;
        gen++;
        l->cv.notify_all();
        return;
    }
    if (!l->cv.wait_for(g, mixtile_cpu::kDeadlock, [&] { return gen != my; }))
        mixtile_cpu_fail("SyncAll: not every core arrived (hang)", arrived, total);
}
template <typename T> inline void SetAtomicAdd() { mixtile_cpu::core().atomic_add = true; }
inline void SetAtomicNone() { mixtile_cpu::core().atomic_add = false; }

template <typename T> inline void gm_store(T* dst, T v)
{
    if (mixtile_cpu::core().atomic_add) {
        std::lock_guard<std::mutex> g(mixtile_cpu::launch()->atomic_mu);
        *dst = from_f<T>(to_f(*dst) + to_f(v));
    } else {
        *dst = v;
    }
}

// ---------------------------------------------------------------- data movement
// Parameter structs: the library's fields are uint16_t (a wider value silently wraps);
// here they are wide and each use checks the documented range instead.
struct DataCopyParams {
    DataCopyParams() {}
    DataCopyParams(int64_t c, int64_t l, int64_t s, int64_t d) : blockCount(c), blockLen(l), srcStride(s), dstStride(d) {}
    int64_t blockCount = 1, blockLen = 0, srcStride = 0, dstStride = 0;
    void check() const
    {
        mixtile_cpu::limit(blockCount, 1, 4095, "DataCopyParams.blockCount outside 1..4095");
        mixtile_cpu::limit(blockLen, 1, 65535, "DataCopyParams.blockLen outside 1..65535");
        mixtile_cpu::limit(srcStride, 0, 65535, "DataCopyParams.srcStride outside uint16");
        mixtile_cpu::limit(dstStride, 0, 65535, "DataCopyParams.dstStride outside uint16");
    }
};
struct DataCopyExtParams {
    DataCopyExtParams() {}
    DataCopyExtParams(int64_t c, uint32_t l, uint32_t s, uint32_t d, uint32_t r) : blockCount(c), blockLen(l), srcStride(s), dstStride(d), rsv(r) {}
    int64_t blockCount = 1;
    uint32_t blockLen = 0, srcStride = 0, dstStride = 0, rsv = 0;
};
template <typename T> struct DataCopyPadExtParams {
    DataCopyPadExtParams() {}
    DataCopyPadExtParams(bool p, uint8_t l, uint8_t r, T v) : isPad(p), leftPadding(l), rightPadding(r), paddingValue(v) {}
    bool isPad = false;
    uint8_t leftPadding = 0, rightPadding = 0;
    T paddingValue = T(0.0f);
};
struct Nd2NzParams {
    Nd2NzParams() {}
    Nd2NzParams(int64_t nd, int64_t n, int64_t d, int64_t ms, int64_t sd, int64_t c0s, int64_t ns, int64_t mats)
        : ndNum(nd), nValue(n), dValue(d), srcNdMatrixStride(ms), srcDValue(sd), dstNzC0Stride(c0s), dstNzNStride(ns), dstNzMatrixStride(mats) {}
    int64_t ndNum = 0, nValue = 0, dValue = 0, srcNdMatrixStride = 0, srcDValue = 0;
    int64_t dstNzC0Stride = 0, dstNzNStride = 0, dstNzMatrixStride = 0;
    void check() const
    {
        mixtile_cpu::limit(ndNum, 0, 4095, "Nd2NzParams.ndNum outside 0..4095");
        mixtile_cpu::limit(nValue, 0, 16384, "Nd2NzParams.nValue outside 0..16384");
        for (int64_t v : {dValue, srcNdMatrixStride, srcDValue, dstNzC0Stride, dstNzNStride, dstNzMatrixStride})
            mixtile_cpu::limit(v, 0, 65535, "an Nd2NzParams field outside uint16");
    }
};
template <typename T> struct InitConstValueParams {
    InitConstValueParams() {}
    InitConstValueParams(uint16_t r, uint16_t b, uint16_t g, T v) : repeatTimes(r), blockNum(b), dstGap(g), initValue(v) {}
    uint16_t repeatTimes = 0, blockNum = 0, dstGap = 0;
    T initValue = T(0.0f);
};

// GM -> UB rows, each padded to 32 bytes in UB; UB -> GM rows (unpadded).
template <typename T>
inline void DataCopyPad(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyExtParams& p,
                        const DataCopyPadExtParams<T>& pad)
{
    mixtile_cpu::limit(p.blockCount, 1, 4095, "DataCopyExtParams.blockCount outside 1..4095");
    const uint32_t row = (p.blockLen + 31) / 32 * 32;
    auto* s = reinterpret_cast<const uint8_t*>(src.p);
    auto* d = reinterpret_cast<uint8_t*>(dst.p);
    for (uint32_t r = 0; r < p.blockCount; ++r) {
        const uint8_t* sr = s + (uint64_t)r * (p.blockLen + p.srcStride);
        uint8_t* dr = d + (uint64_t)r * (row + p.dstStride * 32);
        mixtile_cpu::check_gm(sr, p.blockLen, "DataCopyPad: GM read out of bounds");
        if ((uint64_t)(dr - d) + row > (uint64_t)dst.n * sizeof(T)) mixtile_cpu_fail("DataCopyPad: UB row past the buffer", r, dst.n);
        std::memcpy(dr, sr, p.blockLen);
        if (pad.isPad)
            for (uint32_t e = 0; e < pad.rightPadding; ++e)
                reinterpret_cast<T*>(dr + p.blockLen)[e] = pad.paddingValue;
        else
            std::memset(dr + p.blockLen, 0xFF, row - p.blockLen);  // "random values"
    }
}
template <typename T>
inline void DataCopyPad(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyExtParams& p)
{
    mixtile_cpu::limit(p.blockCount, 1, 4095, "DataCopyExtParams.blockCount outside 1..4095");
    const uint32_t row = (p.blockLen + 31) / 32 * 32;
    for (uint32_t r = 0; r < p.blockCount; ++r) {
        const T* sr = reinterpret_cast<const T*>(reinterpret_cast<const uint8_t*>(src.p) + (uint64_t)r * (row + p.srcStride * 32));
        T* dr = reinterpret_cast<T*>(reinterpret_cast<uint8_t*>(dst.p) + (uint64_t)r * (p.blockLen + p.dstStride));
        mixtile_cpu::check_gm(dr, p.blockLen, "DataCopyPad: GM write out of bounds");
        if ((uint64_t)((const uint8_t*)sr - (const uint8_t*)src.p) + p.blockLen > (uint64_t)src.n * sizeof(T))
            mixtile_cpu_fail("DataCopyPad: UB read past the buffer", r, src.n);
        for (uint32_t e = 0; e < p.blockLen / sizeof(T); ++e) gm_store(dr + e, sr[e]);
    }
}
// GM -> L1, ND rows -> NZ fractals (C0 = 32 bytes of elements per fractal row)
template <typename T> inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const Nd2NzParams& p)
{
    p.check();
    const int c0 = 32 / sizeof(T);
    for (int n = 0; n < p.nValue; ++n) {
        mixtile_cpu::check_gm(src.p + (uint64_t)n * p.srcDValue, p.dValue * sizeof(T), "Nd2Nz: GM read out of bounds");
        for (int d = 0; d < p.dValue; ++d)
            dst.at((int64_t)(d / c0) * p.dstNzC0Stride * c0 + (int64_t)n * p.dstNzNStride * c0 + d % c0) = src.p[(uint64_t)n * p.srcDValue + d];
    }
}
// GM -> L1 (32-byte blocks) and L1 -> C2 (the bias table: 64-byte blocks)
template <typename T> inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyParams& p)
{
    p.check();
    const uint64_t n = (uint64_t)p.blockCount * p.blockLen * 32 / sizeof(T);
    mixtile_cpu::check_gm(src.p, n * sizeof(T), "DataCopy: GM read out of bounds");
    for (uint64_t i = 0; i < n; ++i) dst.at(i) = src.p[i];
}
template <typename T> inline void DataCopy(const LocalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyParams& p)
{
    p.check();
    const uint64_t n = (uint64_t)p.blockCount * p.blockLen * 64 / sizeof(T);
    for (uint64_t i = 0; i < n; ++i) dst.at(i) = src.at(i);
}
template <typename T> inline void DataCopy(const LocalTensor<T>& dst, const LocalTensor<T>& src, uint32_t count)
{
    for (uint32_t i = 0; i < count; ++i) dst.at(i) = src.at(i);
}
template <typename T, typename U>
inline void InitConstValue(const LocalTensor<T>& dst, const InitConstValueParams<U>& p)
{
    const uint64_t n = (uint64_t)p.repeatTimes * p.blockNum * dst.init_block / sizeof(T);
    for (uint64_t i = 0; i < n; ++i) dst.at(i) = p.initValue;
}

// ---------------------------------------------------------------- cube
struct LoadData2DParams {
    LoadData2DParams() {}
    LoadData2DParams(int64_t si, int64_t rt, int64_t ss, uint8_t sid, int64_t dg, bool tr, uint8_t am)
        : startIndex(si), dstGap(dg), srcStride(ss), ifTranspose(tr), repeatTimes(rt), sid(sid), addrMode(am) {}
    int64_t startIndex = 0, dstGap = 0, srcStride = 0;
    bool ifTranspose = false;
    int64_t repeatTimes = 0;
    uint8_t sid = 0, addrMode = 0;
};
// fractal copies (512 bytes: 16 x 16 of a 2-byte type), optionally transposed
template <typename T> inline void LoadData(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LoadData2DParams& p)
{
    static_assert(sizeof(T) == 2, "the CPU model's LoadData handles 2-byte types");
    mixtile_cpu::on(AIC, "LoadData (a cube instruction) on an AIV core");
    mixtile_cpu::limit(p.repeatTimes, 1, 255, "LoadData2DParams.repeatTimes outside 1..255");
    for (int64_t v : {p.startIndex, p.dstGap, p.srcStride}) mixtile_cpu::limit(v, 0, 65535, "a LoadData2DParams field outside uint16");
    for (int r = 0; r < p.repeatTimes; ++r) {
        const int64_t s = ((int64_t)p.startIndex + (int64_t)r * p.srcStride) * 256;
        const int64_t d = (int64_t)r * (1 + p.dstGap) * 256;
        for (int i = 0; i < 16; ++i)
            for (int j = 0; j < 16; ++j)
                dst.at(d + i * 16 + j) = p.ifTranspose ? src.at(s + j * 16 + i) : src.at(s + i * 16 + j);
    }
}
struct MmadParams {
    int64_t m = 0, n = 0, k = 0;
    bool isBias = false;
    bool cmatrixSource = false;
    bool cmatrixInitVal = true;
};
// A in L0A: fractal (m/16, k/16) at ((m/16)*Kb + k/16)*256, row-major (m, k) inside;
// B in L0B: fractal (k/16, n/16) at ((k/16)*Nb + n/16)*256, (n, k) inside;
// C in L0C (NZ): element (m, n) at ((n/16)*M16 + m)*16 + n%16.
template <typename T, typename U, typename S>
inline void mmad(const LocalTensor<T>& c, const LocalTensor<U>& a, const LocalTensor<S>& b, const MmadParams& p,
                 const LocalTensor<T>* bias)
{
    mixtile_cpu::on(AIC, "Mmad (a cube instruction) on an AIV core");
    for (int64_t v : {p.m, p.n, p.k}) mixtile_cpu::limit(v, 0, 4095, "MmadParams m/n/k outside 0..4095");
    const int kb = (p.k + 15) / 16, nb = (p.n + 15) / 16, m16 = (p.m + 15) / 16 * 16;
    for (int m = 0; m < p.m; ++m)
        for (int n = 0; n < p.n; ++n) {
            T& out = c.at(((int64_t)(n / 16) * m16 + m) * 16 + n % 16);
            float acc = p.cmatrixInitVal ? 0.0f : (bias ? to_f(bias->at(n)) : to_f(out));
            for (int k = 0; k < p.k; ++k)
                acc += to_f(a.at(((int64_t)(m / 16) * kb + k / 16) * 256 + (m % 16) * 16 + k % 16)) *
                       to_f(b.at(((int64_t)(k / 16) * nb + n / 16) * 256 + (n % 16) * 16 + k % 16));
            out = from_f<T>(acc);
        }
}
template <typename T, typename U, typename S>
inline void Mmad(const LocalTensor<T>& c, const LocalTensor<U>& a, const LocalTensor<S>& b, const MmadParams& p)
{
    mmad(c, a, b, p, static_cast<const LocalTensor<T>*>(nullptr));
}
template <typename T, typename U, typename S, typename V>
inline void Mmad(const LocalTensor<T>& c, const LocalTensor<U>& a, const LocalTensor<S>& b, const LocalTensor<V>& bias,
                 const MmadParams& p)
{
    static_assert(std::is_same<T, V>::value, "bias and accumulator types");
    if (p.cmatrixInitVal) mixtile_cpu_fail("Mmad with a bias needs cmatrixInitVal = false");
    mmad(c, a, b, p, &bias);
}
struct FixpipeParamsV220 {
    int64_t nSize = 0, mSize = 0, srcStride = 0;
    uint32_t dstStride = 0;
    QuantMode_t quantPre = QuantMode_t::NoQuant;
    bool reluEn = false;
};
template <typename T, typename U, const FixpipeConfig& config = CFG_ROW_MAJOR>
inline void Fixpipe(const GlobalTensor<T>& dst, const LocalTensor<U>& src, const FixpipeParamsV220& p)
{
    static_assert(config.format == CO2Layout::ROW_MAJOR, "NZ -> ND only");
    mixtile_cpu::on(AIC, "Fixpipe (a cube instruction) on an AIV core");
    // FixpipeParamsV220 docs: nSize <= 4095 (a multiple of 16 only without NZ2ND), mSize
    // <= 8192 with NZ2ND (CFG_ROW_MAJOR)
    mixtile_cpu::limit(p.nSize, 1, 4095, "FixpipeParamsV220.nSize outside 1..4095");
    mixtile_cpu::limit(p.mSize, 1, 8192, "FixpipeParamsV220.mSize outside 1..8192 (NZ2ND)");
    mixtile_cpu::limit(p.srcStride, 0, 65535, "FixpipeParamsV220.srcStride outside uint16");
    for (int m = 0; m < p.mSize; ++m) {
        mixtile_cpu::check_gm(dst.p + (uint64_t)m * p.dstStride, p.nSize * sizeof(T), "Fixpipe: GM write out of bounds");
        for (int n = 0; n < p.nSize; ++n) {
            float v = to_f(src.at(((int64_t)(n / 16) * p.srcStride + m) * 16 + n % 16));
            if (p.reluEn) v = std::max(v, 0.0f);
            gm_store(dst.p + (uint64_t)m * p.dstStride + n, from_f<T>(v));
        }
    }
}

// ---------------------------------------------------------------- vector
struct BinaryRepeatParams {
    BinaryRepeatParams() {}
    BinaryRepeatParams(uint8_t db, uint8_t s0b, uint8_t s1b, uint8_t dr, uint8_t s0r, uint8_t s1r)
        : dstBlkStride(db), src0BlkStride(s0b), src1BlkStride(s1b), dstRepStride(dr), src0RepStride(s0r), src1RepStride(s1r) {}
    uint8_t dstBlkStride = 1, src0BlkStride = 1, src1BlkStride = 1, dstRepStride = 8, src0RepStride = 8, src1RepStride = 8;
};
struct UnaryRepeatParams {
    UnaryRepeatParams() {}
    UnaryRepeatParams(uint16_t db, uint16_t sb, uint8_t dr, uint8_t sr) : dstBlkStride(db), srcBlkStride(sb), dstRepStride(dr), srcRepStride(sr) {}
    uint16_t dstBlkStride = 1, srcBlkStride = 1;
    uint8_t dstRepStride = 8, srcRepStride = 8;
};

template <typename T, typename F> inline void map1(const LocalTensor<T>& d, const LocalTensor<T>& s, int32_t n, F f)
{
    for (int32_t i = 0; i < n; ++i) d.at(i) = from_f<T>(f(to_f(s.at(i))));
}
template <typename T, typename F>
inline void map2(const LocalTensor<T>& d, const LocalTensor<T>& a, const LocalTensor<T>& b, int32_t n, F f)
{
    for (int32_t i = 0; i < n; ++i) d.at(i) = from_f<T>(f(to_f(a.at(i)), to_f(b.at(i))));
}
#define MIXTILE_CPU_BINARY(NAME, EXPR)                                                               \
    template <typename T> inline void NAME(const LocalTensor<T>& d, const LocalTensor<T>& a,       \
                                           const LocalTensor<T>& b, const int32_t& n)              \
    { mixtile_cpu::on(AIV, #NAME " (a vector instruction) on an AIC core");                        \
      map2(d, a, b, n, [](float x, float y) { return EXPR; }); }                                   \
    template <typename T, bool isSetMask = true>                                                    \
    inline void NAME(const LocalTensor<T>& d, const LocalTensor<T>& a, const LocalTensor<T>& b,    \
                     uint64_t mask, const uint8_t repeat, const BinaryRepeatParams& p)              \
    {                                                                                               \
        const int epb = 32 / sizeof(T);                                                             \
        for (int r = 0; r < repeat; ++r)                                                            \
            for (uint64_t e = 0; e < mask; ++e) {                                                   \
                float x = to_f(a.at(r * p.src0RepStride * epb + e)), y = to_f(b.at(r * p.src1RepStride * epb + e)); \
                d.at(r * p.dstRepStride * epb + e) = from_f<T>(EXPR);                               \
            }                                                                                       \
    }
MIXTILE_CPU_BINARY(Add, x + y)
MIXTILE_CPU_BINARY(Sub, x - y)
MIXTILE_CPU_BINARY(Mul, x * y)
MIXTILE_CPU_BINARY(Div, x / y)
MIXTILE_CPU_BINARY(Max, std::max(x, y))
MIXTILE_CPU_BINARY(Min, std::min(x, y))
#undef MIXTILE_CPU_BINARY

#define MIXTILE_CPU_SCALAR(NAME, EXPR)                                                               \
    template <typename T, bool isSetMask = true>                                                    \
    inline void NAME(const LocalTensor<T>& d, const LocalTensor<T>& a, const T& s, const int32_t& n) \
    { const float y = to_f(s); map1(d, a, n, [y](float x) { return EXPR; }); }                      \
    template <typename T, bool isSetMask = true>                                                    \
    inline void NAME(const LocalTensor<T>& d, const LocalTensor<T>& a, const T& s, uint64_t mask,  \
                     const uint8_t repeat, const UnaryRepeatParams& p)                              \
    {                                                                                               \
        const int epb = 32 / sizeof(T);                                                             \
        const float y = to_f(s);                                                                    \
        for (int r = 0; r < repeat; ++r)                                                            \
            for (uint64_t e = 0; e < mask; ++e) {                                                   \
                float x = to_f(a.at(r * p.srcRepStride * epb + e));                                 \
                d.at(r * p.dstRepStride * epb + e) = from_f<T>(EXPR);                               \
            }                                                                                       \
    }
MIXTILE_CPU_SCALAR(Adds, x + y)
MIXTILE_CPU_SCALAR(Muls, x * y)
MIXTILE_CPU_SCALAR(Maxs, std::max(x, y))
MIXTILE_CPU_SCALAR(Mins, std::min(x, y))
#undef MIXTILE_CPU_SCALAR

template <typename T> inline void no_overlap(const LocalTensor<T>& d, const LocalTensor<T>& s, uint32_t n, const char* what)
{
    if (d.p < s.p + n && s.p < d.p + n) mixtile_cpu_fail(what, 0, 0);
}
// ADV: a high-level (adv_api) call, whose source and destination may not overlap
#define MIXTILE_CPU_UNARY(NAME, ADV, EXPR)                                                           \
    template <typename T, bool isReuseSource = false>                                               \
    inline void NAME(const LocalTensor<T>& d, const LocalTensor<T>& s, const uint32_t n)           \
    {                                                                                               \
        mixtile_cpu::on(AIV, #NAME " (a vector instruction) on an AIC core");                       \
        if (ADV) no_overlap(d, s, n, #NAME ": source and destination overlap");                     \
        map1(d, s, (int32_t)n, [](float x) { return EXPR; });                                       \
    }
MIXTILE_CPU_UNARY(Exp, false, std::exp(x))
MIXTILE_CPU_UNARY(Ln, false, std::log(x))
MIXTILE_CPU_UNARY(Sqrt, false, std::sqrt(x))
MIXTILE_CPU_UNARY(Rsqrt, false, 1.0f / std::sqrt(x))
MIXTILE_CPU_UNARY(Reciprocal, false, 1.0f / x)
MIXTILE_CPU_UNARY(Abs, false, std::fabs(x))
MIXTILE_CPU_UNARY(Relu, false, std::max(x, 0.0f))
MIXTILE_CPU_UNARY(Tanh, true, std::tanh(x))
MIXTILE_CPU_UNARY(Sin, true, std::sin(x))
MIXTILE_CPU_UNARY(Cos, true, std::cos(x))
MIXTILE_CPU_UNARY(Erf, true, std::erf(x))
MIXTILE_CPU_UNARY(Sigmoid, true, 1.0f / (1.0f + std::exp(-x)))
MIXTILE_CPU_UNARY(Silu, true, x / (1.0f + std::exp(-x)))
MIXTILE_CPU_UNARY(Gelu, true, x / (1.0f + std::exp(-1.5957691216057308f * (x + 0.044715f * x * x * x))))
#undef MIXTILE_CPU_UNARY

template <typename T> inline void Duplicate(const LocalTensor<T>& d, const T& v, const int32_t& n)
{
    for (int32_t i = 0; i < n; ++i) d.at(i) = v;
}
template <typename T> inline void CreateVecIndex(LocalTensor<T> d, const T& first, uint32_t n)
{
    for (uint32_t i = 0; i < n; ++i) d.at(i) = static_cast<T>(to_f(first) + (float)i);
}
template <typename T, typename U>
inline void Cast(const LocalTensor<T>& d, const LocalTensor<U>& s, const RoundMode& mode, const uint32_t n)
{
    for (uint32_t i = 0; i < n; ++i) {
        float v = to_f(s.at(i));
        if (std::is_integral<T>::value && mode != RoundMode::CAST_RINT) mixtile_cpu_fail("float -> int without CAST_RINT");
        d.at(i) = from_f<T>(v);
    }
}
inline bool cmp(CMPMODE m, float a, float b)
{
    switch (m) {
    case CMPMODE::LT: return a < b;
    case CMPMODE::GT: return a > b;
    case CMPMODE::EQ: return a == b;
    case CMPMODE::LE: return a <= b;
    case CMPMODE::GE: return a >= b;
    default: return a != b;
    }
}
template <typename T, typename U>
inline void CompareScalar(const LocalTensor<U>& d, const LocalTensor<T>& a, const T s, CMPMODE m, uint32_t n)
{
    if ((n * sizeof(T)) % 256) mixtile_cpu_fail("CompareScalar: count not a multiple of 256 bytes", n, sizeof(T));
    for (uint32_t i = 0; i < n / 8; ++i) d.at(i) = 0;
    for (uint32_t i = 0; i < n; ++i)
        if (cmp(m, to_f(a.at(i)), to_f(s))) d.at(i / 8) |= (U)(1u << (i % 8));
}
template <typename T, typename U>
inline void Compare(const LocalTensor<U>& d, const LocalTensor<T>& a, const LocalTensor<T>& b, CMPMODE m, uint32_t n)
{
    if ((n * sizeof(T)) % 256) mixtile_cpu_fail("Compare: count not a multiple of 256 bytes", n, sizeof(T));
    for (uint32_t i = 0; i < n / 8; ++i) d.at(i) = 0;
    for (uint32_t i = 0; i < n; ++i)
        if (cmp(m, to_f(a.at(i)), to_f(b.at(i)))) d.at(i / 8) |= (U)(1u << (i % 8));
}
template <typename T, typename U>
inline void Select(const LocalTensor<T>& d, const LocalTensor<U>& mask, const LocalTensor<T>& a, T s, SELMODE, uint32_t n)
{
    for (uint32_t i = 0; i < n; ++i) d.at(i) = ((mask.at(i / 8) >> (i % 8)) & 1) ? a.at(i) : s;
}
template <typename T, typename U>
inline void Select(const LocalTensor<T>& d, const LocalTensor<U>& mask, const LocalTensor<T>& a, const LocalTensor<T>& b,
                   SELMODE, uint32_t n)
{
    for (uint32_t i = 0; i < n; ++i) d.at(i) = ((mask.at(i / 8) >> (i % 8)) & 1) ? a.at(i) : b.at(i);
}
template <typename T, bool isSetMask = true>
inline void ReduceSum(const LocalTensor<T>& d, const LocalTensor<T>& s, const LocalTensor<T>&, const int32_t n)
{
    float acc = 0;
    for (int32_t i = 0; i < n; ++i) acc += to_f(s.at(i));
    d.at(0) = from_f<T>(acc);
}
template <typename T>
inline void ReduceMax(const LocalTensor<T>& d, const LocalTensor<T>& s, const LocalTensor<T>&, const int32_t n, bool = false)
{
    float acc = -INFINITY;
    for (int32_t i = 0; i < n; ++i) acc = std::max(acc, to_f(s.at(i)));
    d.at(0) = from_f<T>(acc);
}
template <typename T>
inline void ReduceMin(const LocalTensor<T>& d, const LocalTensor<T>& s, const LocalTensor<T>&, const int32_t n, bool = false)
{
    float acc = INFINITY;
    for (int32_t i = 0; i < n; ++i) acc = std::min(acc, to_f(s.at(i)));
    d.at(0) = from_f<T>(acc);
}
template <typename T, typename F>
inline void whole_reduce(const LocalTensor<T>& d, const LocalTensor<T>& s, int32_t mask, int32_t repeat, int32_t dstRep,
                         int32_t srcBlk, int32_t srcRep, float init, F f)
{
    if (srcBlk != 1) mixtile_cpu_fail("WholeReduce: block stride other than 1", srcBlk, 0);
    const int epb = 32 / sizeof(T);
    for (int32_t r = 0; r < repeat; ++r) {
        float acc = init;
        for (int32_t e = 0; e < mask; ++e) acc = f(acc, to_f(s.at((int64_t)r * srcRep * epb + e)));
        d.at((int64_t)r * dstRep) = from_f<T>(acc);
    }
}
template <typename T, bool isSetMask = true>
inline void WholeReduceSum(const LocalTensor<T>& d, const LocalTensor<T>& s, const int32_t mask, const int32_t repeat,
                           const int32_t dstRep, const int32_t srcBlk, const int32_t srcRep)
{
    whole_reduce(d, s, mask, repeat, dstRep, srcBlk, srcRep, 0.0f, [](float a, float b) { return a + b; });
}
template <typename T, bool isSetMask = true>
inline void WholeReduceMax(const LocalTensor<T>& d, const LocalTensor<T>& s, const int32_t mask, const int32_t repeat,
                           const int32_t dstRep, const int32_t srcBlk, const int32_t srcRep,
                           ReduceOrder order = ReduceOrder::ORDER_VALUE_INDEX)
{
    if (order != ReduceOrder::ORDER_ONLY_VALUE) mixtile_cpu_fail("WholeReduceMax: the model returns values only");
    whole_reduce(d, s, mask, repeat, dstRep, srcBlk, srcRep, -INFINITY, [](float a, float b) { return std::max(a, b); });
}
template <typename T, bool isSetMask = true>
inline void WholeReduceMin(const LocalTensor<T>& d, const LocalTensor<T>& s, const int32_t mask, const int32_t repeat,
                           const int32_t dstRep, const int32_t srcBlk, const int32_t srcRep,
                           ReduceOrder order = ReduceOrder::ORDER_VALUE_INDEX)
{
    if (order != ReduceOrder::ORDER_ONLY_VALUE) mixtile_cpu_fail("WholeReduceMin: the model returns values only");
    whole_reduce(d, s, mask, repeat, dstRep, srcBlk, srcRep, INFINITY, [](float a, float b) { return std::min(a, b); });
}
}  // namespace AscendC

// ---------------------------------------------------------------- launching
namespace mixtile_cpu {
// Run `body` on every core of a launch of `blocks` blocks of kernel type `type`
// (0: AIV only, 1: AIC only, 5: MIX_AIC_1_2), one thread per core.
template <typename F> inline void run(int type, int64_t blocks, F body, int64_t cores = 24)
{
    Launch l;
    l.blocks = blocks;
    l.cores = cores;
    l.type = type;
    l.clusters.resize(blocks);
    launch() = &l;
    std::vector<std::thread> ts;
    auto start = [&](int core_type, int64_t b, int sub, int ratio) {
        ts.emplace_back([=, &body] {
            Core& c = core();
            c.type = core_type;
            c.block = b;
            c.sub = sub;
            c.ratio = ratio;
            c.blocks = blocks;
            body();
            if (!c.events.empty())
                mixtile_cpu_fail("an event set and never waited at the end of the kernel", c.events.begin()->first, c.block);
        });
    };
    const bool mix = type == KERNEL_TYPE_MIX_AIC_1_2;
    const bool aiv = type == KERNEL_TYPE_AIV_ONLY || type == KERNEL_TYPE_MIX_AIV_1_0;
    const bool aic = type == KERNEL_TYPE_AIC_ONLY || type == KERNEL_TYPE_MIX_AIC_1_0;
    l.threads = (int)(blocks * (mix ? 3 : 1));
    l.aiv_threads = (int)(blocks * (mix ? 2 : (aiv ? 1 : 0)));
    for (int64_t b = 0; b < blocks; ++b) {
        if (mix || aic) start(AscendC::AIC, b, 0, 1);
        if (mix) {
            start(AscendC::AIV, b, 0, 2);
            start(AscendC::AIV, b, 1, 2);
        } else if (aiv) {
            start(AscendC::AIV, b, 0, 1);
        }
    }
    for (auto& t : ts) t.join();
    for (int64_t b = 0; b < blocks; ++b)
        for (int id = 0; id < 16; ++id)
            if (l.clusters[b].aic[id] || l.clusters[b].aiv[0][id] || l.clusters[b].aiv[1][id])
                mixtile_cpu_fail("a cross-core flag counter is not zero at the end", id, b);
    launch() = nullptr;
}
}  // namespace mixtile_cpu

#endif  // MIXTILE_TESTS_ASCENDC_CPU_KERNEL_OPERATOR_H
