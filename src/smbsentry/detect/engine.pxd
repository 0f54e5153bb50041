# C types for engine.py when Cython compiles it (see setup.py); the .py is the source.
# Attributes are public: Python code (the CLI, parallel, the summary, tests) reads them as before.
# The rooms the hot path calls into are typed, so those calls go through their C vtables.
from .events cimport Events
from .flows cimport Flow, FlowTable
from .reassembly cimport Framer, TcpStream
from .smb1_exploits cimport Smb1Exploits


cdef class Engine:
    cdef public int shard, shards
    cdef public object cfg, scan, dns, inventory
    cdef public FlowTable table
    cdef public Events out
    cdef public Smb1Exploits smb1
    cdef public list sources_seen
    cdef public long long packets, bytes, malformed, truncated, not_tcp_udp, other_ports
    cdef public long long smb_packets, dns_packets, smb_messages, smb_malformed

    cpdef _tcp(self, bytes src, bytes dst, int sport, int dport, int flags, long long seq, long long ack,
               bytes payload, double ts, long long cut)
    cpdef _message(self, Flow flow, int d, bytes m, Py_ssize_t length)
    cpdef _smb1(self, Flow flow, int d, bytes m)
