"""smbsentry.lab: emulated SMB hosts on loopback addresses, for testing scanners.

`smbsentry lab RANGE` (or `python -m smbsentry.lab RANGE`) serves one
emulated host per address of RANGE (inside 127.0.0.0/8 only) from a single
asyncio process: profiles (lab/profiles/*.json, each citing the capture
frames its values come from) say how each host answers, a mix says which
profile lives at which address, and the manifest lists, for every address,
the findings a correct scanner must report.

    profiles.py   the profile model, loading, expected findings (schema.py parses)
    host.py       one connection, sans-I/O: bytes in, bytes (and close/reset) out
    smb1_server.py, smb2_server.py, auth.py, access.py, pipes.py
                  the protocol answers, built with smbsentry.protocol
    mix.py        range and mix arithmetic (no per-address state)
    server.py     asyncio sockets (one per port, or per address), serve(), manifest
    background.py a lab in a thread, for tests and tools
"""
