"""Capture reading, TCP reassembly, detectors and alert output (see issue 5)."""
