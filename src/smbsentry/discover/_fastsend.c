/* smbsentry.discover._fastsend: the SYN send path of discovery, in C.
 *
 * Python cannot build and send 100,000 packets a second on one core (a
 * SipHash in Python alone costs microseconds), so this module does only
 * that: for a batch of destination addresses (an array of uint32 in host
 * order) and ports it lays out the 40-byte IPv4+TCP SYNs that
 * smbsentry.protocol.tcpip.syn builds, with the cookie of
 * smbsentry.discover.cookie in the sequence number, and hands them to the
 * kernel with sendmmsg(2) on a raw IP socket (IP_HDRINCL), up to BATCH
 * packets per system call, without the GIL.  Everything else (the order,
 * the rate, the replies) stays in Python.  When this does not compile,
 * discover/sender.py sends the same bytes with socket.sendto.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define BATCH 512
#define PROBE 40

/* --- SipHash-2-4 (reference algorithm; same result as cookie.siphash24) --- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                           \
    do {                                                                   \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);          \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                             \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                             \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);          \
    } while (0)

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* The cookie: SipHash-2-4 of the 8 bytes <IHH (dst, dport, sport), low 32 bits. */
static uint32_t cookie(uint64_t k0, uint64_t k1, uint32_t dst, uint16_t dport, uint16_t sport) {
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t m = (uint64_t)dst | ((uint64_t)dport << 32) | ((uint64_t)sport << 48);
    v3 ^= m; SIPROUND; SIPROUND; v0 ^= m;
    uint64_t last = (uint64_t)8 << 56;
    v3 ^= last; SIPROUND; SIPROUND; v0 ^= last;
    v2 ^= 0xff;
    SIPROUND; SIPROUND; SIPROUND; SIPROUND;
    return (uint32_t)(v0 ^ v1 ^ v2 ^ v3);
}

/* --- the probe ------------------------------------------------------------ */

static uint16_t fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static uint32_t sum16(const unsigned char *p, int n) {
    uint32_t s = 0;
    for (int i = 0; i < n; i += 2) s += (uint32_t)(p[i] << 8 | p[i + 1]);
    return s;
}

static void put16(unsigned char *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static void put32(unsigned char *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xffff); }

/* Source port of a probe: spread over [base, base+count) by the address, port and pass. */
static uint16_t source_port(uint32_t dst, uint16_t dport, uint32_t salt, uint16_t base, uint16_t count) {
    uint32_t h = dst * 2654435761u + dport + salt * 40503u;
    return (uint16_t)(base + (h >> 7) % count);
}

static void build(unsigned char *p, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq) {
    memset(p, 0, PROBE);
    p[0] = 0x45; put16(p + 2, PROBE); put16(p + 4, 0x5353); put16(p + 6, 0x4000);
    p[8] = 64; p[9] = 6; put32(p + 12, src); put32(p + 16, dst);
    put16(p + 10, fold(sum16(p, 20)));
    unsigned char *t = p + 20;
    put16(t, sport); put16(t + 2, dport); put32(t + 4, seq);
    t[12] = 5 << 4; t[13] = 0x02; put16(t + 14, 1024);
    uint32_t s = sum16(t, 20) + (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 6 + 20;
    put16(t + 16, fold(s));
}

typedef struct {
    uint64_t k0, k1;
    uint32_t src, salt;
    uint16_t base, count;
    const uint16_t *ports;
    Py_ssize_t nports;
} Plan;

static int parse_plan(PyObject *key, unsigned long src, PyObject *ports, unsigned int sbase, unsigned int scount,
                      unsigned long salt, Plan *plan, uint16_t *portbuf) {
    Py_buffer k;
    if (PyObject_GetBuffer(key, &k, PyBUF_SIMPLE) < 0) return -1;
    if (k.len != 16) { PyBuffer_Release(&k); PyErr_SetString(PyExc_ValueError, "the key is 16 bytes"); return -1; }
    plan->k0 = le64(k.buf); plan->k1 = le64((const unsigned char *)k.buf + 8);
    PyBuffer_Release(&k);
    Py_ssize_t n = PyTuple_Check(ports) ? PyTuple_GET_SIZE(ports) : -1;
    if (n < 1 || n > 64) { PyErr_SetString(PyExc_ValueError, "ports: a tuple of 1 to 64 ports"); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) {
        long v = PyLong_AsLong(PyTuple_GET_ITEM(ports, i));
        if (v < 1 || v > 65535) { if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "bad port"); return -1; }
        portbuf[i] = (uint16_t)v;
    }
    if (scount < 1 || sbase < 1 || sbase + scount > 65536) { PyErr_SetString(PyExc_ValueError, "bad source port range"); return -1; }
    plan->src = (uint32_t)src; plan->salt = (uint32_t)salt;
    plan->base = (uint16_t)sbase; plan->count = (uint16_t)scount;
    plan->ports = portbuf; plan->nports = n;
    return 0;
}

static void probe_at(const Plan *plan, uint32_t dst, uint16_t dport, unsigned char *out) {
    uint16_t sport = source_port(dst, dport, plan->salt, plan->base, plan->count);
    build(out, plan->src, dst, sport, dport, cookie(plan->k0, plan->k1, dst, dport, sport));
}

/* probes(key, src, dsts, ports, sport_base, sport_count, salt) -> bytes: the probes, not sent (tests). */
static PyObject *probes(PyObject *self, PyObject *args) {
    PyObject *key, *ports; Py_buffer d; unsigned long src, salt; unsigned int sbase, scount;
    uint16_t portbuf[64]; Plan plan;
    if (!PyArg_ParseTuple(args, "Oky*OIIk", &key, &src, &d, &ports, &sbase, &scount, &salt)) return NULL;
    if (parse_plan(key, src, ports, sbase, scount, salt, &plan, portbuf) < 0 || d.len % 4) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "dsts: an array of uint32");
        PyBuffer_Release(&d); return NULL;
    }
    Py_ssize_t n = d.len / 4;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * plan.nports * PROBE);
    if (out) {
        unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
        const uint32_t *dsts = d.buf;
        for (Py_ssize_t i = 0; i < n; i++)
            for (Py_ssize_t j = 0; j < plan.nports; j++, p += PROBE) probe_at(&plan, dsts[i], plan.ports[j], p);
    }
    PyBuffer_Release(&d);
    return out;
}

/* send(fd, key, src, dsts, ports, sport_base, sport_count, salt, start) -> packets sent.
 * Probe k of a batch is (dsts[k / len(ports)], ports[k % len(ports)]); this sends
 * probes start.. unless the kernel refuses one: then it returns how many went
 * (the caller resumes from there), or raises OSError when not even the first did. */
static PyObject *send_probes(PyObject *self, PyObject *args) {
    int fd; PyObject *key, *ports; Py_buffer d; unsigned long src, salt; unsigned int sbase, scount;
    Py_ssize_t start;
    uint16_t portbuf[64]; Plan plan;
    if (!PyArg_ParseTuple(args, "iOky*OIIkn", &fd, &key, &src, &d, &ports, &sbase, &scount, &salt, &start)) return NULL;
    if (parse_plan(key, src, ports, sbase, scount, salt, &plan, portbuf) < 0 || d.len % 4) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "dsts: an array of uint32");
        PyBuffer_Release(&d); return NULL;
    }
    const uint32_t *dsts = d.buf;
    Py_ssize_t total = (d.len / 4) * plan.nports, done = start < 0 ? 0 : start;
    int error = 0;
    /* per call, not static: two threads may send at once */
    unsigned char (*buf)[PROBE] = PyMem_RawMalloc(sizeof(*buf) * BATCH);
    struct mmsghdr *msgs = PyMem_RawMalloc(sizeof(*msgs) * BATCH);
    struct iovec *iov = PyMem_RawMalloc(sizeof(*iov) * BATCH);
    struct sockaddr_in *addrs = PyMem_RawMalloc(sizeof(*addrs) * BATCH);
    if (!buf || !msgs || !iov || !addrs) {
        PyMem_RawFree(buf); PyMem_RawFree(msgs); PyMem_RawFree(iov); PyMem_RawFree(addrs);
        PyBuffer_Release(&d); return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    while (done < total && !error) {
        int n = 0;
        for (; n < BATCH && done + n < total; n++) {
            Py_ssize_t k = done + n;
            uint32_t dst = dsts[k / plan.nports];
            probe_at(&plan, dst, plan.ports[k % plan.nports], buf[n]);
            iov[n].iov_base = buf[n]; iov[n].iov_len = PROBE;
            memset(&addrs[n], 0, sizeof addrs[n]);
            addrs[n].sin_family = AF_INET; addrs[n].sin_addr.s_addr = htonl(dst);
            memset(&msgs[n], 0, sizeof msgs[n]);
            msgs[n].msg_hdr.msg_name = &addrs[n]; msgs[n].msg_hdr.msg_namelen = sizeof addrs[n];
            msgs[n].msg_hdr.msg_iov = &iov[n]; msgs[n].msg_hdr.msg_iovlen = 1;
        }
        int sent = sendmmsg(fd, msgs, n, 0);
        if (sent < 0) { error = errno; break; }
        done += sent;
        if (sent < n) break;  /* the kernel refused one: let the caller see why on the next call */
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(buf); PyMem_RawFree(msgs); PyMem_RawFree(iov); PyMem_RawFree(addrs);
    PyBuffer_Release(&d);
    if (done == start && error) { errno = error; return PyErr_SetFromErrno(PyExc_OSError); }
    return PyLong_FromSsize_t(done - start);
}

static PyObject *py_cookie(PyObject *self, PyObject *args) {
    PyObject *key; unsigned long dst; unsigned int dport, sport;
    if (!PyArg_ParseTuple(args, "OkII", &key, &dst, &dport, &sport)) return NULL;
    Py_buffer k;
    if (PyObject_GetBuffer(key, &k, PyBUF_SIMPLE) < 0) return NULL;
    if (k.len != 16) { PyBuffer_Release(&k); PyErr_SetString(PyExc_ValueError, "the key is 16 bytes"); return NULL; }
    uint32_t c = cookie(le64(k.buf), le64((const unsigned char *)k.buf + 8), (uint32_t)dst, (uint16_t)dport, (uint16_t)sport);
    PyBuffer_Release(&k);
    return PyLong_FromUnsignedLong(c);
}

static PyObject *py_source_port(PyObject *self, PyObject *args) {
    unsigned long dst, salt; unsigned int dport, base, count;
    if (!PyArg_ParseTuple(args, "kIkII", &dst, &dport, &salt, &base, &count)) return NULL;
    if (count < 1) { PyErr_SetString(PyExc_ValueError, "count >= 1"); return NULL; }
    return PyLong_FromLong(source_port((uint32_t)dst, (uint16_t)dport, (uint32_t)salt, (uint16_t)base, (uint16_t)count));
}

static PyMethodDef methods[] = {
    {"send", send_probes, METH_VARARGS, "send(fd, key, src, dsts, ports, sport_base, sport_count, salt, start) -> packets sent"},
    {"probes", probes, METH_VARARGS, "probes(key, src, dsts, ports, sport_base, sport_count, salt) -> bytes (not sent)"},
    {"cookie", py_cookie, METH_VARARGS, "cookie(key, dst, dport, sport) -> the 32-bit SYN cookie"},
    {"source_port", py_source_port, METH_VARARGS, "source_port(dst, dport, salt, base, count) -> port"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastsend", "The C send path of SYN discovery.", -1, methods};

PyMODINIT_FUNC PyInit__fastsend(void) { return PyModule_Create(&module); }
