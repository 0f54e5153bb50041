# C types for events.py when Cython compiles it (see setup.py); the .py is the source.
# Attributes are public: Python code (the summary, the other detectors) reads them as before.
from .flows cimport Flow

cdef class Events:
    cdef public object sink, source, source_key
    cdef public long long frame
    cdef public double ts
    cdef public long long alerts_total, alerts_suppressed
    cdef public object alerts_by_signature, alert_sources, counts
