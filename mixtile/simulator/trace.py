"""The timeline of a timed run: its summary and its Chrome / Perfetto trace.

`Timeline.summary()` gives the makespan (the estimated kernel time), the utilisation of
each pipe (busy time over the die's cores of that type and the makespan), of HBM, the
time cores spent waiting on flags and syncalls, and the bound: HBM, cube or vector when
that resource is busy at least half of the makespan, else "waiting" (dependencies,
flags, syncalls, idle cores). `write(path)` writes the trace in the Chrome trace-event
format (JSON object form): one process per core (AIC0.., AIV0..), one thread per pipe,
a complete event ("ph": "X") per op with its DSL line, flow events ("s"/"f") from each
set_flag to the wait_flag it released and from the last syncall arrival to the other
participants, and the summary under "otherData". Perfetto (ui.perfetto.dev) and
chrome://tracing load it. `png(path)` draws a swimlane when matplotlib is installed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mixtile.ir.types import Pipe
from mixtile.simulator.timing import PIPES, TimingModel
from mixtile.target import Target

BOUND_LEVEL = 0.5  # a resource busy this fraction of the makespan bounds the kernel
_M, _V, _S = PIPES.index(Pipe.M), PIPES.index(Pipe.V), PIPES.index(Pipe.S)


def _core_key(name: str) -> tuple[str, int]:
    return name[:3], int(name[3:])


class Timeline:
    """What a timed simulation gives (`SimResult.timeline`, `RunResult.timeline`)."""

    def __init__(self, name: str, target: Target, model: TimingModel) -> None:
        self.name, self.target, self.model = name, target, model
        self.clock_hz = target.timing.clock_hz
        self.cores = sorted(model.clocks.values(), key=lambda c: _core_key(c.name))

    @property
    def makespan_cycles(self) -> float:
        return self.model.now

    @property
    def makespan_us(self) -> float:
        """The estimated kernel time in microseconds."""
        return self.model.now / self.clock_hz * 1e6

    def utilisation(self) -> dict[str, float]:
        """"AIC.M", "AIV.V", ... -> busy fraction of that pipe over the die's cores of
        that type; "HBM" -> bytes moved over what HBM can move in the makespan."""
        span = self.model.now or 1.0
        counts = {"AIC": self.target.aic_count, "AIV": self.target.aiv_count}
        busy: dict[str, float] = {}
        for c in self.cores:
            kind = c.name[:3]
            for i, p in enumerate(PIPES):
                if c.busy[i]:
                    key = f"{kind}.{p.value}"
                    busy[key] = busy.get(key, 0.0) + c.busy[i]
        out = {k: v / (counts[k[:3]] * span) for k, v in sorted(busy.items())}
        out["HBM"] = self.model.hbm_bytes / (self.target.timing.hbm_bytes_per_cycle * span)
        return out

    def busy_intervals(self, core: str, pipe: Pipe) -> list[tuple[float, float]]:
        """The merged busy intervals (cycles) of one pipe of one core ("AIC0")."""
        c = self.model.clocks.get(core)
        if c is None:
            return []
        p = PIPES.index(pipe)
        return _merge([(e[2], e[3]) for e in self.model.events if e[0] == c.idx and e[1] == p])

    def overlap(self) -> float:
        """The share of the vector work (V pipe of the AIVs) done while the cube core of
        the same cluster is busy (any of its MTE2, MTE1, M, FIX pipes): 0 when the two
        sides of a mixed kernel take turns, near 1 when the vector work hides under the
        cube's."""
        ivs: dict[int, list] = {}
        for e in self.model.events:
            if e[1] != _S:
                ivs.setdefault(e[0], []).append((e[1], e[2], e[3]))
        idx = {c.name: c.idx for c in self.cores}
        both = vec = 0.0
        for c in self.cores:
            if not c.name.startswith("AIC"):
                continue
            n = int(c.name[3:])
            cube = _merge([(a, b) for _, a, b in ivs.get(c.idx, ())])
            for a in (f"AIV{2 * n}", f"AIV{2 * n + 1}"):
                if a in idx:
                    v = _merge([(x, y) for p, x, y in ivs.get(idx[a], ()) if p == _V])
                    vec += sum(y - x for x, y in v)
                    both += _intersect(cube, v)
        return both / vec if vec else 0.0

    def bound(self) -> str:
        u = self.utilisation()
        cands = {"HBM": u["HBM"], "cube": u.get("AIC.M", 0.0), "vector": u.get("AIV.V", 0.0)}
        best = max(cands, key=cands.get)
        return best if cands[best] >= BOUND_LEVEL else "waiting"

    def summary(self) -> dict[str, Any]:
        """The numbers of the run (also in the trace's "otherData")."""
        wait = {c.name: c.wait / self.clock_hz * 1e6 for c in self.cores if c.wait}
        return {
            "kernel": self.name, "target": self.target.name, "estimate": True,
            "makespan_us": round(self.makespan_us, 3),
            "makespan_cycles": round(self.makespan_cycles),
            "clock_ghz": self.clock_hz / 1e9,
            "launches": [{"start_us": round(s / self.clock_hz * 1e6, 3),
                          "end_us": round(e / self.clock_hz * 1e6, 3)}
                         for _, s, e in self.model.launches],
            "hbm_bytes": round(self.model.hbm_bytes),
            "utilisation": {k: round(v, 4) for k, v in self.utilisation().items()},
            "bound": self.bound(),
            "cube_vector_overlap": round(self.overlap(), 4),
            "wait_us": {k: round(v, 3) for k, v in wait.items()},
            "cores": len(self.cores),
        }

    def text(self) -> str:
        """The summary as a few lines of text."""
        s = self.summary()
        u = s["utilisation"]
        lines = [f"{self.name} on {self.target.name} (model estimate): {s['makespan_us']:.2f} us "
                 f"({s['makespan_cycles']} cycles at {s['clock_ghz']:g} GHz), "
                 f"bound: {s['bound']}"]
        lines.append("  utilisation: " + ", ".join(f"{k} {v:.0%}" for k, v in u.items()))
        if s["wait_us"]:
            total = sum(s["wait_us"].values())
            worst = max(s["wait_us"], key=s["wait_us"].get)
            lines.append(f"  waiting on flags/syncalls: {total:.2f} us over all cores "
                         f"(most: {worst} {s['wait_us'][worst]:.2f} us)")
        return "\n".join(lines)

    # ------------------------------------------------------------ the trace

    def trace_events(self, pid_base: int = 0, t0_us: float = 0.0,
                     label: str | None = None) -> list[dict]:
        """The trace events of this run; pid_base / t0_us shift them (several kernels in
        one trace), label names the processes' kernel."""
        us = 1e6 / self.clock_hz
        label = label or self.name
        ev: list[dict] = []
        pid_of = {}
        for order, c in enumerate(self.cores):
            pid = pid_base + order + 1
            pid_of[c.idx] = pid
            ev.append({"name": "process_name", "ph": "M", "pid": pid,
                       "args": {"name": f"{c.name} ({label})"}})
            ev.append({"name": "process_sort_index", "ph": "M", "pid": pid,
                       "args": {"sort_index": pid}})
            for i, p in enumerate(PIPES):
                if c.busy[i] or (p is Pipe.S):
                    ev.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": i + 1,
                               "args": {"name": p.value}})
        events = self.model.events
        lines: dict = {}  # op location -> its text, relative to the working folder
        for core, pipe, start, end, op, block, note in events:
            line = lines.get(op.loc)
            if line is None:
                line = lines[op.loc] = _short(op.loc)
            args = {"line": line, "block": block}
            if note:
                args["note"] = note
            ev.append({"name": op.name if note is None else f"{op.name} ({note})",
                       "cat": PIPES[pipe].value, "ph": "X", "pid": pid_of[core],
                       "tid": pipe + 1, "ts": round(t0_us + start * us, 4),
                       "dur": round((end - start) * us, 4), "args": args})
        for n, (kind, src, dst) in enumerate(self.model.all_flows()):
            for ph, e in (("s", events[src]), ("f", events[dst])):
                flow = {"name": kind, "cat": kind, "ph": ph, "id": pid_base * 1_000_000 + n,
                        "pid": pid_of[e[0]], "tid": e[1] + 1,
                        "ts": round(t0_us + e[2] * us, 4)}
                if ph == "f":
                    flow["bp"] = "e"
                ev.append(flow)
        return ev

    def chrome_trace(self) -> dict:
        return {"traceEvents": self.trace_events(), "displayTimeUnit": "ns",
                "otherData": self.summary()}

    def write(self, path: str | Path) -> Path:
        """Write the Chrome trace JSON (and, with matplotlib, a PNG swimlane beside it:
        the same name with .png)."""
        return write_trace([self], path)

    def png(self, path: str | Path) -> Path | None:
        return swimlane([self], path)


def _short(loc) -> str:
    """file:line with the file relative to the working folder when it is inside it."""
    try:
        f = os.path.relpath(loc.file)
    except ValueError:  # another drive
        f = loc.file
    return f"{loc.file if f.startswith('..') else f}:{loc.line}"


def _merge(ivs: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(ivs):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        elif b > a:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _intersect(xs: list, ys: list) -> float:
    """Total length of the intersection of two merged interval lists."""
    i = j = 0
    total = 0.0
    while i < len(xs) and j < len(ys):
        lo, hi = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if hi > lo:
            total += hi - lo
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return total


def write_trace(timelines: list[Timeline], path: str | Path) -> Path:
    """One trace of several timed runs in sequence (a layer's kernels): each run's
    cores are separate processes named after its kernel; times continue from the
    previous run's end. The summary lists each run and the total."""
    path = Path(path)
    events: list[dict] = []
    t0 = 0.0
    for i, tl in enumerate(timelines):
        label = f"{i}: {tl.name}" if len(timelines) > 1 else tl.name
        events += tl.trace_events(pid_base=i * 1000, t0_us=t0, label=label)
        t0 += tl.makespan_us
    if len(timelines) == 1:
        other = timelines[0].summary()
    else:
        other = {"estimate": True, "makespan_us": round(t0, 3),
                 "kernels": [tl.summary() for tl in timelines]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ns",
                                "otherData": other}))
    swimlane(timelines, path.with_suffix(".png"))
    return path


def swimlane(timelines: list[Timeline], path: str | Path) -> Path | None:
    """A PNG with one lane per pipe of each core (kernels in sequence); None when
    matplotlib is not installed (pip install mixtile[timeline])."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    lanes: dict[tuple, list] = {}
    t0 = 0.0
    for k, tl in enumerate(timelines):
        us = 1e6 / tl.clock_hz
        names = {c.idx: c.name for c in tl.cores}
        for core, pipe, start, end, _op, _b, _n in tl.model.events:
            key = (k, _core_key(names[core]), pipe)
            lanes.setdefault(key, []).append((t0 + start * us, (end - start) * us))
        t0 += tl.makespan_us
    keys = sorted(lanes)
    fig, ax = plt.subplots(figsize=(14, max(3.0, 0.18 * len(keys))))
    colors = plt.get_cmap("tab10")
    for y, key in enumerate(keys):
        ax.broken_barh(lanes[key], (y, 0.8), color=colors(key[2] % 10))
    ax.set_yticks([y + 0.4 for y in range(len(keys))])
    ax.set_yticklabels([f"{k[1][0]}{k[1][1]} {PIPES[k[2]].value}" for k in keys], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("us (model estimate)")
    ax.set_title(", ".join(tl.name for tl in timelines))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
