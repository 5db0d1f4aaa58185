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

_ARCH_FLAG = {"a2": "dav-c220", "a3": "dav-c220", "a5": "dav-c310"}
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


def build_command(src: Path, out: Path, home: Path, arch: str) -> list[str]:
    """The bisheng command that builds a kernel and its caller into a shared library."""
    tik = home / "compiler" / "tikcpp" / "tikcfw"
    return ["bisheng", "-fPIC", "-shared", "-xcce", "-O2", "-std=c++17",
            f"--cce-aicore-arch={_ARCH_FLAG[arch]}",
            f"-I{tik}", f"-I{tik / 'impl'}", f"-I{tik / 'interface'}", f"-I{home / 'include'}",
            str(src), "-o", str(out), f"-L{home / 'lib64'}", "-lascendcl", "-lruntime"]


def caller_source(ak) -> str:
    """A host-callable entry: `mixtile_launch(blockDim, stream, args)` for the kernel."""
    n = len(ak.params) + 1
    args = ", ".join(f"args[{i}]" for i in range(n))
    return (f'#include "{ak.name}_kernel.cpp"\n\n'
            f'extern "C" void mixtile_launch(uint32_t blockDim, void* stream, uint8_t** args)\n'
            f"{{\n    {ak.name}<<<blockDim, nullptr, stream>>>({args});\n}}\n")


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
        cmd = build_command(d / "caller.cpp", so, home, arch)
        r = subprocess.run(cmd, capture_output=True, text=True)
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
        order = self.ck.kfn.order
        for name, a in zip(order, args):  # the launcher holds calls to these strides
            if isinstance(a, torch.Tensor) and not a.is_contiguous():
                raise UnsupportedError(f"argument `{name}` is not contiguous",
                                       fix="pass .contiguous() tensors to target='npu'")

        def run_bound(args: tuple) -> None:
            run(self.ck, dict(zip(order, args)), dims, self.ck.cache_dir)

        return run_bound


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
    tiling = torch.from_numpy(ak.tiling_values(shapes, scalars)).to(dev, non_blocking=True)
    ptrs.append(tiling.data_ptr())
    blocks = ak.block_dim(shapes, scalars)
    lib = _library(ak, ck.target.name, cache_dir)
    stream = torch.npu.current_stream().npu_stream
    arr = (ctypes.c_void_p * len(ptrs))(*ptrs)
    lib.mixtile_launch(ctypes.c_uint32(blocks), ctypes.c_void_p(stream), arr)
