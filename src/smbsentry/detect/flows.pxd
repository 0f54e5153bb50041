# C types for flows.py when Cython compiles it (see setup.py); the .py is the source.
# Attributes are public: Python code (the detectors, the summary, tests) reads them as before.
from .reassembly cimport Framer, TcpStream


cdef class Flow:
    cdef public dict alerts
    cdef public object client, client_lm, client_os
    cdef public bint closed
    cdef public dict commands
    cdef public long long compressed, encrypted, malformed, messages, orphan_t2s
    cdef public object cport, sport, id, dialect, state
    cdef public int fin, versions
    cdef public double first_ts, last_ts
    cdef public tuple framers, streams
    cdef public dict open_trans, pending_t2, pending_peek, pending_ss
    cdef public bint saw_syn, smb1_spoken
    cdef public object server, server_lm, server_os, smb1_dialects


cdef class FlowTable:
    cdef public object cfg
    cdef public dict flows
    cdef public long long nflows
    cdef public double next_sweep
    cdef public long long sweep_packets
    cdef public long long flows_total, flows_evicted, flows_timed_out
    cdef public long long gaps, gap_bytes, dup_bytes, overlap_bytes, desyncs, resync_skipped_bytes, ooo_cut
