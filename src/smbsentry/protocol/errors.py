"""The one exception type of the protocol layer.

Every parser in smbsentry.protocol raises ProtocolError, and only ProtocolError,
for input it cannot accept: short buffers, lengths that point outside the
buffer or past a fixed cap, wrong magic, unexpected message types.  Callers
(the scan engine, the lab, the detector) catch this one type and turn it into
an `unknown` verdict or an `errors` entry, never a traceback.
"""


class ProtocolError(ValueError):
    """Malformed, truncated, oversized or unexpected protocol data."""
