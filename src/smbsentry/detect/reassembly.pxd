# C types for reassembly.py when Cython compiles it (see setup.py); the .py is the source.
# Attributes are public: Python code reads and sets them as before.

cdef class TcpStream:
    cdef public long long next_seq  # -1: not known yet
    cdef public dict ooo
    cdef public Py_ssize_t ooo_bytes, max_ooo_bytes, max_ooo_segments
    cdef public long long gaps, gap_bytes, dup_bytes, overlap_bytes
    cdef public long long peer_ack  # -1: none seen
    cdef public long long pkts, nbytes
    cdef public double ooo_since
    cdef public long long ooo_events

cdef class Framer:
    cdef public bytearray buf
    cdef public bint synced
    cdef public Py_ssize_t head_max, max_message, skip
    cdef public object pending
    cdef public long long desyncs, skipped_bytes, control
