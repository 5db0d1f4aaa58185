"""Pass tests as IR text: a golden input/output file per case for every pass, and the text
round trip of every pass's output for every example kernel on every pipeline.

Golden files: `tests/passes/<Pass>/<case>.mtir` (the folder names a pass of the pipelines
in mixtile/runtime/pipeline.py). A file holds the input IR, a marker line, and the IR the
pass alone makes of it:

    // what the case checks (free text)
    // target: a5                          (optional: a2, a3, a5 or gpu; a2 by default)
    // options: {"pipeline_depth": 1}      (optional: the PassContext options)
    // locs: true                          (optional: print the output with its locs)
    kernel @k(...) {
      ...
    }
    // ----- expected -----
    kernel @k(...) {
      ...
    }

The input parses with `parse_kernel` (`//` lines are comments). The test runs the pass
through a one-pass PassManager (which verifies its input and its output), prints the
result and compares it with the text after the marker exactly; a difference fails with a
unified diff. A case where the pass must refuse its input has the marker
`// ----- expected error -----`, followed by `ErrorClass: str(error)`.

After a deliberate change of a pass, or for a new case (the input alone, no marker yet),
write the expected sections with

    MIXTILE_UPDATE_GOLDEN=1 python -m pytest tests/test_pass_golden.py

and review every changed expectation before committing it.
"""
from __future__ import annotations

import difflib
import functools
import os
import re
from pathlib import Path

import pytest

from mixtile.errors import MixtileError, ParseError
from mixtile.ir.parser import parse_kernel, parse_value
from mixtile.ir.printer import kernels_equal, print_kernel
from mixtile.passes import PassContext, PassManager, verify
from mixtile.runtime.pipeline import ascendc_pipeline, default_pipeline, gpu_pipeline
from mixtile.target import get_target
from tilelang_models.kernels import examples

GOLDEN = Path(__file__).resolve().parent / "passes"
UPDATE = os.environ.get("MIXTILE_UPDATE_GOLDEN") == "1"
OUT_MARK = "// ----- expected -----"
ERR_MARK = "// ----- expected error -----"
_HEADER = re.compile(r"//\s*(target|options|locs):\s*(.*?)\s*\Z")

# the pipelines mt.compile builds: the simulator's on A2 and A5, the GPU's (Triton), and
# the Ascend C one on A2 and A5 (the only one with BiasToMmad and InsertPipeSync)
PIPELINES = {"sim-a2": ("a2", default_pipeline), "sim-a5": ("a5", default_pipeline),
             "gpu": ("gpu", gpu_pipeline), "npu-a2": ("a2", ascendc_pipeline),
             "npu-a5": ("a5", ascendc_pipeline)}
PASSES = {p.name: p for _, make in PIPELINES.values() for p in make()}


# ------------------------------------------------------------------ golden files

def _cases() -> list[Path]:
    return sorted(GOLDEN.glob("*/*.mtir"))


class Case:
    """One golden file: its header, the input text and the expected section."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pass_name = path.parent.name
        lines = path.read_text().splitlines()
        marks = [i for i, ln in enumerate(lines) if ln.strip() in (OUT_MARK, ERR_MARK)]
        assert len(marks) <= 1, f"{path}: more than one expected-section marker"
        cut = marks[0] if marks else len(lines)
        self.input = "\n".join(lines[:cut]) + "\n"
        self.error = bool(marks) and lines[cut].strip() == ERR_MARK
        self.expected = ("\n".join(lines[cut + 1:]).strip("\n") + "\n") if marks else None
        self.target, self.options, self.locs = "a2", {}, False
        for ln in lines[:cut]:
            m = _HEADER.match(ln.strip())
            if m is None:
                continue
            key, val = m.groups()
            if key == "target":
                self.target = val
            elif key == "options":
                self.options = parse_value(val)
            else:
                self.locs = parse_value(val)

    def run(self) -> tuple[str, bool]:
        """The pass's output text and False, or `ErrorClass: message` and True."""
        tgt = get_target(self.target)
        pm = PassManager([PASSES[self.pass_name]], PassContext(tgt, dict(self.options)),
                         keep_ir=False)
        try:
            out = pm.run(parse_kernel(self.input))
        except MixtileError as e:
            return f"{type(e).__name__}: {e}\n", True
        text = print_kernel(out, locs=self.locs)
        again = parse_kernel(text)
        assert print_kernel(again, locs=self.locs) == text, f"{self.path}: output re-prints"
        verify(again, tgt)
        return text, False

    def mismatch(self, got: str, is_error: bool) -> str | None:
        """None when `got` is the expected section, else the failure text with a diff."""
        if self.expected is None:
            return (f"{self.path}: no expected section; write it with MIXTILE_UPDATE_GOLDEN=1 "
                    "and review it")
        if (got, is_error) == (self.expected, self.error):
            return None
        mark = lambda err: (ERR_MARK if err else OUT_MARK) + "\n"  # noqa: E731
        diff = "".join(difflib.unified_diff(
            [mark(self.error)] + self.expected.splitlines(keepends=True),
            [mark(is_error)] + got.splitlines(keepends=True),
            fromfile=f"passes/{self.pass_name}/{self.path.name} (expected)",
            tofile=f"{self.pass_name} output"))
        return (f"{self.pass_name} on {self.path.name} differs from the golden output "
                f"(after a deliberate change: MIXTILE_UPDATE_GOLDEN=1, then review):\n{diff}")

    def write(self, got: str, is_error: bool) -> None:
        mark = ERR_MARK if is_error else OUT_MARK
        self.path.write_text(self.input.rstrip("\n") + f"\n{mark}\n{got}")


@pytest.mark.parametrize("path", _cases(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden(path):
    case = Case(path)
    assert case.pass_name in PASSES, (
        f"{path.parent.name} is no pass of the pipelines; known: {sorted(PASSES)}")
    got, is_error = case.run()
    failure = case.mismatch(got, is_error)
    if failure is not None and UPDATE:
        case.write(got, is_error)
    elif failure is not None:
        pytest.fail(failure, pytrace=False)


def test_every_pass_has_golden_cases():
    """A pass added to a pipeline needs a folder of cases; each folder names a pass."""
    covered = {p.parent.name for p in _cases()}
    folders = {p.name for p in GOLDEN.iterdir() if p.is_dir()}
    assert sorted(set(PASSES) - covered) == []
    assert sorted(folders - set(PASSES)) == []


def test_a_changed_expectation_fails_with_a_diff(tmp_path):
    """One expected line changed: the comparison fails, and the diff shows both lines."""
    src = GOLDEN / "InferSpaces" / "gemm_epilogue.mtir"
    got, is_error = Case(src).run()
    assert Case(src).mismatch(got, is_error) is None
    line = next(ln for ln in got.splitlines() if "= move %" in ln)
    bad = line.replace("MemSpace.L0A", "MemSpace.L0B")
    (tmp_path / "InferSpaces").mkdir()
    broken = tmp_path / "InferSpaces" / src.name
    text = src.read_text()
    broken.write_text(text[:text.index(OUT_MARK)] + text[text.index(OUT_MARK):]
                      .replace(line, bad, 1))
    failure = Case(broken).mismatch(got, is_error)
    assert failure is not None and f"--- passes/InferSpaces/{src.name} (expected)" in failure
    assert f"\n-{bad}\n" in failure and f"\n+{line}\n" in failure
    assert Case(broken).mismatch(got, True) is not None  # an error where output is expected


# ------------------------------------------------------------------ round trip

@functools.cache
def _qwen3_units(kind: str) -> dict[str, tuple]:
    """{kernel name: (kernel, constants)} of the Qwen3 layer's compile units at the tiny
    configuration, batch 4, page size 16, as DecodeLayer builds them for `kind` (an arch
    for the Ascend targets, "cuda" for the GPU), with and without norm_stats."""
    from tilelang_models.qwen3.config import get_config
    from tilelang_models.qwen3.decode_layer import DecodeLayer
    from tilelang_models.qwen3.weights import random_weights

    cfg = get_config("tiny")
    w = random_weights(cfg)
    units: dict[str, tuple] = {}
    for norm_stats in (False, True):
        where = (dict(target="cuda") if kind == "cuda" else
                 dict(compile_cfg=dict(arch=kind)))
        layer = DecodeLayer(cfg, w, progress=False, norm_stats=norm_stats, **where)
        found = layer.kernels(4, 16) + layer.kernels(4, 16, layer.partials(4, "down"))
        for kern, consts in found:
            units.setdefault(kern.name, (kern, consts))
    return units


QWEN3 = ["rmsnorm_gemm", "rmsnorm_gemm_folded", "fa_fused", "gemm_residual",
         "rmsnorm_swiglu", "gemm_residual_sumsq", "rmsnorm_swiglu_folded"]
UNITS = [n for n, _ in examples()] + [f"qwen3.{n}" for n in QWEN3]


def _unit(name: str, arch: str) -> tuple:
    if name.startswith("qwen3."):
        return _qwen3_units("cuda" if arch == "gpu" else arch)[name.split(".", 1)[1]]
    return dict(examples())[name], {}


def _round_trip(text: str, kernel, target, where: str) -> None:
    k2 = parse_kernel(text)
    assert print_kernel(k2) == text, f"{where}: print(parse(text)) is not the text"
    assert kernels_equal(kernel, k2), f"{where}: the parsed kernel is not the same IR"
    verify(k2, target)


@pytest.mark.parametrize("pipe", list(PIPELINES))
@pytest.mark.parametrize("name", UNITS)
def test_every_pass_output_round_trips(pipe, name):
    """After each pass: print -> parse -> print gives the same text, the parsed kernel is
    the same IR (kernels_equal) and verifies, and the pass run on the parsed text of the
    stage before gives the same text as on the kernel in memory (the text holds all that
    a pass reads)."""
    arch, make = PIPELINES[pipe]
    target = get_target(arch)
    kern, consts = _unit(name, arch)
    k = kern.trace(kern.resolve_consts(consts), None, target)
    text = print_kernel(k)
    _round_trip(text, k, target, f"{pipe} {name}: the traced IR")
    for i, p in enumerate(make(), start=1):
        from_text = p(parse_kernel(text), PassContext(target, {}))
        k = p(k, PassContext(target, {}))
        text = print_kernel(k)
        where = f"{pipe} {name}: after pass {i} ({p.name})"
        _round_trip(text, k, target, where)
        assert print_kernel(from_text) == text, f"{where}: another result from parsed input"


def test_round_trip_units_are_the_layers():
    """QWEN3 lists every kernel DecodeLayer compiles, on the Ascend targets and the GPU."""
    for kind in ("a2", "a5", "cuda"):
        assert sorted(_qwen3_units(kind)) == sorted(QWEN3)


def test_round_trip_check_catches_lost_information():
    """An attribute the printer cannot write back fails the check."""
    kern, _ = _unit("softmax", "a2")
    k = kern.trace(kern.resolve_consts({}), None, get_target("a2"))
    next(op for op in k.walk() if op.name == "load").attrs["note"] = object()
    with pytest.raises(ParseError, match="cannot be parsed"):
        _round_trip(print_kernel(k), k, get_target("a2"), "softmax")
