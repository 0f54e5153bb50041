"""smbsentry: find, prove, fix and watch SMB exposure.

The package is layered so that dependencies point one way:
cli -> (scan, audit, detect, report, web) -> (checks, kb) -> protocol.
"""

__version__ = "0.1.0"
