"""The compiled detector (setup.py, smbsentry.detect._accel) and its plain-Python twin.

``reassembly``, ``engine`` and ``capture`` run compiled by Cython when the
install could build them, else as the ``.py`` files.  These tests check that

* the build worked here (a machine with a C compiler must not silently run
  the slow form);
* both forms give the same events, byte for byte, on every corpus capture,
  the synthetic traces, damaged copies of them, and with ``--jobs 2``;
* an extension built from another source is never used.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from corpus import corpus_dir

from smbsentry.detect import _accel

REPO = Path(__file__).resolve().parents[1]
TRACES = REPO / "tests" / "data" / "traces"
PURE = _accel.pure_requested()
COMPILER = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


def _inputs(with_corpus: bool = True) -> list[Path]:
    """The shipped traces, and the corpus captures when asked for and present."""
    files = sorted(TRACES.glob("*.pcap*"))
    c = corpus_dir()
    if with_corpus and c is not None:
        files += sorted((c / "pcaps").glob("*.pcap*"))
    return files


# Alerts each input set must give at the least: the three shipped traces give
# one alert each; the corpus adds the EternalBlue/DoublePulsar/WannaCry ones.
MIN_ALERTS = {"traces": 3, "traces+corpus": 10}


def _inputs_for(source: str) -> list[Path]:
    if source == "traces+corpus" and corpus_dir() is None:
        pytest.skip("capture corpus not found (../shared/corpus beside the repository, or SMBSENTRY_CORPUS)")
    return _inputs(with_corpus=source == "traces+corpus")


def _detect(files: list[Path], out: Path, pure: bool, jobs: int = 1) -> list[dict]:
    """Run ``smbsentry detect`` in a fresh interpreter (compiled or forced plain) and read its events."""
    env = dict(os.environ)
    env["SMBSENTRY_PURE_PYTHON"] = "1" if pure else "0"
    cmd = [sys.executable, "-m", "smbsentry.detect", *map(str, files), "--format", "jsonl", "-o", str(out), "-q"]
    if jobs > 1:
        cmd += ["--jobs", str(jobs)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 2), proc.stderr  # 2: a damaged input was reported
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert events and events[-1]["event_type"] == "stats"
    return events


def _comparable(events: list[dict]) -> list[dict]:
    """The events without what legitimately differs between runs (the summary's wall-clock time and mode)."""
    stats = dict(events[-1])
    stats.pop("timestamp")
    stats["stats"] = {k: v for k, v in stats["stats"].items() if k != "detector"}
    return [*events[:-1], stats]


@pytest.mark.skipif(PURE or COMPILER is None, reason="no C compiler, or plain Python asked for")
def test_detector_is_compiled_where_a_compiler_is() -> None:
    usable, why = _accel.extensions_usable()
    assert usable, f"the detector is not compiled here ({why}): run `pip install -e .` again and read its output"
    assert _accel.mode() == "compiled"
    for name, path in _accel.modules().items():
        assert not path.endswith(".py"), f"{name} was loaded from its source: {path}"


COMPILED_HERE = not PURE and _accel.extensions_usable()[0]
needs_compiled = pytest.mark.skipif(not COMPILED_HERE, reason="the detector is not compiled here")


@needs_compiled
@pytest.mark.parametrize("source", sorted(MIN_ALERTS))
def test_compiled_and_plain_python_give_the_same_events(tmp_path: Path, source: str) -> None:
    files = _inputs_for(source)
    assert files, "no traces"
    compiled = _detect(files, tmp_path / "c.jsonl", pure=False)
    plain = _detect(files, tmp_path / "p.jsonl", pure=True)
    assert compiled[-1]["stats"]["detector"] == "compiled"
    assert plain[-1]["stats"]["detector"] == "python (SMBSENTRY_PURE_PYTHON is set)"
    assert sum(e["event_type"] == "alert" for e in compiled) >= MIN_ALERTS[source]
    assert _comparable(compiled) == _comparable(plain)


def _damaged(src: Path, dst: Path, rng: random.Random) -> None:
    """A pcap copy of ``src`` with bytes of its packets overwritten (record headers kept)."""
    from smbsentry.detect.capture import read_capture

    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for _frame, ts, lt, data, wirelen in read_capture(str(src)):
        if lt != 1:
            continue
        data = bytearray(data)
        if len(data) > 54 and rng.random() < 0.3:
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(14, len(data))] = rng.randrange(256)
        if rng.random() < 0.05:
            data = data[: rng.randrange(len(data) + 1)]  # cut, as by a snap length
        sec = int(ts)
        out += struct.pack("<IIII", sec, int(round((ts - sec) * 1e6)) % 1_000_000, len(data), wirelen) + data
    dst.write_bytes(bytes(out))


@needs_compiled
def test_both_forms_agree_on_damaged_captures(tmp_path: Path) -> None:
    rng = random.Random(20261121)
    files = []
    for i, src in enumerate(_inputs()):
        dst = tmp_path / f"damaged-{i}.pcap"
        _damaged(src, dst, rng)
        files.append(dst)
    compiled = _detect(files, tmp_path / "c.jsonl", pure=False)
    plain = _detect(files, tmp_path / "p.jsonl", pure=True)
    assert compiled[-1]["stats"]["detector"] == "compiled"
    assert _comparable(compiled) == _comparable(plain)


def _record_headers(src: Path) -> list[tuple[int, int, bytes, int]]:
    from smbsentry.detect.capture import read_capture

    return [(int(ts), int(round((ts - int(ts)) * 1e6)) % 1_000_000, data, wire)
            for _f, ts, lt, data, wire in read_capture(str(src)) if lt == 1]


def _pcap(records, bo: str = "<", magic: int = 0xA1B2C3D4) -> bytes:
    out = bytearray(struct.pack(bo + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1))
    for sec, frac, data, wire, *caplen in records:
        out += struct.pack(bo + "IIII", sec, frac, caplen[0] if caplen else len(data), wire) + data
    return bytes(out)


@needs_compiled
@pytest.mark.parametrize(
    "damage",
    ["caplen-2**31", "caplen-max", "wirelen-max", "wirelen-small", "cut-mid-record", "big-endian", "nanosecond"],
)
def test_both_forms_agree_on_damaged_record_headers(damage: str, tmp_path: Path) -> None:
    """The compiled reader reads record headers in C: lengths near 2**32, cuts, the other byte order."""
    src = TRACES / "eternalchampion-pattern.pcap"
    recs = [list(r) for r in _record_headers(src)]
    assert len(recs) > 6
    if damage == "caplen-2**31":
        recs[5].append(0x80000001)  # a declared captured length past MAX_CAPLEN, negative as int32
    elif damage == "caplen-max":
        recs[5].append(0xFFFFFFFF)
    elif damage == "wirelen-max":
        recs[5][3] = 0xFFFFFFFF  # more on the wire than captured: a snap-length cut
    elif damage == "wirelen-small":
        recs[5][3] = 10
    raw = _pcap(recs, ">" if damage == "big-endian" else "<", 0xA1B23C4D if damage == "nanosecond" else 0xA1B2C3D4)
    if damage == "cut-mid-record":
        raw = raw[: len(raw) - len(recs[-1][2]) // 2]
    path = tmp_path / f"{damage}.pcap"
    path.write_bytes(raw)
    compiled = _detect([path], tmp_path / "c.jsonl", pure=False)
    plain = _detect([path], tmp_path / "p.jsonl", pure=True)
    assert _comparable(compiled) == _comparable(plain)
    errors = compiled[-1]["stats"]["errors"]
    assert bool(errors) == (damage in ("caplen-2**31", "caplen-max", "cut-mid-record")), errors


def test_both_forms_agree_when_sharded(tmp_path: Path) -> None:
    files = _inputs()
    one = _detect(files, tmp_path / "one.jsonl", pure=False)
    compiled = _detect(files, tmp_path / "c.jsonl", pure=False, jobs=2)
    plain = _detect(files, tmp_path / "p.jsonl", pure=True, jobs=2)
    key = lambda e: json.dumps(e, sort_keys=True)  # noqa: E731 - workers interleave their events
    c, p, o = _comparable(compiled), _comparable(plain), _comparable(one)
    assert c[-1] == p[-1] == o[-1]
    assert sorted(map(key, c[:-1])) == sorted(map(key, p[:-1])) == sorted(map(key, o[:-1]))


@pytest.mark.skipif(PURE or not _accel.extensions_usable()[0], reason="the detector is not compiled here")
def test_an_extension_built_from_another_source_is_not_used(tmp_path: Path) -> None:
    here = Path(_accel.__file__).resolve().parent
    copy = tmp_path / "detect"
    copy.mkdir()
    for f in here.iterdir():
        if f.is_file():
            shutil.copy2(f, copy / f.name)
    assert _accel.extensions_usable(copy) == (True, "compiled")
    # a .pxd edit counts too: it changes the compiled code
    with (copy / "engine.pxd").open("a") as fh:
        fh.write("\n")
    assert _accel.extensions_usable(copy) == (False, "engine.py changed since it was compiled")
    shutil.copy2(here / "engine.pxd", copy / "engine.pxd")
    with (copy / "capture.py").open("a") as fh:
        fh.write("\n# edited\n")
    assert _accel.extensions_usable(copy) == (False, "capture.py changed since it was compiled")
    (copy / "_compiled.json").write_text("[]")
    assert _accel.extensions_usable(copy) == (False, "not compiled")
    (copy / "_compiled.json").unlink()
    assert _accel.extensions_usable(copy) == (False, "not compiled")


def _run_plain_python(code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter with SMBSENTRY_PURE_PYTHON=1; it must exit 0."""
    env = dict(os.environ, SMBSENTRY_PURE_PYTHON="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out


def test_plain_python_loads_every_compiled_module_from_its_source() -> None:
    """SMBSENTRY_PURE_PYTHON: all three modules come from their .py files (never a mix)."""
    code = (
        "import sys, pathlib\n"
        "import smbsentry.detect._accel as a\n"
        "print(a.mode())\n"
        "import smbsentry.detect.engine as e, smbsentry.detect.reassembly as r, smbsentry.detect.capture as c\n"
        "print({pathlib.Path(m.__file__).suffix for m in (e, r, c)} == {'.py'})\n"
        "print(sum(f is a._SourceFirst for f in sys.meta_path))\n"
        "import importlib; importlib.invalidate_caches()  # must not fail with the finder in place\n"
    )
    out = _run_plain_python(code)
    lines = out.stdout.splitlines()
    assert lines[0] == "python (SMBSENTRY_PURE_PYTHON is set)"
    assert lines[1] == "True" and lines[2] == "1"


def test_plain_python_loads_the_split_modules_from_source_too() -> None:
    """Every module of _accel.COMPILED (the engine's rooms cimport each other) loads from its .py when asked."""
    code = (
        "import json, pathlib\n"
        "import smbsentry.detect._accel as a\n"
        "print(json.dumps({n: pathlib.Path(f).suffix for n, f in a.modules().items()}))\n"
    )
    out = _run_plain_python(code)
    suffixes = json.loads(out.stdout)
    assert set(suffixes) == set(_accel.COMPILED)
    assert set(suffixes.values()) == {".py"}, suffixes


def test_the_makefile_rebuilds_on_a_change_to_any_compiled_module() -> None:
    """`make venv` reinstalls (recompiles) when a compiled module's .py or .pxd changes: its list is _accel's."""
    text = (REPO / "Makefile").read_text()
    m = re.search(r"^COMPILED_MODULES := (.*)$", text, re.M)
    assert m, "COMPILED_MODULES not found in the Makefile"
    assert tuple(f"smbsentry.detect.{name}" for name in m.group(1).split()) == _accel.COMPILED
