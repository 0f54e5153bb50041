# C types for engine.py when Cython compiles it (see setup.py); the .py is the source.
# Attributes are public: Python code (the CLI, parallel, tests) reads them as before.
from .reassembly cimport Framer, TcpStream


cdef class _Trans:
    cdef public long long function, got, kind, need


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


cdef class Engine:
    cdef public int shard, shards
    cdef public object sink, cfg, scan, source, source_key
    cdef public dict flows, udp_ids, dns_seen, smb1_pairs
    cdef public long long nflows
    cdef public long long frame
    cdef public double ts, next_sweep
    cdef public long long sweep_packets
    cdef public long long smb1_pairs_dropped
    cdef public long long packets, bytes, malformed, truncated, not_tcp_udp, other_ports
    cdef public long long smb_packets, dns_packets, dns_malformed, smb_messages, smb_malformed
    cdef public long long flows_total, flows_evicted, flows_timed_out
    cdef public long long gaps, gap_bytes, dup_bytes, overlap_bytes, desyncs, resync_skipped_bytes, ooo_cut
    cdef public long long alerts_total, alerts_suppressed
    cdef public object alerts_by_signature, alert_sources, events
    cdef public list sources_seen

    cpdef _tcp(self, bytes src, bytes dst, int sport, int dport, int flags, long long seq, long long ack,
               bytes payload, double ts, long long cut)
    cpdef _message(self, Flow flow, int d, bytes m, Py_ssize_t length)
    cpdef _smb1(self, Flow flow, int d, bytes m)
    cpdef _smb1_request(self, Flow flow, int d, bytes m, int cmd, int wc, tuple key, int mid)
    cpdef _implant_reply(self, Flow flow, int d, bytes m, int mid)
