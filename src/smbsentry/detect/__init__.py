"""The traffic detector behind ``smbsentry detect``.

Reads captures (pcap, pcapng, gzip-compressed, several in one run) or a live
interface, reassembles SMB over TCP 445/139, and emits Suricata-EVE-style
events as it goes: alerts for MS17-010 exploitation and probing, the
DoublePulsar implant, SMBGhost crash/overflow attempts, WannaCry's kill-switch
lookup and worm-like SMB scanning; ``flow`` events describing each SMB flow;
``smb1-usage`` events saying who still speaks SMBv1 to whom; a summary.

Modules
-------
``capture``     streaming capture-file reader (gzip; bounded memory; batches)
``pcap``        pcap/pcapng parsing, sans-I/O (:class:`CaptureParser`)
``packet``      link/IP/TCP/UDP decoding
``reassembly``  TCP reassembly (:class:`TcpStream`) and NetBIOS framing (:class:`Framer`)
``smbmsg``      the SMB fields the detectors need, name tables
``dns``         DNS question parsing, WannaCry kill-switch domains
``config``      thresholds and bounds (:class:`Config`)
``engine``      the batch loop, TCP and SMB dispatch (:class:`Engine`, sans-I/O)
``flows``       flows and their lifecycle (:class:`Flow`, :class:`FlowTable`)
``smb1_exploits`` MS17-010 and DoublePulsar rules on SMB1 transactions
``smbghost``    SMBGhost: compression transforms that cannot be valid
``killswitch``  WannaCry's kill-switch DNS lookups
``wormscan``    worm-like SYN scanning
``inventory``   the SMBv1 inventory (``smb1-usage``)
``events``      building and counting the events
``summary``     the summary, and a shard's state for the merge
``signatures``  stable signature ids, texts, categories, severities
``output``      JSON lines / table writers and the summary
``live``        live capture through dumpcap (or tcpdump) writing pcap to a pipe
``parallel``    flow-sharded analysis of files over several processes
``cli``         :func:`main_detect`, the command (``python -m smbsentry.detect`` too)

Command
-------
``main_detect(inputs, interface, bpf, fmt, out, scan_threshold=20,
scan_window=10.0, *, flows=True, quiet=False, fail_on=None, duration=None,
capture_tool=None, jobs=1) -> exit status`` (see :mod:`.cli`).  Exit status
0 success, 1 run-time failure (live capture could not start), 2 bad usage or
bad input (damaged/unreadable capture: earlier alerts are still written),
3 with ``fail_on``, 130 after Ctrl-C while reading files.

Reassembly and its limits
-------------------------
Per direction: in-order data passes straight through; retransmissions are
dropped; overlaps are trimmed with the first copy of a byte winning; data
beyond a hole waits (at most 256 KiB / 256 segments per direction, 64 MiB
overall).  A hole is declared lost (a *gap*) when those caps are reached,
when the receiver acknowledged data beyond it and the hole is wide (>= 64
KiB) or has persisted (0.2 s of capture time or 4 more segments/ACKs: some
captures hold an ACK just before the GRO-merged data it acknowledges), or
when the flow ends.  After a gap, or a NetBIOS header that is not plausible,
framing resynchronises on the next NetBIOS session-message header (length
under 1 MiB and at least an SMB header's) followed by an SMB protocol id.  Segments cut by the snap length count as truncated and leave
a gap.  Messages longer than 16 KiB are analysed from their first 16 KiB
(enough for every header the detectors read; the SMBGhost checks use the
full length from the NetBIOS header).  Flows idle for 600 s or closed for
5 s are retired; beyond 32,768 flows the least recently active tenth is
evicted.  ``frame`` in an alert is the frame whose data completed the
triggering message (for data that waited beyond a hole: the frame at which
the hole was declared lost or filled).

What each signature looks for (and what it cannot tell)
--------------------------------------------------------
One alert per signature per flow; later matches are counted in the flow
event's ``alerts`` and the summary's ``alerts_suppressed``.

``ms17-010-probe`` (severity 2)
    SMB_COM_TRANSACTION with setup 0x0023 (PeekNamedPipe) on FID 0: the
    vulnerability check of nmap, Metasploit, WannaCry and smbsentry's own
    scanner.  A probe, not an attack; legitimate scanners raise it too.
``ms17-010-vulnerable-reply`` (1)
    That probe (matched by MID on the flow) answered
    STATUS_INSUFF_SERVER_RESOURCES (0xC0000205): the server lacks MS17-010.
``eternalblue`` (1)
    Any of: NT_TRANSACT with an undefined function (EternalBlue uses 0) and
    TotalDataCount above 0xFFFF; a TRANSACTION2_SECONDARY continuing an
    NT_TRANSACT (same PID/MID/TID/UID: the type confusion the exploit
    needs); 8 or more TRANSACTION2_SECONDARY requests belonging to no
    TRANSACTION2 on the flow.  The grooming connections (NetBIOS messages of
    ~64 KiB holding a zeroed SMB2 header, never completed) are not alerted
    on; the exploit flow always is.
``eternalromance`` (1) - EternalRomance and EternalSynergy
    A WRITE_ANDX addressed to a transaction still in progress (same
    PID/MID/TID/UID, parameter/data bytes still owed), or, on a flow seen
    from its SYN without gaps, a TRANSACTION_SECONDARY for a transaction
    never opened (the exploit rewrote the MID in server memory: the
    EternalRomance trace sends secondaries with MID 0).  EternalRomance and
    EternalSynergy exploit the same transaction handling through the same
    wire pattern; nothing on the wire reliably tells them apart, so one id
    covers both (the signature text says so).  Their grooming - bursts of
    TRANSACTION requests, some three to a segment, MID 16384 among them,
    ordinary MIDs 81-83 in between - is not distinctive enough alone.
``eternalchampion`` (1)
    An NT_TRANSACT_SECONDARY for an NT transaction that was already complete
    (all parameter and data bytes sent) or uses the unimplemented
    NT_TRANSACT_RENAME, before the server answered it: the race
    EternalChampion depends on.  No real EternalChampion capture was
    available; the test uses a synthetic reproduction of the published
    pattern (tests/data/traces/eternalchampion-pattern.pcap).
``doublepulsar-ping`` / ``-upload`` / ``-uninstall`` (1)
    TRANSACTION2 SESSION_SETUP (subcommand 0x000E, which Windows does not
    implement) whose Timeout encodes an implant command: the low byte of the
    sum of its four bytes is 0x23 ping, 0xC8 exec/upload, 0x77 uninstall
    (FuzzBunch and WannaCry use varying Timeouts with the same sums).  An
    upload is also recognised by data with 12 parameter bytes.  The
    EternalRomance trace's own SESSION_SETUP trigger (sum 0x13, 4 parameter
    bytes) is none of these and raises nothing.
``doublepulsar-reply`` (1)
    A TRANSACTION2 reply whose MID answers no outstanding Trans2 request on
    the flow but equals an unanswered Trans2 SESSION_SETUP request's MID +
    16: the implant's signature answer (the XOR key and architecture from
    the reply's signature field are in the evidence).  An ordinary request
    that carries MID 81 is answered with MID 81 and matches itself; replies
    whose request the capture lost (WannaCry's ~3,880 upload answers) raise
    nothing.  Honeypots (dionaea) answer the same way.
``smbghost-exploit`` (1)
    A compression transform (0xFC 'SMB') that cannot be valid:
    OriginalCompressedSegmentSize above 16 MiB; Offset not inside the
    compressed segment; Offset + size wrapping 32 bits; an LZNT1 size more
    than 1024x the compressed bytes; chained payload lengths past the end of
    the message.  An undefined Flags value is reported but is not an alert
    by itself.  Legitimately compressed SMB 3.1.1 traffic passes; SMBleed
    (CVE-2020-1206) style lies about the size that stay plausible are not
    detected (that would need decompression).
``wannacry-killswitch-dns`` (1)
    A DNS query over UDP 53 for a known kill-switch domain or a name under
    it (www.).  DNS over TCP is not parsed.  Repeats from the same host to
    the same resolver are folded.
``smb-worm-scan`` (2)
    One source sending connection attempts (SYN without ACK) to at least
    ``scan_threshold`` distinct destinations on 445/139 within
    ``scan_window`` seconds of capture time (default 20 in 10 s); alerted
    once per burst (again after a quiet window).  Connections whose SYN the
    capture missed are not counted.

Events
------
Alert: the contract's shape, plus ``alert.evidence`` (what matched), an
``smb`` block (version, command, mid, status; ``transform`` for SMBGhost),
``dns`` or ``scan`` blocks for those signatures; ``in_iface`` instead of
``pcap_file`` for a live capture.  ``flow``: start/end, packets and payload
bytes each way, state (closed, reset, timeout, evicted, reused, end), gaps,
resyncs, SMB versions (1, 2, 3), dialect, whether the server answered in
SMB1, commands with counts, encrypted/compressed/malformed message counts,
and the per-signature alert counts.  ``smb1-usage`` (at the end, one per
client/server/port): whether the server answered in SMB1 or the client only
offered SMB1 dialects, the dialect, NativeOS/NativeLanMan of both sides,
flows, messages, first/last seen.  ``stats``: the summary (alerts by
signature, top sources, SMBv1 speakers, packets skipped as malformed or
truncated, reassembly counters, input errors).  ``flow_id`` is a 51-bit hash
of the flow's addresses, ports and first timestamp: stable across runs.

Speed
-----
Ethernet/IPv4/TCP frames on known flows take an inlined path in
:meth:`Engine.batch`; everything else goes through :meth:`Engine.packet`
(both give the same events; the tests check it).  Non-SMB, non-DNS traffic
costs one header unpack.  ``jobs`` > 1 shards flows over processes for
files (see :mod:`.parallel`).  ``reassembly``, ``flows``, ``events``,
``smb1_exploits``, ``engine``, ``pcap`` and ``capture`` are compiled with
Cython at install when a C compiler is there (C types in their ``.pxd``
files, which ``cimport`` each other so that the engine's calls into the
other rooms stay C calls; the ``.py`` files stay the one source and run as
they are otherwise): :mod:`._accel` says which form runs and falls back to the
``.py`` files when ``SMBSENTRY_PURE_PYTHON`` is set or a source changed
after the build.  Figures: BENCHMARKS.md.
"""

from . import _accel

_accel.install()
