"""`smbsentry detect --export-rules suricata|snort`: rules a deployed sensor reads.

The rules are parsed by idstools (the rule parser of Suricata-Update), and
their payload options run on the capture corpus with the project's own
detector as the oracle: every flow where the detector raises a signature
must raise one of that signature's rules, and the benign captures raise
none.  Where Suricata is installed (Debian 12: bookworm-backports), Suricata
itself loads both files and runs the rules on the corpus under the same
oracle; elsewhere those tests skip with the reason.  Snort has no Debian
package: its file is checked by idstools and by Suricata's parser.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
from collections import defaultdict

import pytest

import corpus
import rulematch
from smbsentry.detect.capture import read_capture
from smbsentry.detect.dns import KILLSWITCH_DOMAINS, killswitch_domain, parse_question
from smbsentry.detect.engine import Config, Engine
from smbsentry.detect.rules_export import FORMATS, NOT_EXPRESSED, SID_RANGE, export_rules
from smbsentry.detect.signatures import SIGNATURES

idstools_rule = pytest.importorskip("idstools.rule", reason="idstools is a test dependency (pip install -e '.[test]')")

#: The sids are a contract with the sensors that load the file: never renumbered.
STABLE_SIDS = {
    9710001: "ms17-010-probe", 9710002: "ms17-010-vulnerable-reply", 9710003: "eternalblue", 9710004: "eternalblue",
    9710005: "eternalromance", 9710006: "eternalchampion", 9710007: "doublepulsar-ping",
    9710008: "doublepulsar-upload", 9710009: "doublepulsar-reply", 9710010: "smbghost-exploit",
    9710011: "smbghost-exploit", 9710012: "smb-worm-scan", 9710050: "eternalromance", 9710051: "eternalchampion",
    9710060: "wannacry-killswitch-dns",
}
#: MANIFEST.md: these must raise no exploit or implant alert.
BENIGN = ("arkime-smb-on-windows10.pcap", "arkime-smbclient-samba363.pcap", "claroty-smb311-legit-compressed-data.pcap",
          "claroty-win10-negotiate-compression.pcap", "claroty-win7-negotiate-smb21.pcap",
          "zeek-cifs-negotiate-lanman.pcap", "zeek-smb1-transaction-request.pcap",
          "zeek-smb1-transaction2-request.pcap", "zeek-smb2-compound.pcap", "zeek-smb3-negotiate-context.pcap",
          "zeek-smb3-ws2016.pcap", "zeek-smb311.pcap", "zeek-smbghost-scan-ws2019.pcap")
EXPLOITS = ("claroty-smbghost-dos.pcapng", "doublepulsar-backdoor-connect-win7.pcap",
            "eternalblue-success-unpatched-win7.pcap", "eternalromance-success-2008r2.pcap", "wannacry.pcap")


def parsed(fmt: str, **kw) -> list:
    return idstools_rule.parse_fileobj(io.StringIO(export_rules(fmt, **kw)))


def signature_of(rule) -> str:
    return dict(m.split(" ", 1) for m in rule.metadata)["smbsentry_signature"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_rule_parses_and_names_its_signature(fmt):
    text = export_rules(fmt)
    rules = parsed(fmt)
    assert len(rules) == sum(1 for line in text.splitlines() if line.startswith("alert "))
    sids = [r.sid for r in rules]
    assert len(set(sids)) == len(sids) and all(s in SID_RANGE for s in sids)
    for r in rules:
        assert r.enabled and r.rev == 1 and r.msg.startswith(f"smbsentry {signature_of(r)}: ")
        assert signature_of(r) in SIGNATURES and r.references and r.classtype
        assert int(r.priority) == SIGNATURES[signature_of(r)].severity
    covered = {signature_of(r) for r in rules if "flowbits:noalert" not in r.raw}
    assert covered | set(NOT_EXPRESSED) == set(SIGNATURES) and not covered & set(NOT_EXPRESSED)
    assert {r.sid: signature_of(r) for r in rules if r.sid in STABLE_SIDS} == STABLE_SIDS
    worm = next(r for r in rules if signature_of(r) == "smb-worm-scan")
    limiter = "detection_filter" if fmt == "snort" else "threshold"
    assert f"{limiter}:" in worm.raw and "count 20, seconds 10" in worm.raw


def test_export_follows_the_detectors_scan_settings_and_is_deterministic():
    assert export_rules("snort", 7, 2.5) == export_rules("snort", 7, 2.5)
    worm = next(r for r in parsed("snort", scan_threshold=7, scan_window=2.5) if r.sid == 9710012)
    assert "count 7, seconds 2" in worm.raw
    with pytest.raises(ValueError):
        export_rules("zeek")


def _dns_query(name: str, response: bool = False) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    flags = 0x8180 if response else 0x0100
    return struct.pack(">HHHHHH", 0x1234, flags, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)


def test_killswitch_rules_agree_with_the_detector():
    rules = [rulematch.compile_rule(r) for r in parsed("suricata") if r.proto == "udp"]
    assert {r.sid for r in rules} == set(range(9710060, 9710060 + len(KILLSWITCH_DOMAINS)))
    names = [d for d in KILLSWITCH_DOMAINS] + ["www." + KILLSWITCH_DOMAINS[0], "WWW." + KILLSWITCH_DOMAINS[1].upper(),
                                               "example.com", KILLSWITCH_DOMAINS[0] + ".evil.org"]
    for name in names:
        for response in (False, True):
            payload = _dns_query(name, response)
            is_response, qname, _ = parse_question(payload)
            oracle = not is_response and killswitch_domain(qname) is not None
            assert any(rulematch.payload_matches(r, payload) for r in rules) is oracle, (name, response)


def _detector_flows(path) -> dict[str, set]:
    events: list[dict] = []
    engine = Engine(events.append, Config(scan_threshold=10**6))
    engine.run(list(read_capture(path)), path.name)
    engine.end_source()
    engine.finish()
    flows = defaultdict(set)
    for ev in events:
        if ev.get("event_type") == "alert":
            flows[ev["alert"]["signature_id"]].add(frozenset({(ev["src_ip"], ev["src_port"]),
                                                              (ev["dest_ip"], ev["dest_port"])}))
    return flows


def _rule_flows(name: str) -> dict[str, set]:
    compiled = [rulematch.compile_rule(r) for r in parsed("suricata")
                if r.proto == "tcp" and "flags:" not in r.raw]
    messages = corpus.smb_messages(name)
    hits = rulematch.run_rules(compiled, messages)
    by_frame = {m.last_frame: frozenset({(m.src, m.sport), (m.dst, m.dport)}) for m in messages}
    flows = defaultdict(set)
    for c in compiled:
        flows[c.signature] |= {by_frame[f] for f in hits[c.sid]}
    return flows


@pytest.mark.parametrize("name", BENIGN)
def test_benign_captures_raise_no_rule(name):
    corpus.corpus_path(name)  # skips, with the reason, without the corpus
    assert not any(_rule_flows(name).values())


@pytest.mark.parametrize("name", EXPLOITS)
def test_rules_raise_where_the_detector_does(name):
    path = corpus.corpus_path(name)
    oracle, ours = _detector_flows(path), _rule_flows(name)
    assert oracle, f"{name}: the detector raises nothing; the oracle has nothing to say"
    for signature, flows in oracle.items():
        if signature in NOT_EXPRESSED:
            continue
        missed = flows - ours.get(signature, set())
        assert not missed, f"{name}: {signature} raised by the detector, by no rule, on {sorted(map(sorted, missed))}"
    alerted = set().union(*oracle.values())
    for signature, flows in ours.items():
        # a rule may approximate (documented in the file), but never on a flow the detector finds clean
        assert flows <= alerted, f"{name}: {signature} rules fire on flows the detector finds clean"


def _suricata() -> str:
    path = shutil.which("suricata")
    if path is None:
        pytest.skip("suricata is not installed (Debian 12 ships it in bookworm-backports only: "
                    "apt-get install -t bookworm-backports suricata); idstools and the corpus cross-check above stand in")
    return path


@pytest.mark.parametrize("fmt", FORMATS)
def test_suricata_loads_the_rules(tmp_path, fmt):
    """Suricata's own parser: the Suricata file, and the Snort 2.9 file too
    (its options are ones Suricata shares)."""
    rules = tmp_path / f"smbsentry-{fmt}.rules"
    rules.write_text(export_rules(fmt))
    proc = subprocess.run([_suricata(), "-T", "-S", str(rules), "-l", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "error" not in (proc.stdout + proc.stderr).lower()


def _suricata_flows(path, rules, logdir) -> dict[str, set]:
    eve = logdir / "eve.json"
    eve.unlink(missing_ok=True)
    proc = subprocess.run([_suricata(), "-r", str(path), "-S", str(rules), "-l", str(logdir), "-k", "none",
                           "--runmode", "single", "--set", "stream.midstream=true"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    flows = defaultdict(set)
    for line in eve.read_text().splitlines() if eve.exists() else []:
        ev = json.loads(line)
        if ev.get("event_type") == "alert":
            signature = ev["alert"]["metadata"]["smbsentry_signature"][0]
            flows[signature].add(frozenset({(ev["src_ip"], ev["src_port"]), (ev["dest_ip"], ev["dest_port"])}))
    return flows


@pytest.mark.parametrize("name", BENIGN + EXPLOITS)
def test_suricata_on_the_corpus_agrees_with_the_detector(tmp_path, name):
    """Suricata 7 runs the exported rules on each capture; the detector is the
    oracle, flow by flow, as in test_rules_raise_where_the_detector_does."""
    path = corpus.corpus_path(name)
    rules = tmp_path / "smbsentry.rules"
    rules.write_text(export_rules("suricata"))
    ours = _suricata_flows(path, rules, tmp_path)
    if name in BENIGN:
        assert not ours, f"{name}: {dict(ours)}"
        return
    oracle = _detector_flows(path)
    for signature, flows in oracle.items():
        if signature not in NOT_EXPRESSED:
            missed = flows - ours.get(signature, set())
            assert not missed, f"{name}: {signature} raised by the detector, not by Suricata, on {len(missed)} flow(s)"
    alerted = set().union(*oracle.values())
    for signature, flows in ours.items():
        if signature == "smb-worm-scan":
            continue  # counts connections, not destinations: documented in the rule
        assert flows <= alerted, f"{name}: Suricata raises {signature} on flows the detector finds clean"


def test_cli_writes_the_rules_and_refuses_an_unknown_format(tmp_path):
    out = tmp_path / "smbsentry.rules"
    cmd = [sys.executable, "-m", "smbsentry.cli"]
    proc = subprocess.run(cmd + ["detect", "--export-rules", "suricata", "-o", str(out)], capture_output=True, text=True)
    if proc.returncode != 0 and "No module named smbsentry.cli" in proc.stderr:
        pytest.skip("smbsentry.cli is not runnable as a module")
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == export_rules("suricata")
    bad = subprocess.run(cmd + ["detect", "--export-rules", "bro"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "suricata, snort" in bad.stderr
