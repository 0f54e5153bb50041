"""Tests for the traffic detector (smbsentry.detect: reassembly, engine, CLI).

Corpus captures are read in place (tests/corpus.py; skipped when absent).
Facts they rely on were checked with tshark: frame numbers are Wireshark's.
The synthetic traces under tests/data/traces come from scripts/make_traces.py
(documentation addresses only); further flows are built in memory with the
same helpers.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import random
import struct
import tracemalloc
from pathlib import Path

import pytest
from corpus import corpus_dir, corpus_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smbsentry.detect.capture import CaptureReader, open_capture, read_capture
from smbsentry.detect.cli import main_detect
from smbsentry.detect.dns import killswitch_domain, parse_question
from smbsentry.detect.engine import Config, Engine
from smbsentry.detect.live import LiveCaptureError, _classify
from smbsentry.detect.reassembly import Framer, TcpStream
from smbsentry.detect.signatures import SIGNATURES
from smbsentry.detect.smbghost import compression_problem
from smbsentry.detect.smbmsg import session_setup_strings, smb1_dialects

REPO = Path(__file__).resolve().parents[1]
TRACES = REPO / "tests" / "data" / "traces"
needs_corpus = pytest.mark.skipif(
    corpus_dir() is None,
    reason="capture corpus not found (../shared/corpus beside the repository, or SMBSENTRY_CORPUS)",
)

_spec = importlib.util.spec_from_file_location("make_traces", REPO / "scripts" / "make_traces.py")
mt = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(mt)

EXPLOIT_SIGNATURES = {
    "eternalblue",
    "eternalromance",
    "eternalchampion",
    "doublepulsar-ping",
    "doublepulsar-reply",
    "doublepulsar-upload",
    "doublepulsar-uninstall",
    "smbghost-exploit",
}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def detect(source, config: Config | None = None, label: str = "x.pcap", per_packet: bool = False):
    """All events for a capture path, bytes or record list (batched unless per_packet)."""
    events: list[dict] = []
    engine = Engine(events.append, config)
    if isinstance(source, (bytes, bytearray)):
        records = list(CaptureReader(io.BytesIO(bytes(source))))
    elif isinstance(source, list):
        records = source
    else:
        records = list(read_capture(source))
    if per_packet:
        engine.begin_source(label)
        for rec in records:
            engine.packet(*rec)
    else:
        engine.run(records, label)
    engine.end_source()
    stats = engine.finish()
    return events, stats


def alerts(events):
    return [e for e in events if e["event_type"] == "alert"]


def brief(events):
    """(signature, frame, src, sport, dst, dport) of each alert, in emission order."""
    return [
        (e["alert"]["signature_id"], e["frame"], e["src_ip"], e["src_port"], e["dest_ip"], e["dest_port"])
        for e in alerts(events)
    ]


def sigs(events):
    return {e["alert"]["signature_id"] for e in alerts(events)}


def flow_of(events, alert):
    for e in events:
        if e["event_type"] == "flow" and e["flow_id"] == alert["flow_id"]:
            return e
    return None


# --------------------------------------------------------------------------
# corpus: every exploit trace raises its alerts, with frames and flows
# --------------------------------------------------------------------------
EB = "192.168.198.204", "192.168.198.203"

EXPECTED = {
    "eternalblue-success-unpatched-win7.pcap": [
        ("doublepulsar-ping", 12, EB[0], 51112, EB[1], 445),
        ("eternalblue", 14, EB[0], 51112, EB[1], 445),
        ("doublepulsar-ping", 270, EB[0], 51133, EB[1], 445),
        ("eternalblue", 272, EB[0], 51133, EB[1], 445),
        # the knock that gets the implant's answer: MID 66 -> MID 82 (frames 565/566)
        ("doublepulsar-reply", 566, EB[1], 445, EB[0], 51133),
    ],
    "doublepulsar-backdoor-connect-win7.pcap": [
        ("doublepulsar-ping", 86, EB[0], 50975, EB[1], 445),
        ("doublepulsar-reply", 87, EB[1], 445, EB[0], 50975),
    ],
    "eternalromance-success-2008r2.pcap": [
        ("eternalromance", 160, "10.99.99.8", 51661, "172.23.33.10", 445),
    ],
    "claroty-smbghost-dos.pcapng": [
        ("smbghost-exploit", 10, "192.168.56.1", 61279, "192.168.56.100", 445),
    ],
}


@needs_corpus
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exploit_trace_alerts_with_frames_and_flows(name):
    events, stats = detect(corpus_path(name), label=name)
    assert brief(events) == EXPECTED[name]
    for a in alerts(events):
        assert a["pcap_file"] == name
        assert a["proto"] == "TCP"
        assert a["timestamp"].endswith("Z") and a["timestamp"][10] == "T"
        sig = SIGNATURES[a["alert"]["signature_id"]]
        assert a["alert"]["signature"] == sig.signature
        assert a["alert"]["category"] == sig.category
        assert a["alert"]["severity"] == sig.severity
        flow = flow_of(events, a)
        assert flow is not None, "every alert names a flow that has a flow event"
        ends = {(flow["src_ip"], flow["src_port"]), (flow["dest_ip"], flow["dest_port"])}
        assert ends == {(a["src_ip"], a["src_port"]), (a["dest_ip"], a["dest_port"])}
        assert a["alert"]["signature_id"] in flow["alerts"]
    assert stats["alerts"] == len(EXPECTED[name])


@needs_corpus
def test_doublepulsar_reply_names_mid_status_and_key():
    events, _ = detect(corpus_path("doublepulsar-backdoor-connect-win7.pcap"))
    ping, reply = alerts(events)
    assert ping["smb"] == {"version": 1, "command": "TRANSACTION2", "mid": 65, "status": "0x00000000"}
    assert reply["smb"] == {"version": 1, "command": "TRANSACTION2", "mid": 81, "status": "0xc0000002"}
    assert ping["flow_id"] == reply["flow_id"]
    assert "MID 65 answered with MID 81" in reply["alert"]["evidence"]
    assert "XOR key 0x" in reply["alert"]["evidence"]


@needs_corpus
def test_eternalblue_marks_are_counted_in_the_flow_event():
    events, stats = detect(corpus_path("eternalblue-success-unpatched-win7.pcap"))
    exploit = [a for a in alerts(events) if a["alert"]["signature_id"] == "eternalblue"][0]
    assert "NT_TRANSACT" in exploit["alert"]["evidence"] and "66512" in exploit["alert"]["evidence"]
    flow = flow_of(events, exploit)
    # the NT_TRANSACT, then every TRANSACTION2_SECONDARY that continues it: one alert, all counted
    assert flow["alerts"]["eternalblue"] > 10
    assert flow["smb"]["versions"] == [1]
    assert flow["smb"]["commands"]["TRANSACTION2_SECONDARY"] >= 14
    assert stats["alerts_suppressed"] > 0


@needs_corpus
def test_wannacry_alerts():
    events, stats = detect(corpus_path("wannacry.pcap"))
    assert stats["alerts_by_signature"] == {
        "doublepulsar-ping": 26,
        "doublepulsar-reply": 9,
        "doublepulsar-upload": 2,
        "eternalblue": 13,
        "ms17-010-probe": 6,
        "ms17-010-vulnerable-reply": 5,
    }
    by = {}
    for a in alerts(events):
        by.setdefault(a["alert"]["signature_id"], []).append((a["frame"], a["src_ip"], a["src_port"]))
    net = "192.168.116."
    # hosts .138/.143/.172 (and later .149, once infected peers probe it) answer 0xC0000205
    assert by["ms17-010-vulnerable-reply"] == [
        (207, net + "138", 445),
        (215, net + "143", 445),
        (249, net + "172", 445),
        (2132, net + "149", 445),
        (2182, net + "172", 445),
    ]
    assert [f for f, _s, _p in by["ms17-010-probe"]] == [206, 214, 248, 2123, 2131, 2181]
    assert [(f, s) for f, s, _p in by["eternalblue"]] == [
        (256, net + "149"), (278, net + "149"), (341, net + "149"), (394, net + "149"),
        (490, net + "149"), (586, net + "149"), (634, net + "149"), (695, net + "149"),
        (2054, net + "149"), (2144, net + "149"), (2228, net + "138"), (2269, net + "138"),
        (2320, net + "138"),
    ]  # fmt: skip
    assert [f for f, _s, _p in by["doublepulsar-reply"]] == [688, 738, 746, 2313, 2344, 2352, 2360, 3669, 3677]
    # the two exec/upload requests the capture kept (the rest of the ~3,880 were lost);
    # the MID 82 answers to lost requests must not count as implant replies
    assert by["doublepulsar-upload"] == [(3654, net + "138", 1605), (4971, net + "149", 52414)]
    assert stats["reassembly"]["gaps"] == 64  # tshark: 64 "previous segment not captured"
    for a in alerts(events):
        if a["alert"]["signature_id"] == "ms17-010-vulnerable-reply":
            assert a["smb"]["status"] == "0xc0000205" and a["smb"]["command"] == "TRANSACTION"


BENIGN = [
    "arkime-smb-on-windows10.pcap",
    "arkime-smbclient-samba363.pcap",
    "claroty-smb311-legit-compressed-data.pcap",
    "claroty-win10-negotiate-compression.pcap",
    "claroty-win7-negotiate-smb21.pcap",
    "zeek-cifs-negotiate-lanman.pcap",
    "zeek-smb1-transaction-request.pcap",
    "zeek-smb1-transaction2-request.pcap",
    "zeek-smb2-compound.pcap",
    "zeek-smb3-negotiate-context.pcap",
    "zeek-smb3-ws2016.pcap",
    "zeek-smb311.pcap",
    "zeek-smbghost-scan-ws2019.pcap",
]


@needs_corpus
@pytest.mark.parametrize("name", BENIGN)
def test_benign_trace_raises_no_alert(name):
    events, stats = detect(corpus_path(name))
    assert alerts(events) == []
    assert stats["skipped"]["malformed_packets"] == 0
    assert stats["skipped"]["malformed_smb_messages"] == 0
    assert stats["reassembly"]["desyncs"] == 0


@needs_corpus
def test_eternalromance_ordinary_mid_81_to_83_raise_no_doublepulsar():
    events, _ = detect(corpus_path("eternalromance-success-2008r2.pcap"))
    assert sigs(events) == {"eternalromance"}
    flow = flow_of(events, alerts(events)[0])
    assert flow["smb"]["commands"]["TRANSACTION"] > 50  # MIDs 64..128 among them


@needs_corpus
def test_legit_compressed_reads_are_seen_but_not_flagged():
    events, _ = detect(corpus_path("claroty-smb311-legit-compressed-data.pcap"))
    flows = [e for e in events if e["event_type"] == "flow"]
    assert sum(f["smb"]["compressed_messages"] for f in flows) == 3
    assert alerts(events) == []


@needs_corpus
def test_smb1_usage_events():
    events, stats = detect(corpus_path("eternalblue-success-unpatched-win7.pcap"))
    usage = [e for e in events if e["event_type"] == "smb1-usage"]
    assert len(usage) == 1
    u = usage[0]["smb1"]
    assert (u["client"], u["server"], u["server_port"]) == (EB[0], EB[1], 445)
    assert u["spoken"] is True
    assert u["dialect"] == "NT LM 0.12"
    assert u["server_native_os"] == "Windows 7 Enterprise 7601 Service Pack 1"
    assert u["flows"] == 6  # 51112, 51113, 51127, 51133, 51134, 51153 (the grooming flows send no SMB1)
    assert stats["smb1_speakers"][0]["server"] == EB[1]
    # a multi-protocol negotiate answered in SMB2 is not SMBv1 use
    events, stats = detect(corpus_path("zeek-smb3-negotiate-context.pcap"))
    assert [e for e in events if e["event_type"] == "smb1-usage"] == []
    # Windows 8.1 answering the client's SMB1-only second negotiate with NT LM 0.12 is
    events, _ = detect(corpus_path("arkime-smb-on-windows10.pcap"))
    (u,) = [e["smb1"] for e in events if e["event_type"] == "smb1-usage"]
    assert (u["server"], u["dialect"], u["server_native_os"]) == ("192.168.199.1", "NT LM 0.12", "Windows 8.1 9600")


@needs_corpus
def test_flow_events_describe_smb2_and_smb3_flows():
    events, _ = detect(corpus_path("zeek-smb311.pcap"))
    flows = [e for e in events if e["event_type"] == "flow"]
    assert flows and all(f["proto"] == "TCP" and f["dest_port"] == 445 for f in flows)
    f = max(flows, key=lambda f: f["smb"]["messages"])
    assert f["smb"]["versions"] == [2, 3]
    assert f["smb"]["dialect"] == "3.1.1"
    assert f["smb"]["commands"]["NEGOTIATE"] >= 2
    assert f["flow"]["pkts_toserver"] > 0 and f["flow"]["bytes_toclient"] > 0


@needs_corpus
@pytest.mark.parametrize(
    "name", ["wannacry.pcap", "eternalblue-success-unpatched-win7.pcap", "arkime-smb-on-windows10.pcap",
             "claroty-smbghost-dos.pcapng", "eternalromance-success-2008r2.pcap"]
)  # fmt: skip
def test_batch_fast_path_equals_packet_by_packet(name):
    fast, s1 = detect(corpus_path(name))
    slow, s2 = detect(corpus_path(name), per_packet=True)
    assert fast == slow
    assert s1 == s2
    # and with housekeeping at every chance (a sparse capture's timing)
    fast, s1 = detect(corpus_path(name), Config(closed_linger=0.0))
    slow, s2 = detect(corpus_path(name), Config(closed_linger=0.0), per_packet=True)
    assert fast == slow and s1 == s2


# --------------------------------------------------------------------------
# synthetic traces (scripts/make_traces.py)
# --------------------------------------------------------------------------
def test_generated_traces_are_up_to_date():
    assert mt.main(["--check", "--out", str(TRACES)]) == 0
    for p in TRACES.iterdir():
        assert p.stat().st_size < 50_000


def test_sweep_raises_smb_worm_scan_once():
    events, stats = detect(TRACES / "smb-sweep-445.pcap")
    (a,) = alerts(events)
    assert a["alert"]["signature_id"] == "smb-worm-scan"
    assert (a["frame"], a["src_ip"], a["dest_ip"], a["dest_port"]) == (40, "198.51.100.7", "192.0.2.20", 445)
    assert a["scan"] == {"distinct_destinations": 20, "window_s": 10.0, "threshold": 20}
    assert "smb" not in a
    assert stats["flows"] == 50


def test_scan_thresholds_are_configurable():
    events, _ = detect(TRACES / "smb-sweep-445.pcap", Config(scan_threshold=50, scan_window=10))
    assert [a["frame"] for a in alerts(events)] == [103]  # the SYN to 192.0.2.50
    events, _ = detect(TRACES / "smb-sweep-445.pcap", Config(scan_threshold=51))
    assert alerts(events) == []
    # 50 destinations over 4.9 s: a 1 s window never holds 20
    events, _ = detect(TRACES / "smb-sweep-445.pcap", Config(scan_threshold=20, scan_window=1.0))
    assert alerts(events) == []


def test_slow_sweep_does_not_alert_and_bursts_realert():
    recs = []
    t = mt.T0
    for i in range(1, 60):  # one new destination every 0.6 s: at most 17 per 10 s
        recs.append((t + i * 0.6, mt.tcp_packet(mt.SCANNER, 40000 + i, f"192.0.2.{i}", 445, i, 0, mt.SYN)))
    events, _ = detect(mt.pcap(recs))
    assert alerts(events) == []
    burst = [(mt.T0 + j * 0.01, mt.tcp_packet(mt.SCANNER, 41000 + j, f"192.0.2.{100 + j}", 139, j, 0, mt.SYN))
             for j in range(25)]  # fmt: skip
    later = [(mt.T0 + 100 + j * 0.01, mt.tcp_packet(mt.SCANNER, 42000 + j, f"192.0.2.{150 + j}", 445, j, 0, mt.SYN))
             for j in range(25)]  # fmt: skip
    events, _ = detect(mt.pcap(burst + later))
    assert [a["frame"] for a in alerts(events)] == [20, 45]


def test_killswitch_dns_query_alerts_once():
    events, _ = detect(TRACES / "wannacry-killswitch-dns.pcap")
    (a,) = alerts(events)
    assert a["alert"]["signature_id"] == "wannacry-killswitch-dns"
    assert (a["frame"], a["proto"], a["src_ip"], a["dest_port"]) == (3, "UDP", "203.0.113.50", 53)
    assert a["dns"]["query"] == mt.KILLSWITCH
    assert a["dns"]["killswitch_domain"] == "iuqerfsodp9ifjaposdfjhgosurijfaewrwergwea.com"


def test_killswitch_domains():
    assert killswitch_domain("iuqerfsodp9ifjaposdfjhgosurijfaewrwergwea.com")
    assert killswitch_domain("www.ifferfsodp9ifjaposdfjhgosurijfaewrwergwea.com")
    assert killswitch_domain("ayylmaotjhsstasdfasdfasdfasdfasdfasdfasdf.com")
    assert killswitch_domain("xiuqerfsodp9ifjaposdfjhgosurijfaewrwergwea.com") is None
    assert killswitch_domain("example.com") is None
    q = mt.dns_query("WWW.IUQERFSODP9IFJAPOSDFJHGOSURIJFAEWRWERGWEA.COM", 7)
    assert parse_question(q) == (False, "www.iuqerfsodp9ifjaposdfjhgosurijfaewrwergwea.com", 1)


def test_eternalchampion_pattern():
    events, _ = detect(TRACES / "eternalchampion-pattern.pcap")
    (a,) = alerts(events)
    assert a["alert"]["signature_id"] == "eternalchampion"
    assert (a["frame"], a["src_ip"], a["dest_port"]) == (10, "203.0.113.10", 445)
    assert a["smb"]["command"] == "NT_TRANSACT_SECONDARY" and a["smb"]["mid"] == 70


# --------------------------------------------------------------------------
# DoublePulsar MID matching, in memory
# --------------------------------------------------------------------------
def _ping(mid, timeout=0x00A4D9A6):
    return mt.transaction(0x32, (0x000E,), b"\0" * 12, timeout=timeout, mid=mid, max_param=1, max_data=0)


def _trans2_reply(mid, status=0xC0000002):
    return mt.smb1(0x32, mid=mid, reply=True, status=status)


def smb1_flow(exchanges, cport=49500):
    """A capture: handshake, SMB1 session, then (direction, message) pairs, one segment each."""
    tcp = mt.Tcp(mt.CLIENT, cport, mt.SERVER, 445)
    frames = tcp.handshake() + mt.smb1_session(tcp)
    for d, msg in exchanges:
        frames += tcp.send(d, mt.nbss(msg))
    frames += tcp.close()
    return mt.pcap(mt.timed(frames, mt.T0))


def test_implant_reply_is_request_mid_plus_16():
    events, _ = detect(smb1_flow([(0, _ping(65)), (1, _trans2_reply(81))]))
    assert [(s, f) for s, f, *_ in brief(events)] == [("doublepulsar-ping", 10), ("doublepulsar-reply", 11)]
    events, _ = detect(smb1_flow([(0, _ping(1000)), (1, _trans2_reply(1016))]))
    assert sigs(events) == {"doublepulsar-ping", "doublepulsar-reply"}


def test_clean_host_keeps_the_mid():
    events, _ = detect(smb1_flow([(0, _ping(65)), (1, _trans2_reply(65))]))
    assert sigs(events) == {"doublepulsar-ping"}


def test_ordinary_request_with_mid_81_does_not_alert():
    query_path = mt.transaction(0x32, (0x0005,), b"\x01\x01" + b"\0" * 4 + b"a\0", mid=81)
    events, _ = detect(
        smb1_flow([(0, _ping(65)), (0, query_path), (1, _trans2_reply(81, status=0)), (1, _trans2_reply(65))])
    )
    assert sigs(events) == {"doublepulsar-ping"}
    # a Trans2 SESSION_SETUP that carries MID 81 itself, answered with MID 81
    events, _ = detect(smb1_flow([(0, _ping(81)), (1, _trans2_reply(81))]))
    assert "doublepulsar-reply" not in sigs(events)
    # a MID 81 reply with no MID 65 request outstanding (the request was lost)
    events, _ = detect(smb1_flow([(1, _trans2_reply(81))]))
    assert alerts(events) == []
    # a TRANSACTION (not TRANSACTION2) reply with the shifted MID
    events, _ = detect(smb1_flow([(0, _ping(65)), (1, mt.smb1(0x25, mid=81, reply=True))]))
    assert sigs(events) == {"doublepulsar-ping"}


def test_trans2_session_setup_without_implant_encoding_is_not_a_ping():
    events, _ = detect(smb1_flow([(0, _ping(65, timeout=0x0000_0013)), (1, _trans2_reply(65))]))
    assert alerts(events) == []


def test_doublepulsar_upload_and_uninstall():
    upload = mt.transaction(0x32, (0x000E,), b"\0" * 12, b"\x90" * 4096, timeout=0x001A8925, mid=66)
    events, _ = detect(smb1_flow([(0, upload), (1, _trans2_reply(82))]))
    assert [s for s, *_ in brief(events)] == ["doublepulsar-upload", "doublepulsar-reply"]
    kill = mt.transaction(0x32, (0x000E,), b"\0" * 12, timeout=0x00000077, mid=67)
    events, _ = detect(smb1_flow([(0, kill)]))
    assert sigs(events) == {"doublepulsar-uninstall"}


def test_ms17_010_probe_and_patched_answer():
    probe = mt.transaction(0x25, (0x0023, 0x0000), name=b"\\PIPE\\\0", mid=72)
    events, _ = detect(smb1_flow([(0, probe), (1, mt.smb1(0x25, mid=72, reply=True, status=0xC0000205))]))
    assert [(s, f) for s, f, *_ in brief(events)] == [("ms17-010-probe", 10), ("ms17-010-vulnerable-reply", 11)]
    events, _ = detect(smb1_flow([(0, probe), (1, mt.smb1(0x25, mid=72, reply=True, status=0xC0000008))]))
    assert sigs(events) == {"ms17-010-probe"}
    other_fid = mt.transaction(0x25, (0x0023, 0x4000), name=b"\\PIPE\\\0", mid=72)
    events, _ = detect(smb1_flow([(0, other_fid), (1, mt.smb1(0x25, mid=72, reply=True, status=0xC0000205))]))
    assert alerts(events) == []


def test_eternalromance_write_into_open_transaction_only():
    opened = mt.transaction(0x25, (0x0026, 0x4000), total_data=4096, mid=90, name=b"\\PIPE\\\0")
    write = mt.smb1(0x2F, b"\0" * 24, b"x" * 16, mid=90)
    interim = mt.smb1(0x25, mid=90, reply=True)
    events, _ = detect(smb1_flow([(0, opened), (1, interim), (0, write)]))
    assert [s for s, *_ in brief(events)] == ["eternalromance"]
    # the same WRITE_ANDX after the transaction was complete and answered: ordinary
    done = mt.transaction(0x25, (0x0026, 0x4000), b"", b"y" * 8, mid=90, name=b"\\PIPE\\\0")
    final = mt.smb1(0x25, b"\0" * 20, b"", mid=90, reply=True)
    events, _ = detect(smb1_flow([(0, done), (1, final), (0, write)]))
    assert alerts(events) == []


# --------------------------------------------------------------------------
# SMBGhost: transform header checks
# --------------------------------------------------------------------------
def transform(original, algorithm, flags, offset, body):
    return b"\xfcSMB" + struct.pack("<IHHI", original, algorithm, flags, offset) + body


def test_compression_problem_rules():
    body = b"\0" * 64
    assert compression_problem(transform(4096, 1, 0, 0, body), 80) is None
    assert compression_problem(transform(4096, 2, 0, 16, body), 80) is None
    assert "Offset" in compression_problem(transform(4096, 1, 0, 0xFFFFFFFF, body), 80)
    assert "Offset" in compression_problem(transform(4096, 1, 0, 64, body), 80)  # no compressed byte left
    assert "beyond any SMB message" in compression_problem(transform(0xFFFFFFFF, 1, 0, 0, body), 80)
    assert "LZNT1" in compression_problem(transform(0x00F00000, 1, 0, 0, body), 80)
    assert compression_problem(transform(0x00F00000, 4, 0, 0, body), 80) is None  # Pattern_V1 may
    assert "undefined" in compression_problem(transform(436, 1, 0xFFFF, 0xFFFFFFFF, body), 454)
    # chained (Flags 1): payload headers must stay inside the message
    ok = struct.pack("<HHI", 0, 1, 8) + b"\0" * 8 + struct.pack("<HHII", 1, 0, 8, 100) + b"\0" * 4
    assert compression_problem(b"\xfcSMB" + struct.pack("<I", 200) + ok, 8 + len(ok)) is None
    bad = struct.pack("<HHI", 1, 1, 0x7FFFFFFF) + b"\0" * 8
    assert "runs past" in compression_problem(b"\xfcSMB" + struct.pack("<I", 200) + bad, 8 + len(bad))
    assert compression_problem(b"\xfcSMB\0\0", 6) is None  # too short: malformed, not an exploit


def test_smbghost_alert_from_a_flow():
    tcp = mt.Tcp(mt.CLIENT, 50123, mt.SERVER, 445)
    msg = transform(0x1B4, 1, 0, 0xFFFFFFFF, b"\xfeSMB" + b"\0" * 200)
    frames = tcp.handshake() + tcp.send(0, mt.nbss(msg)) + tcp.close()
    events, _ = detect(mt.pcap(mt.timed(frames, mt.T0)))
    (a,) = alerts(events)
    assert a["alert"]["signature_id"] == "smbghost-exploit"
    assert a["smb"]["transform"]["offset"] == 0xFFFFFFFF
    assert a["smb"]["transform"]["algorithm"] == "LZNT1"


# --------------------------------------------------------------------------
# reassembly unit tests
# --------------------------------------------------------------------------
def deliver(stream: TcpStream, segments):
    out = []
    for seq, data in segments:
        out += stream.add(seq, data)
    return out


def joined(chunks):
    assert None not in chunks
    return b"".join(chunks)


def test_stream_in_order_out_of_order_retransmission_overlap():
    data = bytes(range(256)) * 4
    s = TcpStream()
    s.syn(999)
    segs = [(1000 + i, data[i : i + 100]) for i in range(0, len(data), 100)]
    order = [segs[0], segs[2], segs[1], segs[1], segs[4], segs[3]] + segs[5:]
    assert joined(deliver(s, order)) == data
    assert s.dup_bytes == 100
    # overlap: a retransmission that extends past the delivered end
    s = TcpStream()
    s.syn(0)
    out = deliver(s, [(1, data[:150]), (51, data[50:300]), (1, data[:10]), (301, data[300:])])
    assert joined(out) == data
    assert s.overlap_bytes == 100


def test_stream_overlapping_out_of_order_segments():
    data = bytes(random.Random(1).randrange(256) for _ in range(3000))
    s = TcpStream()
    s.syn(41)
    segs = [(42 + a, data[a:b]) for a, b in ((0, 500), (900, 1600), (400, 1000), (1500, 3000), (450, 950))]
    assert joined(deliver(s, segs)) == data


def test_stream_sequence_wraps():
    data = b"abcdefghij" * 50
    s = TcpStream()
    isn = 0xFFFFFFFF - 200
    s.syn(isn)
    segs = [((isn + 1 + i) & 0xFFFFFFFF, data[i : i + 64]) for i in range(0, len(data), 64)]
    assert joined(deliver(s, [segs[1], segs[0]] + segs[2:])) == data
    assert s.next_seq == (isn + 1 + len(data)) & 0xFFFFFFFF


def test_stream_gap_declared_by_cap_ack_and_flush():
    s = TcpStream(max_ooo_bytes=1000)
    s.syn(0)
    assert s.add(1, b"a" * 10) == [b"a" * 10]
    assert s.add(111, b"b" * 600) == ()  # hole 11..110
    out = s.add(711, b"c" * 600)  # over the cap: the hole is lost
    assert out == [None, b"b" * 600, b"c" * 600] and s.gaps == 1 and s.gap_bytes == 100
    # the peer acknowledged beyond the hole: lost by the capture, once the hole has
    # persisted a little (0.2 s of capture time or 4 more events) ...
    s = TcpStream()
    s.syn(0)
    s.add(1, b"x", now=10.0)
    assert s.add(50, b"y" * 5, now=10.0) == ()
    assert s.ack_seen(40, now=11.0) == []  # the ack ends inside the hole: keep waiting
    assert s.ack_seen(60, now=10.01) == []  # acknowledged, but maybe just reordered
    assert s.ack_seen(60, now=10.5) == [None, b"y" * 5]
    s = TcpStream()
    s.syn(0)
    s.add(1, b"x")
    s.add(50, b"y")
    assert [s.ack_seen(60) for _ in range(4)] == [[], [], [], [None, b"y"]]
    # ... or at once when it is wide (the receiver got megabytes the capture missed)
    s = TcpStream()
    s.syn(0)
    s.add(1, b"x")
    s.peer_ack = 200_001
    assert s.add(200_000, b"z") == [None, b"z"]
    # an ACK captured just before the (GRO-merged) data it acknowledges: no gap
    s = TcpStream()
    s.syn(0)
    s.add(1, b"x")
    s.peer_ack = 3001
    assert s.add(2001, b"b" * 1000, now=1.0) == ()
    assert s.add(2, b"a" * 1999, now=1.0) == [b"a" * 1999, b"b" * 1000]
    assert s.gaps == 0
    # flush at the end of the flow
    s = TcpStream()
    s.syn(0)
    s.add(20, b"late")
    assert s.flush() == [None, b"late"]


def test_stream_snap_cut_segment_is_a_gap():
    s = TcpStream()
    s.syn(0)
    assert s.add(1, b"abc", missing=97) == [b"abc", None]
    assert s.add(101, b"next") == [b"next"]


def test_stream_cut_segment_beyond_a_hole_with_no_bytes():
    s = TcpStream()
    s.syn(0)
    s.add(1, b"x")
    s.peer_ack = 10_000
    assert s.add(500, b"", missing=100, now=5.0) == ()  # nothing captured, nothing to wait for
    assert s.ack_seen(20_000, now=9.0) == []
    assert s.flush() == []


def test_stream_far_jump_restarts():
    s = TcpStream()
    s.syn(0)
    s.add(1, b"a")
    assert s.add(50_000_000, b"far") == [None, b"far"]


def nb(msg):
    return struct.pack(">I", len(msg)) + msg


SMB1_MSG = mt.smb1(0x2B, struct.pack("<H", 1), b"ping", mid=5)
SMB2_MSG = b"\xfeSMB" + struct.pack("<HH", 64, 0) + b"\0" * 56 + b"body"


def test_framer_split_at_every_byte():
    stream = nb(SMB1_MSG) + nb(SMB2_MSG) + b"\x85\x00\x00\x00" + nb(SMB1_MSG)
    for cut in range(1, len(stream)):
        f = Framer()
        got = f.feed(stream[:cut]) + f.feed(stream[cut:])
        assert got == [(SMB1_MSG, len(SMB1_MSG)), (SMB2_MSG, len(SMB2_MSG)), (SMB1_MSG, len(SMB1_MSG))], cut
        assert f.control == 1 and f.desyncs == 0
    f = Framer()
    got = []
    for i in range(len(stream)):  # one byte at a time
        got += f.feed(stream[i : i + 1])
    assert [m for m, _ in got] == [SMB1_MSG, SMB2_MSG, SMB1_MSG]


def test_framer_session_request_and_response_on_139():
    req = b"\x81\x00\x00\x44" + b"\x20" + b"C" * 32 + b"\0" + b"\x20" + b"D" * 32 + b"\0"
    f = Framer()
    assert f.feed(req + b"\x82\x00\x00\x00" + nb(SMB1_MSG)) == [(SMB1_MSG, len(SMB1_MSG))]
    assert f.control == 2


def test_framer_long_message_keeps_only_its_head():
    big = b"\xfeSMB" + b"\0" * 60 + b"D" * 100_000
    f = Framer(head_max=1024)
    out = []
    data = nb(big) + nb(SMB1_MSG)
    for i in range(0, len(data), 1460):
        out += f.feed(data[i : i + 1460])
        assert len(f.buf) <= 1024 + 1460
    assert out == [(big[:1024], len(big)), (SMB1_MSG, len(SMB1_MSG))]


def test_framer_resyncs_after_gap_and_garbage():
    f = Framer()
    assert f.feed(nb(SMB1_MSG)[:20]) == []
    f.gap()  # the rest of that message was lost
    assert f.feed(b"tail of a lost message" + nb(SMB1_MSG)) == [(SMB1_MSG, len(SMB1_MSG))]
    f = Framer()
    assert f.feed(b"\x00\x00\x00\x10GARBAGEGARBAGE!!" + nb(SMB2_MSG)) == [(SMB2_MSG, len(SMB2_MSG))]
    assert f.desyncs == 1
    f = Framer(synced=False)  # picked up mid-stream
    assert f.feed(b"\x12\x34" + nb(SMB1_MSG)) == [(SMB1_MSG, len(SMB1_MSG))]


def resegment(path, seed):
    """The capture with every SMB payload cut into 1-4 random pieces, sent in random order,
    some twice, some overlapping; request/answer order is kept."""
    rng = random.Random(seed)
    records = []
    for _frame, ts, lt, data, _wl in read_capture(path):
        ip = data[14:]
        if lt != 1 or data[12:14] != b"\x08\x00" or ip[9] != 6:
            records.append((ts, data))
            continue
        ihl = (ip[0] & 15) * 4
        tcp = ip[ihl:]
        sport, dport, seq, ack, off, flags = struct.unpack("!HHIIBB", tcp[:14])
        payload = tcp[(off >> 4) * 4 : struct.unpack("!H", ip[2:4])[0] - ihl]
        src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
        if not payload or 445 not in (sport, dport) or flags & 7:
            records.append((ts, data))
            continue
        cuts = sorted(rng.sample(range(1, len(payload)), min(len(payload) - 1, rng.randrange(4))))
        bounds = [0, *cuts, len(payload)]
        pieces = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
        if rng.random() < 0.3 and len(pieces) > 1:  # an overlapping retransmission
            pieces.append((pieces[0][0], pieces[1][1]))
        rng.shuffle(pieces)
        if rng.random() < 0.2:
            pieces.append(pieces[0])  # a duplicate
        for a, b in pieces:
            seg = mt.tcp_packet(src, sport, dst, dport, seq + a, ack, flags, payload[a:b])
            records.append((ts, seg))
    return mt.pcap(records)


@needs_corpus
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "name", ["doublepulsar-backdoor-connect-win7.pcap", "eternalblue-success-unpatched-win7.pcap",
             "eternalromance-success-2008r2.pcap"]
)  # fmt: skip
def test_alerts_survive_resegmentation_reordering_and_duplicates(name, seed):
    ref, _ = detect(corpus_path(name))
    got, stats = detect(resegment(corpus_path(name), seed))
    key = lambda evs: sorted((s, a, b, c, d) for s, _f, a, b, c, d in brief(evs))  # noqa: E731
    assert key(got) == key(ref)
    assert stats["reassembly"]["gaps"] == 0
    assert stats["skipped"]["malformed_smb_messages"] == 0


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
def run_cli(*args, **kw):
    out, err = io.StringIO(), io.StringIO()
    rc = main_detect(*args, stdout=out, stderr=err, **kw)
    lines = [json.loads(x) for x in out.getvalue().splitlines()] if kw.get("fmt", "jsonl") == "jsonl" else []
    return rc, lines, out.getvalue(), err.getvalue()


@needs_corpus
def test_truncated_capture_keeps_earlier_alerts(tmp_path):
    raw = corpus_path("wannacry.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    # find the end of frame 700 and cut into the middle of frame 701
    with open_capture(corpus_path("wannacry.pcap")) as r:
        pos = 24
        for frame, _ts, _lt, data, _wl in r:
            pos += 16 + len(data)
            if frame == 700:
                break
    cut.write_bytes(raw[: pos + 30])
    rc, lines, _out, err = run_cli([cut], quiet=True)
    assert rc == 2
    assert err.count("\n") == 1 and "truncated" in err and "frames before it were analysed" in err
    frames = [e["frame"] for e in lines if e["event_type"] == "alert"]
    assert frames and max(frames) <= 700
    assert 688 in frames  # the implant reply just before the cut
    stats = lines[-1]
    assert stats["event_type"] == "stats" and stats["stats"]["errors"]
    assert stats["stats"]["packets"] == 700


@needs_corpus
def test_corrupt_block_in_pcapng_keeps_earlier_alerts(tmp_path):
    raw = bytearray(corpus_path("claroty-smbghost-dos.pcapng").read_bytes())
    events, _ = detect(corpus_path("claroty-smbghost-dos.pcapng"))
    # damage the block length of the packet block after frame 10 (frame 11)
    offs = []
    pos = 0
    while pos + 8 <= len(raw):
        btype, blen = struct.unpack_from("<II", raw, pos)
        if btype == 6:
            offs.append(pos)
        pos += blen
    struct.pack_into("<I", raw, offs[10] + 4, 0x7FFFFFF1)
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(bytes(raw))
    rc, lines, _out, err = run_cli([bad], quiet=True)
    assert rc == 2 and "corrupt" in err
    assert [e["alert"]["signature_id"] for e in lines if e["event_type"] == "alert"] == ["smbghost-exploit"]


def test_not_a_capture_missing_file_and_directory(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello, not a capture\n")
    rc, lines, _out, err = run_cli([junk, tmp_path / "missing.pcap", tmp_path, TRACES / "smb-sweep-445.pcap"],
                                   quiet=True)  # fmt: skip
    assert rc == 2
    assert len(err.strip().splitlines()) == 3
    assert "not a pcap or pcapng file" in err and "missing.pcap" in err
    assert "Traceback" not in err
    # the good file after the bad ones is still analysed
    assert [e["alert"]["signature_id"] for e in lines if e["event_type"] == "alert"] == ["smb-worm-scan"]
    assert len(lines[-1]["stats"]["errors"]) == 3


def test_gzip_capture_gives_the_same_alerts(tmp_path):
    gz = tmp_path / "sweep.pcap.gz"
    gz.write_bytes(gzip.compress((TRACES / "eternalchampion-pattern.pcap").read_bytes()))
    rc, lines, _o, _e = run_cli([gz], quiet=True)
    assert rc == 0
    ref, _ = detect(TRACES / "eternalchampion-pattern.pcap", label=str(gz))
    got = [e for e in lines if e["event_type"] == "alert"]
    assert got == alerts(ref)


@needs_corpus
def test_snaplen_cut_packets_are_counted_and_survived(tmp_path):
    records = [(ts, data) for _f, ts, _lt, data, _wl in read_capture(corpus_path("eternalblue-success-unpatched-win7.pcap"))]
    cut = mt.pcap(records, snaplen=96)
    events, stats = detect(cut)
    assert stats["skipped"]["truncated_packets"] > 100
    assert stats["reassembly"]["gaps"] > 0
    assert stats["packets"] == len(records)
    # a snap length that keeps every SMB header still finds the knocks
    events, stats = detect(mt.pcap(records, snaplen=200))
    assert "doublepulsar-ping" in sigs(events)


def test_absurd_record_length_is_a_clear_error(tmp_path):
    good = (TRACES / "wannacry-killswitch-dns.pcap").read_bytes()
    bad = tmp_path / "absurd.pcap"
    bad.write_bytes(good + struct.pack("<IIII", 1, 0, 0x7FFFFFFF, 0x7FFFFFFF) + b"\0" * 64)
    rc, lines, _o, err = run_cli([bad], quiet=True)
    assert rc == 2 and "absurd captured length" in err
    assert [e["alert"]["signature_id"] for e in lines if e["event_type"] == "alert"] == ["wannacry-killswitch-dns"]


def test_malformed_packets_are_counted_not_fatal():
    frames = [
        b"\x00" * 10,  # shorter than Ethernet
        b"\x02" * 12 + b"\x08\x00\x45" + b"\0" * 9,  # IPv4 cut short
        mt.ether(mt.ipv4_packet(mt.CLIENT, mt.SERVER, 6, b"\x01\xbd")),  # TCP header cut short
    ]
    for port, msg in ((50000, b"\x00\x00\x00\x05\xffSMB!"), (50001, mt.nbss(b"\xfeSMB" + b"\x00" * 20))):
        tcp = mt.Tcp(mt.CLIENT, port, mt.SERVER, 445)
        frames += tcp.handshake() + [tcp.segment(0, msg)]
    events, stats = detect(mt.pcap(mt.timed(frames, mt.T0)))
    assert alerts(events) == []
    assert stats["skipped"]["malformed_packets"] == 3
    assert stats["skipped"]["malformed_smb_messages"] == 2


# --------------------------------------------------------------------------
# CLI (main_detect)
# --------------------------------------------------------------------------
def test_cli_jsonl_streams_alerts_flows_and_stats():
    rc, lines, _o, err = run_cli([TRACES / "eternalchampion-pattern.pcap"])
    assert rc == 0
    types = [e["event_type"] for e in lines]
    assert types == ["alert", "flow", "smb1-usage", "stats"]
    assert lines[0]["pcap_file"] == str(TRACES / "eternalchampion-pattern.pcap")
    assert "alerts: 1 (eternalchampion 1)" in err  # human summary on stderr
    rc, lines, _o, err = run_cli([TRACES / "eternalchampion-pattern.pcap"], flows=False, quiet=True)
    assert [e["event_type"] for e in lines] == ["alert", "smb1-usage", "stats"] and err == ""


def test_cli_table_format(tmp_path):
    out = tmp_path / "t.txt"
    rc, _l, _o, _e = run_cli([TRACES / "smb-sweep-445.pcap", TRACES / "wannacry-killswitch-dns.pcap"],
                             fmt="table", out=out)  # fmt: skip
    text = out.read_text()
    assert rc == 0
    assert "smb-worm-scan" in text and "wannacry-killswitch-dns" in text
    assert "Alerts by signature" in text and "Top alert sources" in text
    assert "198.51.100.7" in text


def test_cli_usage_errors():
    for kwargs, needle in (
        ({}, "no input"),
        ({"inputs": [TRACES / "smb-sweep-445.pcap"], "interface": "lo"}, "not both"),
        ({"inputs": [TRACES / "smb-sweep-445.pcap"], "bpf": "tcp"}, "--bpf"),
        ({"inputs": [TRACES / "smb-sweep-445.pcap"], "fmt": "xml"}, "--format"),
        ({"inputs": [TRACES / "smb-sweep-445.pcap"], "fail_on": "panic"}, "--fail-on"),
        ({"inputs": [TRACES / "smb-sweep-445.pcap"], "scan_threshold": 1}, "threshold"),
        ({"inputs": [TRACES / "smb-sweep-445.pcap"], "scan_window": 0}, "window"),
    ):
        rc, _l, out, err = run_cli(**kwargs)
        assert rc == 2, kwargs
        assert needle in err and err.count("\n") == 1 and out == ""


def test_cli_fail_on():
    rc, *_ = run_cli([TRACES / "smb-sweep-445.pcap"], fail_on="high", quiet=True)
    assert rc == 0  # smb-worm-scan is severity 2 (medium)
    rc, *_ = run_cli([TRACES / "smb-sweep-445.pcap"], fail_on="medium", quiet=True)
    assert rc == 3
    rc, *_ = run_cli([TRACES / "wannacry-killswitch-dns.pcap"], fail_on="critical", quiet=True)
    assert rc == 3


def test_signature_ids_are_stable():
    assert set(SIGNATURES) == {
        "ms17-010-probe", "ms17-010-vulnerable-reply", "eternalblue", "eternalromance",
        "eternalchampion", "doublepulsar-ping", "doublepulsar-reply", "doublepulsar-upload",
        "doublepulsar-uninstall", "smbghost-exploit", "wannacry-killswitch-dns", "smb-worm-scan",
    }  # fmt: skip
    assert all(s.severity in (1, 2, 3) for s in SIGNATURES.values())


def test_live_capture_error_messages():
    e = _classify("dumpcap: You don't have permission to capture on that device", "eth0", None)
    assert e.kind == "privilege" and "needs root" in str(e) and "\n" not in str(e)
    e = _classify("tcpdump: nosuch0: No such device exists\n(SIOCGIFHWADDR: No such device)", "nosuch0", None)
    assert e.kind == "interface"
    e = _classify("dumpcap: Invalid capture filter \"tcp port x\" for interface 'lo'.\nThat string isn't a valid"
                  " capture filter (syntax error).", "lo", "tcp port x")  # fmt: skip
    assert e.kind == "filter" and isinstance(e, LiveCaptureError)


# --------------------------------------------------------------------------
# bounded memory
# --------------------------------------------------------------------------
def _many_flows(n_flows, per_flow=6):
    """Records of n_flows short SMB1 conversations (never closed: they must be evicted)."""
    frame = 0
    for i in range(n_flows):
        tcp = mt.Tcp(f"198.51.100.{i % 250 + 1}", 1024 + i % 60000, f"203.0.113.{i // 60000 + 1}", 445)
        frames = tcp.handshake()
        for _ in range(per_flow):
            frames += tcp.send(0, mt.nbss(SMB1_MSG)) + tcp.send(1, mt.nbss(SMB1_MSG))
        for f in frames:
            frame += 1
            yield (frame, mt.T0 + frame * 1e-4, 1, f, len(f))


def test_flow_table_and_memory_stay_bounded():
    def peak(n):
        engine = Engine(lambda ev: None, Config(max_flows=200, flow_events=True, scan_threshold=10**6))
        tracemalloc.start()
        try:
            engine.run(_many_flows(n), "gen")
            assert engine.nflows <= 200 + 1
            _, p = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        s = engine.finish()
        assert s["reassembly"]["flows_evicted"] >= n - 400
        return p

    small, large = peak(1500), peak(6000)
    assert large < small * 1.5 + 256 * 1024, (small, large)


# --------------------------------------------------------------------------
# fuzz: nothing but handled errors
# --------------------------------------------------------------------------
FUZZ = settings(max_examples=int(os.environ.get("SMBSENTRY_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 300)), min_size=1, max_size=40), st.randoms())
def test_fuzz_stream_delivers_the_bytes_in_order(spans, rnd):
    data = bytes(random.Random(7).randrange(256) for _ in range(5300))
    s = TcpStream(max_ooo_bytes=10**9, max_ooo_segments=10**6)
    s.syn(0xFFFFFF00)
    base = 0xFFFFFF01
    segs = [((base + a) & 0xFFFFFFFF, data[a : a + n]) for a, n in spans]
    covered = sorted(spans)
    rnd.shuffle(segs)
    out = []
    for seq, chunk in segs:
        out += s.add(seq, chunk)
    out += s.flush()
    # expected: the data from 0 up to the first uncovered byte, then gaps and pieces
    end = 0
    for a, n in covered:
        if a > end:
            break
        end = max(end, a + n)
    got = b"".join(c for c in out if c is not None)
    assert got[:end] == data[:end]
    pieces = []
    cur = b""
    for c in out:
        if c is None:
            pieces.append(cur)
            cur = b""
        else:
            cur += c
    pieces.append(cur)
    assert pieces[0] == data[: len(pieces[0])]


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=20), st.booleans())
def test_fuzz_framer_never_raises(chunks, synced):
    f = Framer(synced=synced, head_max=256)
    for c in chunks:
        for msg, length in f.feed(c):
            assert len(msg) <= min(length, 256)
            assert msg[1:4] == b"SMB"[: len(msg) - 1] or len(msg) < 4 or msg[1:4] == b"SMB"
        if c[:1] == b"!":
            f.gap()


@FUZZ
@given(st.binary(max_size=600), st.integers(0, 1 << 24))
def test_fuzz_smb_parsers_never_raise(data, length):
    compression_problem(b"\xfcSMB" + data, length)
    smb1_dialects(b"\xffSMB" + data)
    session_setup_strings(b"\xffSMB" + data, reply=True)
    session_setup_strings(b"\xffSMB" + data, reply=False)
    parse_question(data)


_SMB1_CMDS = [0x25, 0x26, 0x32, 0x33, 0x2F, 0x72, 0x73, 0xA0, 0xA1, 0x2B]


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.sampled_from([b"\xffSMB", b"\xfeSMB", b"\xfdSMB", b"\xfcSMB"]),
            st.sampled_from(_SMB1_CMDS),
            st.booleans(),
            st.binary(max_size=120),
        ),
        max_size=12,
    )
)
def test_fuzz_engine_messages_never_raise(messages):
    exchanges = []
    for to_server, magic, cmd, reply, rest in messages:
        head = magic + bytes([cmd]) + b"\0" * 4 + bytes([0x98 if reply else 0x18]) + rest
        exchanges.append((0 if to_server else 1, head))
    detect(smb1_flow(exchanges))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from([0, 1, 101, 113, 276, 228]), st.binary(max_size=120)), max_size=30))
def test_fuzz_engine_packets_never_raise(frames):
    records = [(i + 1, float(i), lt, data, len(data) + (i % 3)) for i, (lt, data) in enumerate(frames)]
    detect(records)
    detect(records, per_packet=True)


@FUZZ
@given(st.lists(st.binary(min_size=0, max_size=80), min_size=1, max_size=25), st.randoms())
def test_fuzz_tcp_payloads_on_smb_ports_never_raise(payloads, rnd):
    tcp = mt.Tcp(mt.CLIENT, 50555, mt.SERVER, 445)
    frames = tcp.handshake()
    for p in payloads:
        d = rnd.randrange(2)
        if rnd.random() < 0.2:  # out of order / old sequence numbers
            frames.append(tcp.segment(d, p, seq=tcp.seq[d] + rnd.randrange(-100, 3000)))
        else:
            frames.append(tcp.segment(d, p))
    detect(mt.pcap(mt.timed(frames, mt.T0)))


# --------------------------------------------------------------------------
# batched reading, processes, the module entry point
# --------------------------------------------------------------------------
@needs_corpus
@pytest.mark.parametrize("name", ["wannacry.pcap", "claroty-smbghost-dos.pcapng"])
@pytest.mark.parametrize("chunk", [1, 997, 1 << 20])
def test_reader_batches_equal_iteration(name, chunk, tmp_path):
    path = corpus_path(name)
    with open_capture(path, chunk_size=chunk) as r:
        batched = [rec for batch in r.batches() for rec in batch]
    assert batched == list(read_capture(path))
    gz = tmp_path / (name + ".gz")
    gz.write_bytes(gzip.compress(path.read_bytes()))
    with open_capture(gz, chunk_size=chunk) as r:
        assert [rec for batch in r.batches() for rec in batch] == batched


@needs_corpus
def test_reader_batches_then_error_on_truncation(tmp_path):
    raw = corpus_path("doublepulsar-backdoor-connect-win7.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(raw[:-10])
    got = []
    with open_capture(cut) as r, pytest.raises(Exception, match="truncated"):
        for batch in r.batches():
            got += batch
    assert len(got) == 93


def _sorted_events(lines):
    return sorted(json.dumps(e, sort_keys=True) for e in lines if e["event_type"] != "stats")


@needs_corpus
def test_jobs_give_the_same_events_and_summary(tmp_path):
    base = corpus_dir() / "pcaps"
    files = sorted(base.iterdir()) + sorted(TRACES.iterdir())
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    files.insert(3, junk)
    rc1, one, _o, err1 = run_cli(files, quiet=True)
    rc2, two, _o, err2 = run_cli(files, quiet=True, jobs=2)
    rc3, three, _o, err3 = run_cli(files, quiet=True, jobs=3)
    assert rc1 == rc2 == rc3 == 2
    assert err1 == err2 == err3 and err1.count("\n") == 1  # the bad input, reported once
    assert _sorted_events(one) == _sorted_events(two) == _sorted_events(three)
    s1, s2, s3 = one[-1]["stats"], two[-1]["stats"], three[-1]["stats"]
    assert s1 == s2 == s3
    assert s1["alerts"] == 5 + 2 + 1 + 1 + 61 + 3  # the exploit traces, WannaCry, the synthetic ones


def test_jobs_with_table_output(tmp_path):
    out = tmp_path / "t.txt"
    rc, *_ = run_cli([TRACES / "smb-sweep-445.pcap", TRACES / "eternalchampion-pattern.pcap"], fmt="table",
                     out=out, jobs=2)  # fmt: skip
    text = out.read_text()
    assert rc == 0 and "smb-worm-scan" in text and "eternalchampion" in text


def test_module_entry_point(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "o.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "smbsentry.detect", str(TRACES / "wannacry-killswitch-dns.pcap"), "-o", str(out),
         "--no-flows", "--fail-on", "high"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 3
    assert "alerts: 1 (wannacry-killswitch-dns 1)" in proc.stderr
    assert [json.loads(x)["event_type"] for x in out.read_text().splitlines()] == ["alert", "stats"]
    proc = subprocess.run([sys.executable, "-m", "smbsentry.detect", "--signatures"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and "eternalromance" in proc.stdout


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 1710), st.integers(0, 255)), max_size=12), st.integers(24, 1711))
def test_fuzz_damaged_captures_give_a_clean_status(flips, cut):
    raw = bytearray((TRACES / "eternalchampion-pattern.pcap").read_bytes())
    for pos, value in flips:
        raw[pos % len(raw)] = value
    data = bytes(raw[:cut])
    out, err = io.StringIO(), io.StringIO()
    path = Path(f"/tmp/smbsentry-fuzz-{os.getpid()}.pcap")
    path.write_bytes(data)
    try:
        rc = main_detect([path], stdout=out, stderr=err, quiet=True)
    finally:
        path.unlink()
    assert rc in (0, 2)
    assert "Traceback" not in err.getvalue()
    assert err.getvalue().count("\n") == (1 if rc == 2 else 0)
    assert json.loads(out.getvalue().splitlines()[-1])["event_type"] == "stats"


_OPS = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 2**32 - 1), st.binary(max_size=40), st.integers(0, 3000), st.floats(0, 10)),
    st.tuples(st.just("ack"), st.integers(0, 2**32 - 1), st.floats(0, 10)),
    st.tuples(st.just("syn"), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("flush")),
    st.tuples(st.just("skip")),
)


@FUZZ
@given(st.lists(_OPS, max_size=40), st.integers(1, 4096), st.integers(1, 8))
def test_fuzz_stream_api_never_raises(ops, cap_bytes, cap_segments):
    s = TcpStream(max_ooo_bytes=cap_bytes, max_ooo_segments=cap_segments)
    for op in ops:
        if op[0] == "add":
            out = s.add(op[1], op[2], op[3], op[4])
        elif op[0] == "ack":
            out = s.ack_seen(op[1], op[2])
        elif op[0] == "syn":
            s.syn(op[1])
            out = []
        elif op[0] == "flush":
            out = s.flush()
        else:
            out = s.skip_gap()
        assert all(c is None or isinstance(c, bytes) for c in out)
        assert s.ooo_bytes == sum(len(v) for v in s.ooo.values())
        assert len(s.ooo) <= cap_segments and s.ooo_bytes <= cap_bytes


# --------------------------------------------------------------------------
# session_setup_strings reads only what it needs: the protocol parser must agree
# --------------------------------------------------------------------------
def _strings_by_parser(msg: bytes, reply: bool):
    from smbsentry.protocol import smb1 as p1
    from smbsentry.protocol import smb1_replies
    from smbsentry.protocol.errors import ProtocolError

    try:
        r = p1.parse_session_setup_response(msg) if reply else smb1_replies.parse_session_setup_request(msg)
    except (ProtocolError, ValueError, struct.error, IndexError):
        return None, None
    return (r.native_os or None), (r.native_lm or None)


def _session_setups() -> list[tuple[bytes, bool]]:
    """Every SESSION_SETUP_ANDX message of the corpus and the traces (request or reply)."""
    out = []
    files = sorted(TRACES.glob("*.pcap*"))
    if corpus_dir() is not None:
        files += sorted((corpus_dir() / "pcaps").glob("*.pcap*"))
    for f in files:
        for _frame, _ts, _lt, data, _wl in read_capture(str(f)):
            i = data.find(b"\xffSMB\x73")
            if i >= 4:
                out.append((bytes(data[i:]), bool(data[i + 9] & 0x80)))
    return out


def test_session_setup_strings_match_the_protocol_parser_on_real_messages():
    # The shipped traces hold two session setups without NativeOS strings: the
    # real messages this test is about are the corpus's.
    corpus_path("eternalblue-success-unpatched-win7.pcap")  # skips, with the reason, without the corpus
    msgs = _session_setups()
    assert len(msgs) >= 20
    found = 0
    for msg, reply in msgs:
        got = session_setup_strings(msg, reply)
        assert got == _strings_by_parser(msg, reply), msg[:48].hex()
        found += got[0] is not None
    assert found >= 10  # NativeOS strings were read, not just agreed on as None


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_session_setup_strings_match_the_protocol_parser_on_damaged_messages(data):
    msgs = _SESSION_SETUPS or _SESSION_SETUPS.extend(_session_setups()) or _SESSION_SETUPS
    msg, reply = data.draw(st.sampled_from(msgs))
    m = bytearray(msg)
    for _ in range(data.draw(st.integers(0, 4))):
        if not m:
            break
        i = data.draw(st.integers(0, len(m) - 1))
        m[i] = data.draw(st.integers(0, 255))
    m = m[: data.draw(st.integers(0, len(m)))]
    if len(m) >= 12 and data.draw(st.booleans()):
        m[11] = data.draw(st.sampled_from([0x00, 0x80, 0xC8]))  # Flags2 high byte: Unicode on or off
    reply = data.draw(st.sampled_from([reply, not reply]))
    assert session_setup_strings(bytes(m), reply) == _strings_by_parser(bytes(m), reply)


_SESSION_SETUPS: list[tuple[bytes, bool]] = []


def test_the_event_encoder_writes_what_json_dumps_writes():
    from smbsentry.detect.output import json_encoder

    encode = json_encoder()
    events, stats = detect(str(TRACES / "eternalchampion-pattern.pcap"))
    events = [*events, {"timestamp": "t", "event_type": "stats", "stats": stats},
        {"a": [1, 2.5, None, True, False], "b": {"ü": "<script>\u2028\x00\"\\"}, "c": float("inf"), "d": -0.0, "e": 10**30},
    ]
    for ev in events:
        assert encode(ev) == json.dumps(ev, ensure_ascii=False, separators=(", ", ": "))
    with pytest.raises(TypeError):
        encode({"x": object()})


def test_packet_takes_bytes_like_data():
    """Engine.packet accepts bytearray and memoryview frames (the compiled form converts them)."""
    records = list(read_capture(str(TRACES / "eternalchampion-pattern.pcap")))
    want, _ = detect(records, per_packet=True)
    for kind in (bytearray, memoryview):
        got, _ = detect([(f, ts, lt, kind(d), wl) for f, ts, lt, d, wl in records], per_packet=True)
        assert got == want
    assert alerts(want)
