"""``python -m smbsentry.detect``: see :func:`smbsentry.detect.cli.main`."""

import sys

from .cli import main

sys.exit(main())
