"""Structural checks of an emitted Ascend C kernel, read from the source text itself.

What a C++ compiler against a declare-only header cannot see, and what hangs or
corrupts a real chip:
- cross-core flags: every `CrossCoreSetFlag<mode, pipe>(id)` one core type issues has a
  `CrossCoreWaitFlag(id)` on the other core type of the cluster (mode 2), the ids are in
  the target's range, and no id is waited on that nobody sets (a hang);
- intra-core events: every `SetFlag<HardEvent::E>(id)` is followed by its
  `WaitFlag<HardEvent::E>(id)` before the next SetFlag of the same event and id;
- memory: each `TBuf` is initialised once per core with a size within the space's
  capacity, and every tile `buf.GetWithOffset<T>(n, addr)` lies inside that size;
- SyncAll: a kernel with a hard `SyncAll` launches exactly `clusters` blocks (its grid
  must be the constant cluster count), else the barrier waits for cores that never come.

`check(ak)` returns the list of problems (empty when the kernel is sound);
`assert_sound(ak)` raises `CodegenCheckError` with all of them.
"""
from __future__ import annotations

import re

from mixtile.codegen.ascendc.emitter import BUFFER, AscendCKernel
from mixtile.errors import MixtileError
from mixtile.target import DEFAULT

_SIZEOF = {"float": 4, "half": 2, "bfloat16_t": 2, "int8_t": 1, "uint8_t": 1, "int32_t": 4,
           "int64_t": 8}
_SPACE_OF = {v: k for k, v in BUFFER.items()}
_SET = re.compile(r"CrossCoreSetFlag<(\d+), (PIPE_\w+)>\((\d+)\)")
_WAIT = re.compile(r"CrossCoreWaitFlag\((\d+)\)")
_EV_SET = re.compile(r"\bSetFlag<HardEvent::(\w+)>\((\w+)\)")
_EV_WAIT = re.compile(r"\bWaitFlag<HardEvent::(\w+)>\((\w+)\)")
_INIT = re.compile(r"pipe\.InitBuffer\((\w+), (\d+)\)")
_GET = re.compile(r"(\w+)\.GetWithOffset<(\w+)>\((\d+), (\d+)\)")


class CodegenCheckError(MixtileError):
    """The emitted Ascend C failed a structural check (a backend bug, or a kernel the
    backend cannot express safely)."""


def _branches(src: str) -> dict[str, str]:
    """The text of the `if ASCEND_IS_AIC {...}` / `if ASCEND_IS_AIV {...}` branches; a
    single-core kernel is all one branch."""
    out: dict[str, str] = {}
    for core in ("AIC", "AIV"):
        i = src.find(f"if ASCEND_IS_{core} {{")
        if i < 0:
            continue
        depth, j = 0, src.index("{", i)
        for k in range(j, len(src)):
            depth += {"{": 1, "}": -1}.get(src[k], 0)
            if depth == 0:
                out[core] = src[j:k + 1]
                break
    if not out:
        out["ONE"] = src
    return out


def check(ak: AscendCKernel, flag_ids: int = DEFAULT.flag_ids) -> list[str]:
    """The structural problems of an emitted kernel (empty: none found)."""
    src = ak.source
    problems: list[str] = []
    br = _branches(src)
    # ---- cross-core flags
    sets = {c: {int(m[3]) for m in _SET.finditer(t)} for c, t in br.items()}
    waits = {c: {int(m[1]) for m in _WAIT.finditer(t)} for c, t in br.items()}
    for c, ids in sets.items():
        other = {"AIC": "AIV", "AIV": "AIC"}.get(c)
        for i in sorted(ids):
            if i >= flag_ids:
                problems.append(f"{c} sets cross-core flag {i}; ids 0..{flag_ids - 1} exist")
            if other is None or i not in waits.get(other, set()):
                problems.append(f"{c} sets cross-core flag {i} but no "
                                f"{other or 'other core'} waits on it")
    for c, ids in waits.items():
        other = {"AIC": "AIV", "AIV": "AIC"}.get(c)
        for i in sorted(ids - sets.get(other, set())):
            problems.append(f"{c} waits on cross-core flag {i} that no "
                            f"{other or 'other core'} sets (a hang)")
    own = {"AIC": {"PIPE_MTE1", "PIPE_MTE2", "PIPE_M", "PIPE_FIX"},
           "AIV": {"PIPE_MTE2", "PIPE_MTE3", "PIPE_V"}}
    for c, text in br.items():
        for m in _SET.finditer(text):
            if c in own and m[2] not in own[c]:
                problems.append(f"{c} issues CrossCoreSetFlag on {m[2]}, a pipe it does not have")
    for m in _SET.finditer(src):
        if m[1] != "2":
            problems.append(f"CrossCoreSetFlag mode {m[1]}: the 1:2 mixed kernel uses mode 2")
        if m[2] in ("PIPE_S", "PIPE_ALL"):
            problems.append(f"CrossCoreSetFlag on {m[2]} is not allowed on a2/a3")
    # ---- intra-core events: each set is waited before the same event is set again
    for c, text in br.items():
        pending: dict[tuple[str, str], int] = {}
        for m in re.finditer(r"\b(Set|Wait)Flag<HardEvent::(\w+)>\((\w+)\)", text):
            key = (m[2], m[3])
            if m[1] == "Set":
                if pending.get(key):
                    problems.append(f"{c}: SetFlag<{key[0]}>({key[1]}) twice without a wait")
                pending[key] = 1
            else:
                if not pending.get(key):
                    problems.append(f"{c}: WaitFlag<{key[0]}>({key[1]}) without a SetFlag")
                pending[key] = 0
        for key, n in pending.items():
            if n:
                problems.append(f"{c}: SetFlag<{key[0]}>({key[1]}) is never waited")
    # ---- memory: buffers within capacity, tiles within their buffer
    cap = ak.capacity
    for c, text in br.items():
        sizes: dict[str, int] = {}
        for m in _INIT.finditer(text):
            if m[1] in sizes:
                problems.append(f"{c}: {m[1]} initialised twice")
            sizes[m[1]] = int(m[2])
            space = _SPACE_OF.get(m[1])
            if space is not None and int(m[2]) > cap.get(space, 0):
                problems.append(f"{c}: {m[1]} of {m[2]} bytes exceeds the {space.value} "
                                f"capacity {cap.get(space, 0)}")
        for m in _GET.finditer(text):
            buf, ty, n, addr = m[1], m[2], int(m[3]), int(m[4])
            end = addr + n * _SIZEOF[ty]
            if buf not in sizes:
                problems.append(f"{c}: tile in {buf}, which this core never initialises")
            elif end > sizes[buf]:
                problems.append(f"{c}: a {ty} tile at byte {addr} of {buf} ends at {end}, past "
                                f"the buffer's {sizes[buf]} bytes")
            if addr % 32:
                problems.append(f"{c}: a tile at byte {addr} of {buf} is not 32-byte aligned")
    # ---- SyncAll: the launch must fill the cores (clusters; a vector-only kernel's AIVs)
    if "SyncAll" in src:
        g = ak.static_grid
        vector_only = ak.kernel_type == "KERNEL_TYPE_MIX_AIV_1_0"
        want, what = ((2 * ak.clusters, "AIV cores") if vector_only
                      else (ak.clusters, "clusters"))
        if g is None:
            problems.append("the kernel has a hard SyncAll but its grid is not a constant; it "
                            f"must launch exactly {want} {what}")
        elif g != want:
            problems.append(f"the kernel has a hard SyncAll but launches {g} blocks; "
                            f"{want} {what} must all arrive")
    return problems


def assert_sound(ak: AscendCKernel, flag_ids: int = DEFAULT.flag_ids) -> None:
    problems = check(ak, flag_ids)
    if problems:
        raise CodegenCheckError(f"the Ascend C source of {ak.name} fails "
                                f"{len(problems)} structural check(s):\n  "
                                + "\n  ".join(problems))

