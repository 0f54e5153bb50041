# C types for pcap.py when Cython compiles it (see setup.py); the .py is the source.
# _other_shard is a C function: the sharded record loop calls it once per packet.

cdef bint _other_shard(bytes buf, Py_ssize_t start, long long caplen, int shard, int shards)
