"""Flow-sharded analysis of capture files over several processes (``jobs`` > 1).

CPython runs the detector on one core.  With ``jobs`` = N, N forked workers
each read every input file (reading and the header check are cheap) and
fully analyse only the SMB flows whose hash (ports and last address bytes,
the same in both directions) falls to them; worker 0 also runs the DNS and
worm-scan detectors over all traffic.  Per-flow detections are exactly those
of one process; the flow ids are hashes, so they match too.

Workers stream their events as JSON lines through pipes; the parent writes
them as they arrive (so events of different flows may interleave in another
order than with one process), reports each input error once (worker 0's),
then merges the workers' counters and SMBv1 pairs into the summary and the
``smb1-usage`` events.  Linux/POSIX only (``os.fork``); live capture always
runs in one process.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .capture import CaptureError, open_capture
from .engine import Config, Engine
from .output import json_encoder

__all__ = ["run_files"]

_ERROR = b"\x00E"  # an input error (worker 0 only), then JSON {"error": ...}
_DONE = b"\x00D"  # the worker's final state, JSON
_CRASH = b"\x00X"  # an unexpected exception in a worker, JSON {"error": ...}


def _worker(fd: int, paths: Sequence[str], config: Config, shard: int, shards: int) -> None:
    out = os.fdopen(fd, "wb", buffering=1 << 20)
    encode = json_encoder()

    def sink(ev: dict[str, Any]) -> None:
        out.write(encode(ev).encode("utf-8") + b"\n")
        if ev["event_type"] == "alert":
            out.flush()

    def control(tag: bytes, obj: dict) -> None:
        out.write(tag + json.dumps(obj).encode("utf-8") + b"\n")
        out.flush()

    try:
        engine = Engine(sink, config, shard=shard, shards=shards)
        for path in paths:
            try:
                ctx = open_capture(path)
            except CaptureError as exc:
                if not shard:
                    control(_ERROR, {"error": f"{path}: {exc}"})
                continue
            except OSError as exc:
                if not shard:
                    control(_ERROR, {"error": f"cannot read {path}: {exc.strerror or exc}"})
                continue
            try:
                engine.run(ctx.reader, path)
            except CaptureError as exc:
                if not shard:
                    control(_ERROR, {"error": f"{path}: {exc} (frames before it were analysed)"})
            except OSError as exc:
                if not shard:
                    control(_ERROR, {"error": f"{path}: read error: {exc.strerror or exc}"})
            finally:
                ctx.close()
                engine.end_source()
        control(_DONE, engine.export_state())
    except BrokenPipeError:
        pass
    except BaseException as exc:  # a bug: report it, never hang the parent
        with contextlib.suppress(Exception):
            line = traceback.format_exception_only(type(exc), exc)[-1].strip()
            control(_CRASH, {"error": f"worker {shard}: {line}"})
    finally:
        with contextlib.suppress(Exception):
            out.flush()


def run_files(
    paths: Sequence[str],
    config: Config,
    jobs: int,
    on_line: Callable[[bytes], None],
    on_error: Callable[[str], None],
    sink: Callable[[dict[str, Any]], None],
) -> Engine:
    """Analyse ``paths`` with ``jobs`` worker processes.

    ``on_line(line)`` gets every event line (JSON, with its newline) as it
    arrives; ``on_error(message)`` every input error once.
    Returns an :class:`Engine` holding the merged state (no flows left): call
    its :meth:`~Engine.finish` to emit the smb1-usage events (to ``sink``) and
    get the summary.  Raises RuntimeError if a worker crashed.
    """
    workers: list[tuple[int, int]] = []  # (pid, read fd)
    open_fds: set[int] = set()
    sel = selectors.DefaultSelector()
    try:
        for shard in range(jobs):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker
                code = 0
                try:
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler raises KeyboardInterrupt
                    os.close(r)
                    for _pid, rfd in workers:
                        os.close(rfd)
                    _worker(w, paths, config, shard, jobs)
                except BaseException:
                    code = 1
                finally:
                    os._exit(code)
            os.close(w)
            workers.append((pid, r))
            open_fds.add(r)
            sel.register(r, selectors.EVENT_READ, data=[shard, b""])
        states: dict[int, dict] = {}
        crashes: list[str] = []
        while open_fds:
            for key, _mask in sel.select():
                shard, pending = key.data[0], key.data[1]
                chunk = os.read(key.fd, 1 << 20)
                if not chunk:
                    sel.unregister(key.fd)
                    os.close(key.fd)
                    open_fds.discard(key.fd)
                    continue
                data = pending + chunk
                lines = data.split(b"\n")
                key.data[1] = lines.pop()
                for line in lines:
                    if line[:1] != b"\x00":
                        on_line(line + b"\n")
                    elif line[:2] == _DONE:
                        states[shard] = json.loads(line[2:])
                    elif line[:2] == _ERROR:
                        on_error(json.loads(line[2:])["error"])
                    elif line[:2] == _CRASH:
                        crashes.append(json.loads(line[2:])["error"])
        for pid, _r in workers:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        workers = []
        if crashes or len(states) != jobs:
            raise RuntimeError("; ".join(crashes) or "a worker process died")
        merged = Engine(sink, config)
        for shard in range(jobs):
            merged.merge_state(states[shard], primary=shard == 0)
        return merged
    finally:
        for pid, r in workers:  # interrupted or failed: stop the workers
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if r in open_fds:
                with contextlib.suppress(OSError):
                    os.close(r)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        sel.close()
