"""Run `smbsentry scan` in this process and print the order of its events as JSON (test_discover_netns).

    python tests/pipeorder.py scan RANGE --discovery connect ...

Records, in order: each host discovery confirms ("found"), each host result
the runner receives ("result"), and the end of the discovery stage
("discovery done").  Pipelining means results arrive before discovery is
done; a runner that assessed only after the sweep would print every result
after it.  The last line printed is the JSON.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    import smbsentry.discover.run as discover_run
    from smbsentry.cli import app
    from smbsentry.scan import runner

    events: list[list[str]] = []
    real_run, real_result = discover_run.run, runner._Run.on_result

    async def recorded(req, mode, on_host, on_stats=None):
        def found(address: str) -> None:
            events.append(["found", address])
            on_host(address)

        try:
            return await real_run(req, mode, found, on_stats)
        finally:
            events.append(["discovery done", ""])

    def on_result(self, result) -> None:
        events.append(["result", result.address])
        real_result(self, result)

    discover_run.run = recorded
    runner._Run.on_result = on_result
    try:
        app(argv, standalone_mode=False)
        code = 0
    except SystemExit as exc:  # typer.Exit is a click exception, SystemExit from fail()
        code = int(exc.code or 0)
    except Exception as exc:  # noqa: BLE001 - click's Exit carries the status
        code = int(getattr(exc, "exit_code", 1))
    print(json.dumps({"rc": code, "events": events}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
