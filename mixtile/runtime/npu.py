"""Running compiled kernels on an Ascend NPU: CANN build, binary cache, torch_npu launch.

Nothing here runs without an Ascend machine; `missing()` says what is absent and
`run` fails with that list before touching anything. On a machine with CANN and
torch_npu:

1. the emitted source (`CompiledKernel.ascendc.source`) and a small caller file with a
   `<<<blockDim, nullptr, stream>>>` launch are written under the cache directory,
   keyed by the source's hash, and built once with CANN's `bisheng` into a shared
   library (`build_command` is the exact command);
2. each call packs the tiling buffer (dims and scalar arguments, int64 slots), allocates
   the scratch tensors (GM rings, workspaces) on the NPU, and launches on the current
   torch_npu stream through ctypes.

Not verified here (no NPU, no CANN in this environment): the bisheng flags, the caller's
launch syntax against a real toolkit, and the kernels' results on hardware.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import torch

from mixtile.errors import UnsupportedError
from mixtile.ir.types import Role, TensorType

# --cce-aicore-arch per machine and kernel type: a one-unit kernel is built for its own
# core type (CATLASS's examples/CMakeLists.txt: dav-c220-cube / -vec / dav-c220 for mix);
# A5's split forms are not known here: its kernels are built as mix (unverified)
_ARCH_FLAG = {"a2": "dav-c220", "a3": "dav-c220", "a5": "dav-c310"}
_UNIT_SUFFIX = {"KERNEL_TYPE_AIC_ONLY": "-cube", "KERNEL_TYPE_MIX_AIC_1_0": "-cube",
                "KERNEL_TYPE_AIV_ONLY": "-vec", "KERNEL_TYPE_MIX_AIV_1_0": "-vec"}
# CATLASS's A2 flags (examples/CMakeLists.txt): scalar stack sizes, overflow recording
_MLLVM = ("-cce-aicore-stack-size=0x8000", "-cce-aicore-function-stack-size=0x8000",
          "-cce-aicore-record-overflow=true", "-cce-aicore-dcci-insert-for-scalar=false")
_libs: dict[str, ctypes.CDLL] = {}


def cann_home() -> Path | None:
    """The CANN toolkit: $ASCEND_HOME_PATH or $ASCEND_TOOLKIT_HOME (set by CANN's
    set_env.sh), else the toolkit holding a `bisheng` on PATH."""
    for var in ("ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME"):
        p = os.environ.get(var)
        if p and Path(p).is_dir():
            return Path(p)
    b = shutil.which("bisheng")
    if b:
        p = Path(b).resolve().parent
        for up in (p, *p.parents):
            if (up / "include").is_dir() and (up / "compiler").is_dir():
                return up
    return None


def _torch_npu():
    try:
        import torch_npu  # noqa: F401
    except ImportError:
        return None
    return torch.npu if hasattr(torch, "npu") else None


def npu_available() -> bool:
    npu = _torch_npu()
    return bool(npu is not None and npu.is_available())


def missing() -> list[str]:
    """What target="npu" needs and this machine lacks (empty: ready)."""
    out = []
    if cann_home() is None:
        out.append("the CANN toolkit (set ASCEND_HOME_PATH, e.g. `source "
                   "/usr/local/Ascend/ascend-toolkit/set_env.sh`)")
    npu = _torch_npu()
    if npu is None:
        out.append("torch_npu (pip install mixtile[npu], matching your CANN and torch)")
    elif not npu.is_available():
        out.append("an Ascend NPU visible to torch_npu")
    return out


def include_dirs(home: Path) -> list[Path]:
    """The Ascend C headers of both toolkit layouts that exist under `home`: CANN 8.x's
    compiler/tikcpp/tikcfw (+ impl, interface) and the newer include/ascendc and
    <arch>-linux/asc/include trees, plus the runtime's headers (rt_ffts.h)."""
    tik = home / "compiler" / "tikcpp" / "tikcfw"
    cands = [tik, tik / "impl", tik / "interface", home / "include",
             home / "include" / "experiment" / "runtime",
             home / "include" / "experiment" / "msprof",
             home / "include" / "ascendc", *sorted(home.glob("*-linux/asc/include"))]
    return [d for d in cands if d.is_dir()]


def build_command(src: Path, out: Path, home: Path, arch: str, kernel_type: str,
                  legacy_sync_addr: bool = False) -> list[str]:
    """The bisheng command that builds a kernel and its caller into a shared library."""
    aicore = _ARCH_FLAG[arch] + (_UNIT_SUFFIX.get(kernel_type, "") if arch != "a5" else "")
    mllvm = [f for flag in _MLLVM for f in ("-mllvm", flag)]
    return ["bisheng", "-fPIC", "-shared", "-xcce", "-O2", "-std=c++17",
            f"--cce-aicore-arch={aicore}", *mllvm,
            *(["-DMIXTILE_LEGACY_SYNC_ADDR"] if legacy_sync_addr else []),
            *(f"-I{d}" for d in include_dirs(home)),
            str(src), "-o", str(out), f"-L{home / 'lib64'}", "-lascendcl", "-lruntime"]


def caller_source(ak) -> str:
    """Host-callable entries for the kernel: `mixtile_launch(blockDim, stream, args)`
    returns 0, or the failing runtime call's status; a kernel with cross-core sync gets
    the hardware sync base address first (aclrtGetHardwareSyncAddr, CANN 8.5+ docs; with
    MIXTILE_LEGACY_SYNC_ADDR the older rtGetC2cCtrlAddr that CATLASS's examples used)."""
    n = len(ak.params) + 1
    args = ", ".join(["ffts"] * ak.sync_base + [f"args[{i}]" for i in range(n)])
    get = ""
    if ak.sync_base:
        get = ("    uint64_t ffts = 0;\n"
               "#ifdef MIXTILE_LEGACY_SYNC_ADDR\n"
               "    uint32_t len = 0;\n"
               "    const int rc = rtGetC2cCtrlAddr(&ffts, &len);\n"
               "#else\n"
               "    void* addr = nullptr;\n"
               "    const int rc = aclrtGetHardwareSyncAddr(&addr);\n"
               "    ffts = reinterpret_cast<uint64_t>(addr);\n"
               "#endif\n"
               "    if (rc != 0) return rc;\n")
    return (f'#include "acl/acl.h"\n'
            "#ifdef MIXTILE_LEGACY_SYNC_ADDR\n#include \"runtime/rt_ffts.h\"\n#endif\n"
            f'#include "{ak.name}_kernel.cpp"\n\n'
            f'extern "C" int mixtile_launch(uint32_t blockDim, void* stream, uint8_t** args)\n'
            f"{{\n{get}    {ak.name}<<<blockDim, nullptr, stream>>>({args});\n"
            "    return 0;\n}\n")


def device_cube_cores() -> int | None:
    """The current NPU's cube (AI) core count from the ACL runtime (aclrtGetDeviceInfo,
    ACL_DEV_ATTR_AICORE_CORE_NUM = 101, counted in cube cores on A2/A3), or None."""
    try:
        acl = ctypes.CDLL("libascendcl.so")
        dev, n = ctypes.c_int32(0), ctypes.c_int64(0)
        if acl.aclrtGetDevice(ctypes.byref(dev)) != 0:
            return None
        if acl.aclrtGetDeviceInfo(ctypes.c_uint32(dev.value), 101, ctypes.byref(n)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return int(n.value) or None


def _library(ak, arch: str, cache_dir: Path) -> ctypes.CDLL:
    key = hashlib.sha256((arch + ak.source).encode()).hexdigest()[:24]
    lib = _libs.get(key)
    if lib is not None:
        return lib
    home = cann_home()
    d = cache_dir / f"ascendc_{ak.name}_{key}"
    so = d / f"lib{ak.name}.so"
    if not so.exists():
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{ak.name}_kernel.cpp").write_text(ak.source)
        (d / "caller.cpp").write_text(caller_source(ak))
        r = None
        for legacy in (False, True) if ak.sync_base else (False,):
            # a toolkit without aclrtGetHardwareSyncAddr: the older rtGetC2cCtrlAddr
            cmd = build_command(d / "caller.cpp", so, home, arch, ak.kernel_type, legacy)
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode == 0:
                break
        if r.returncode != 0:
            raise UnsupportedError(f"bisheng could not build {ak.name} (sources in {d}):\n"
                                   + r.stderr[-4000:], fix="report it with the sources")
    lib = ctypes.CDLL(str(so))
    _libs[key] = lib
    return lib


class NpuRunner:
    """Builds (once per source) and launches one compiled kernel on an NPU; kept on its
    CompiledKernel with its Ascend C kernel (`ascendc`)."""

    def __init__(self, ck) -> None:
        self.ck = ck
        self._ascendc = None

    @property
    def ascendc(self):
        """The Ascend C kernel (source, tiling layout, launch facts)."""
        if self._ascendc is None:
            from mixtile.codegen.ascendc import generate

            self._ascendc = generate(self.ck.kernel, self.ck.target)
        return self._ascendc

    def launch_configs(self) -> list:
        return []

    def bind(self, args: tuple, dims: dict, *, tune: bool, launch_config, checks: bool,
             fresh_workspaces: bool):
        check_cores(self.ascendc, self.ck.target, device_cube_cores())
        order = self.ck.kfn.order
        for name, a in zip(order, args):  # the launcher holds calls to these strides
            if isinstance(a, torch.Tensor) and not a.is_contiguous():
                raise UnsupportedError(f"argument `{name}` is not contiguous",
                                       fix="pass .contiguous() tensors to target='npu'")

        def run_bound(args: tuple) -> None:
            run(self.ck, dict(zip(order, args)), dims, self.ck.cache_dir)

        return run_bound


def check_cores(ak, target, cores: int | None) -> None:
    """A kernel with a hard SyncAll must launch exactly the part's cores (910B SKUs have 20
    or 24 cube cores): more and the launch runs in rounds and hangs, fewer and the barrier
    waits for cores that never start."""
    if not ak.has_syncall or cores is None or cores == target.clusters:
        return
    raise UnsupportedError(
        f"kernel {ak.name} has a hard SyncAll and was compiled for {target.clusters} "
        f"clusters, but this NPU has {cores} cube cores: the launch would hang",
        fix=f"compile for this part: compile_cfg=dict(clusters={cores}) (mt.target().clusters "
            "sizes the launch)")


def run(ck, args: dict, dims: dict[str, int], cache_dir: Path) -> None:
    """Launch compiled kernel `ck` (target npu) on the current NPU stream; `dims` gives
    the symbolic dims' values (check_args), for the scratch tensors; the tensors are
    contiguous (NpuRunner.bind checks)."""
    ck.backend.require()
    ak = ck.ascendc
    k = ck.kernel
    dev = torch.device("npu", torch.npu.current_device())
    shapes, scalars, ptrs = {}, {}, []
    for p in k.params:
        t = p.value.type
        if not isinstance(t, TensorType):
            scalars[p.name] = args[p.name]
            continue
        if p.role is Role.SCRATCH:
            from mixtile.runtime.args import TORCH_DTYPE

            shape = tuple(d if isinstance(d, int) else dims[d] for d in t.shape)
            a = torch.zeros(shape, dtype=TORCH_DTYPE[t.dtype], device=dev)
        else:
            a = args[p.name]
        shapes[p.name] = tuple(a.shape)
        ptrs.append(a.data_ptr())
        args = {**args, p.name: a}
    ak.check_launch(shapes)
    tiling = torch.from_numpy(ak.tiling_values(shapes, scalars)).to(dev, non_blocking=True)
    ptrs.append(tiling.data_ptr())
    blocks = ak.block_dim(shapes, scalars)
    lib = _library(ak, ck.target.name, cache_dir)
    stream = torch.npu.current_stream().npu_stream
    arr = (ctypes.c_void_p * len(ptrs))(*ptrs)
    rc = lib.mixtile_launch(ctypes.c_uint32(blocks), ctypes.c_void_p(stream), arr)
    if rc != 0:
        raise UnsupportedError(f"{ak.name}: getting the hardware sync address failed with "
                               f"status {rc}", fix="check the CANN runtime (docs/ascendc.md)")
