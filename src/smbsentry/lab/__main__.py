"""`python -m smbsentry.lab RANGE [--port P] [--mix M] [--manifest F] [--bind-mode B] [--services R]`.

The same entry as `smbsentry lab`, usable before and without the CLI (the
tests start the lab as a subprocess this way).
"""

from __future__ import annotations

import argparse
import logging
import sys

from .mix import LabConfigError
from .profile_model import ROLES
from .profiles import ProfileError
from .server import BIND_MODES, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smbsentry.lab", description=__doc__.splitlines()[0])
    parser.add_argument("range", help="loopback addresses: 127.50.0.0/24, 127.50.0.1-40 or one address")
    parser.add_argument("--port", action="append",
                        help="port to serve (repeatable, comma list, PORT=139 for NetBIOS); serving 139 adds UDP 137")
    parser.add_argument("--mix", default=None, help="NAME, or PROFILE=COUNT,... (default: every profile in turn)")
    parser.add_argument("--manifest", default=None, help="write {address: {profile, expected}} JSON here")
    parser.add_argument("--bind-mode", choices=BIND_MODES, default="auto")
    parser.add_argument("--services", default=None, metavar="RANGE",
                        help="also serve the service lab (RDP, HTTP, Kerberos, mail, NBNS) here, on the real ports")
    parser.add_argument("--services-mix", default=None, help="service profiles: NAME or PROFILE=COUNT,...")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        run(args.range, args.port or ROLES, args.mix, args.manifest, args.bind_mode, args.services, args.services_mix)
    except (LabConfigError, ProfileError, ValueError) as exc:
        print(f"smbsentry lab: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"smbsentry lab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
