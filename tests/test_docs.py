"""The docs checked against the code.

Markers in docs/*.md (an HTML comment on the line just before a fenced block) say where
a block comes from; each is recomputed here and a drifted block fails with a diff:

- `<!-- source: PATH:A-B -->`: lines `NN  text` are line NN of PATH (lines A..B);
- `<!-- ir: [MODULE:KERNEL] STAGE -->`: the IR of KERNEL (default: the page's
  `<!-- kernel: MODULE:KERNEL -->`) at STAGE (`initial`, or `after PASS` with PASS a key
  of `CompiledKernel.ir_after`, e.g. `DCE#2`), locs removed;
- `<!-- code: TARGET -->`: `mt.compile(KERNEL, target=TARGET).code`, `//` comments
  ignored;
- `<!-- output -->`: what the page's `python` blocks print, run in order as scripts in a
  temporary folder (`<!-- script: NAME.py -->` starts a new script file; `<!-- norun -->`
  leaves a block out); timings and folders in paths are masked;
- `<!-- costs -->` (a table, not a block): each row's op, pipe and cycles per execution
  as the target's cost model gives them for the page's kernel, and each pipe's total
  equals the busiest core's cycles of a simulated run;
- `<!-- ops -->` (a table): every declared op once, in declaration order, with its kind,
  unit, pipe and lane split.

Excerpts may cut lines: a line starting with `...` stands for any number of lines, and
the other lines must appear in the real text in order. Every page (and README.md) is
also checked for `mt.<name>` and `mixtile.<module>` names that do not exist and for
repository paths that do not exist.
"""
from __future__ import annotations

import difflib
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mixtile as mt

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [*DOCS, ROOT / "README.md"]

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
MARKER = re.compile(r"<!--\s*(\w+):?\s*(.*?)\s*-->")


def _blocks(text: str) -> list[tuple[str, str, list[tuple[str, str]], int]]:
    """(language, body, markers on the lines just above, line number) of each fence."""
    out = []
    for m in FENCE.finditer(text):
        above = text[:m.start()].splitlines()
        markers = []
        while above and above[-1].strip().startswith("<!--"):
            markers += MARKER.findall(above.pop())
        out.append((m.group(1), m.group(2), markers, text.count("\n", 0, m.start()) + 1))
    return out


def _page_marker(text: str, name: str) -> str | None:
    m = re.search(rf"<!--\s*{name}:\s*(.*?)\s*-->", text)
    return m.group(1) if m else None


def _subsequence(excerpt: list[str], real: list[str], where: str) -> None:
    """The excerpt's lines (minus `...` lines) appear in `real` in order."""
    i = 0
    for want in excerpt:
        if not want.strip() or want.strip().startswith("..."):
            continue
        while i < len(real) and real[i] != want:
            i += 1
        if i == len(real):
            diff = "\n".join(difflib.unified_diff(
                [x for x in excerpt if not x.strip().startswith("...")], real,
                "doc", "code", lineterm="", n=2))
            pytest.fail(f"{where}: this line is not in the code's text (in order):\n"
                        f"  {want}\n{diff}")
        i += 1


def _strip_locs(text: str) -> list[str]:
    return [re.sub(r' loc\("[^"]*":\d+\)$', "", x).rstrip() for x in text.splitlines()]


def _kernel(ref: str):
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


_CACHE: dict = {}


def _compiled(ref: str, target: str = "sim"):
    key = (ref, target)
    if key not in _CACHE:
        _CACHE[key] = mt.compile(_kernel(ref), compile_cfg=dict(disk_cache=False),
                                 target=target)
    return _CACHE[key]


def _ir(ref: str, stage: str) -> list[str]:
    """The IR text at `stage` (`initial` or `after PASS`; `... with locs` keeps the locs,
    their folders masked)."""
    stage, locs = stage.removesuffix(" with locs"), stage.endswith(" with locs")
    if stage == "initial":
        from mixtile.ir.printer import print_kernel
        k = _kernel(ref)
        text = print_kernel(k.trace(k.resolve_consts({})))
    else:
        assert stage.startswith("after "), f"unknown IR stage {stage!r}"
        ir_after = _compiled(ref).ir_after
        key = stage[len("after "):]
        assert key in ir_after, f"no pass {key!r}: the stages are {list(ir_after)}"
        text = ir_after[key]
    return [_mask(x) for x in text.splitlines()] if locs else _strip_locs(text)


def _no_comment(line: str) -> str:
    return re.sub(r"\s*//.*$", "", line).strip()


def _check_source(spec: str, body: str, where: str) -> None:
    path, lines = spec.rsplit(":", 1)
    lo, hi = (int(x) for x in lines.split("-"))
    real = (ROOT / path).read_text().splitlines()
    seen = []
    for line in body.splitlines():
        if line.strip().startswith("..."):
            continue
        m = re.match(r"\s*(\d+)(?:  (.*))?$", line)
        assert m, f"{where}: an excerpt line without its line number: {line!r}"
        n, text = int(m.group(1)), m.group(2) or ""
        seen.append(n)
        got = real[n - 1] if n <= len(real) else "<past the end of the file>"
        if text.rstrip() != got.rstrip():
            pytest.fail(f"{where}: {path}:{n} is now\n  {got!r}\nnot\n  {text!r}")
    assert seen and seen[0] == lo and seen[-1] == hi, \
        f"{where}: the marker says lines {lo}-{hi}, the excerpt shows {seen[0]}-{seen[-1]}"


# ---------------------------------------------------------------- scripts and outputs

_MASKS = [
    (re.compile(r"\s*\d+(\.\d+)? ms\b"), " <t> ms"),  # timings (and the padding before)
    (re.compile(r"(?:[\w.~-]*/)+([\w.-]+\.py)"), r"\1"),  # folders in paths
]


def _mask(line: str) -> str:
    for pat, rep in _MASKS:
        line = pat.sub(rep, line)
    return line.rstrip()


def _scripts(text: str, stem: str) -> list[tuple[str, str]]:
    scripts: list[tuple[str, str]] = []
    for lang, body, markers, _ in _blocks(text):
        kinds = dict(markers)
        if lang != "python" or "norun" in kinds:
            continue
        if "script" in kinds or not scripts:
            scripts.append((kinds.get("script", f"{stem}.py"), ""))
        name, src = scripts[-1]
        scripts[-1] = (name, src + body + "\n")
    return scripts


def _run_scripts(page: Path, tmp: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp),
           "PYTHONHASHSEED": "0"}
    out = []
    for name, src in _scripts(page.read_text(), page.stem):
        (tmp / name).write_text(src)
        r = subprocess.run([sys.executable, name], cwd=tmp, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, f"{page.name}: {name} failed:\n{r.stdout}\n{r.stderr}"
        out += r.stdout.splitlines()
    return out


def _checked(page: Path) -> bool:
    return any(markers for _, _, markers, _ in _blocks(page.read_text())) \
        or "<!-- costs -->" in page.read_text()


@pytest.mark.parametrize("page", [p for p in DOCS if _checked(p)], ids=lambda p: p.name)
def test_marked_blocks_match_the_code(page, tmp_path):
    text = page.read_text()
    kernel = _page_marker(text, "kernel")
    stdout = None
    for lang, body, markers, line in _blocks(text):
        where = f"{page.name}:{line}"
        excerpt = body.splitlines()
        for kind, arg in markers:
            if kind == "source":
                _check_source(arg, body, where)
            elif kind == "ir":
                ref, stage = (arg.split(" ", 1) if ":" in arg.split(" ", 1)[0]
                              else (kernel, arg))
                _subsequence([_mask(x) if stage.endswith(" with locs") else x.rstrip()
                              for x in excerpt], _ir(ref, stage), where)
            elif kind == "code":
                real = [_no_comment(x) for x in _compiled(kernel, arg).code.splitlines()]
                _subsequence([_no_comment(x) for x in excerpt], real, where)
            elif kind == "output":
                if stdout is None:
                    stdout = [_mask(x) for x in _run_scripts(page, tmp_path)]
                _subsequence([_mask(x) for x in excerpt], stdout, where)
            elif kind not in ("script", "norun"):
                pytest.fail(f"{where}: unknown marker {kind!r}")
    if "<!-- costs -->" in text:
        _check_costs(text, kernel, page.name)
    if "<!-- ops -->" in text:
        _check_ops(text, page.name)


def _table(text: str, marker: str) -> list[list[str]]:
    """The cells of each row of the table right after `marker` (header rows left out)."""
    table = text.split(marker, 1)[1].lstrip().split("\n\n", 1)[0]
    rows = [r for r in table.splitlines() if r.startswith("| `")]
    return [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]


def _enum_cell(value, enum, cell: str, where: str) -> None:
    """A fact that is a function of the op (unit, pipe) may be written `a / b`."""
    if value is None:
        assert cell == "-", f"{where}: {cell!r}, the declaration says none"
    elif isinstance(value, enum):
        assert cell == value.value, f"{where}: {cell!r}, the declaration says {value.value!r}"
    else:
        allowed = {m.value for m in enum}
        assert set(cell.split(" / ")) <= allowed, f"{where}: {cell!r} is not in {allowed}"


def _check_ops(text: str, where: str) -> None:
    """Rows `| `a`, `b` | kind | unit | pipe | lane split | doc |`: every declared op once."""
    from mixtile.ir.registry import OPS, LaneSplit, all_ops
    from mixtile.ir.types import Pipe, Unit

    seen = []
    for cells in _table(text, "<!-- ops -->"):
        names = re.findall(r"`(\w+)`", cells[0])
        for n in names:
            assert n in OPS, f"{where}: op `{n}` is not declared"
            d = OPS[n]
            w = f"{where}: op `{n}`"
            assert cells[1] == d.kind.value, f"{w}: kind {cells[1]!r}, declared {d.kind.value}"
            _enum_cell(d.unit, Unit, cells[2], f"{w} unit")
            _enum_cell(d.pipe, Pipe, cells[3], f"{w} pipe")
            _enum_cell(d.lane_split, LaneSplit, cells[4], f"{w} lane split")
        seen += names
    declared = [d.name for d in all_ops()]
    twice = sorted({n for n in seen if seen.count(n) > 1})
    assert sorted(seen) == sorted(declared), \
        f"{where}: the ops table lacks {sorted(set(declared) - set(seen))}, has extra " \
        f"{sorted(set(seen) - set(declared))} or repeats {twice}"
    assert seen == declared, f"{where}: the ops table is not in declaration order"


def _check_costs(text: str, kernel: str, where: str) -> None:
    """Rows `| `op` | `type` | pipe | cycles | times |` after the marker: `times` per
    block of the walkthrough's run (x [100, 200], w [300, 200]: two K steps per block)."""
    from mixtile.ir.printer import print_type
    from mixtile.simulator import simulate

    ck = _compiled(kernel)
    costs = {}
    for op in ck.kernel.walk():
        if op.opdef.cost is None:
            continue
        tiles = [v.type for v in op.results + op.operands if isinstance(v.type, mt.ir.TileType)]
        key = (op.name, print_type(tiles[0]) if tiles else "")
        costs[key] = (op.opdef.pipe_of(op).value, op.opdef.cost(op, ck.target))
    per_pipe: dict[str, int] = {}
    rows = _table(text, "<!-- costs -->")
    assert rows, f"{where}: no rows after <!-- costs -->"
    for cells in rows:
        name, typ, pipe, cycles, times = (c.strip("`") for c in cells[:5])
        assert (name, typ) in costs, f"{where}: no `{name}` of {typ} in the kernel"
        assert costs[name, typ] == (pipe, int(cycles)), \
            f"{where}: `{name}` of {typ} costs {costs[name, typ]}, the doc says {pipe} {cycles}"
        per_pipe[pipe] = per_pipe.get(pipe, 0) + int(cycles) * int(times)
    args = {"x": _np((100, 200)), "w": _np((300, 200)), "bias": _np((300,))}
    sim = simulate(ck.kernel, args, ck.target)
    core, cyc = max(sim.core_cycles.items(), key=lambda kv: sum(kv[1].values()))
    real = {p.value: n for p, n in cyc.items() if p.value in per_pipe}
    assert real == per_pipe, f"{where}: busiest core {core} has {real}, the table sums to " \
                             f"{per_pipe}"


def _np(shape):
    import numpy as np
    return np.zeros(shape, np.float32)


# ---------------------------------------------------------------- names and paths

MT_NAME = re.compile(r"(?<![\w.])mt\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
MODULE_NAME = re.compile(r"(?<![\w./])mixtile(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(r"(?<![\w./~<-])((?:mixtile|tilelang_models|tests|benchmarks|docs|\.ci)"
                  r"/[\w./-]*)(?::([\w-]+))?")
# the module map and prose name files under mixtile/ without the prefix
SHORT_PATH = re.compile(r"(?<![\w./~<-])((?:ir|language|passes|simulator|runtime|codegen)"
                        r"/[\w/-]+\.py)")


_REPO_FILES = {p.name for d in ("mixtile", "tilelang_models", "tests", "benchmarks")
               for p in (ROOT / d).rglob("*.py")}


def _resolve(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _page_text(page: Path) -> str:
    return page.read_text()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_named_apis_exist(page):
    """Every `mt.<name>` (and `mt.<name>.<attr>`) and `mixtile.<module>...` exists."""
    text = _page_text(page)
    bad = []
    for m in MT_NAME.finditer(text):
        try:
            _resolve(mt, m.group(1))
        except AttributeError:
            bad.append(f"mt.{m.group(1)}")
    for m in MODULE_NAME.finditer(text):
        parts = m.group(0).split(".")
        obj, i = None, len(parts)
        while i > 1:  # the longest importable prefix, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
                break
            except ImportError:
                i -= 1
        try:
            _resolve(obj, ".".join(parts[i:])) if parts[i:] else None
        except AttributeError:
            bad.append(m.group(0))
    assert not bad, f"{page.name} names what does not exist: {sorted(set(bad))}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_named_paths_exist(page):
    """Every repository path (and `docs/<file>.md`, and each `file.py:name`) exists."""
    text = _page_text(page)
    bad = []
    for m in PATH.finditer(text):
        path, name = m.group(1).rstrip("."), m.group(2)
        p = ROOT / path
        if "*" in path or not p.exists():
            if "*" not in path:
                bad.append(path)
            continue
        if name and not name.replace("-", "").isdigit() and p.is_file() \
                and not re.search(rf"\b{re.escape(name)}\b", p.read_text()):
            bad.append(f"{path}:{name}")
    for m in SHORT_PATH.finditer(text):
        if not (ROOT / "mixtile" / m.group(1)).exists():
            bad.append(m.group(1))
    for m in re.finditer(r"\]\(([\w.-]+\.md)\)", text):  # links between pages
        if not (page.parent / m.group(1)).exists():
            bad.append(m.group(1))
    scripts = {arg for _, _, markers, _ in _blocks(text) for k, arg in markers if k == "script"}
    for m in re.finditer(r"`(\w+\.py)\b", text):  # a file named alone: somewhere in the repo
        if m.group(1) not in scripts and m.group(1) not in _REPO_FILES:
            bad.append(m.group(1))
    assert not bad, f"{page.name} names paths that do not exist: {sorted(set(bad))}"


def test_error_texts_name_existing_apis():
    """Every `mt.<name>` in a string of the package (error messages, fixes, docstrings)
    exists too."""
    import ast

    bad = []
    for f in sorted((ROOT / "mixtile").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for m in MT_NAME.finditer(node.value):
                    try:
                        _resolve(mt, m.group(1))
                    except AttributeError:
                        bad.append(f"{f.relative_to(ROOT)}:{node.lineno}: mt.{m.group(1)}")
    assert not bad, "names that do not exist:\n" + "\n".join(bad)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_merge_conflict_markers(page):
    bad = [i + 1 for i, line in enumerate(page.read_text().splitlines())
           if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "======="]
    assert not bad, f"{page.name}: merge conflict markers at lines {bad}"
