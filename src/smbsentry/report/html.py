"""A self-contained HTML report of one scan (no network, no scripts).

Jinja2 with autoescaping renders every remote string (host names, NativeOS,
share names, evidence) as text.  The template and its labels live beside
this module; `lang` picks English or Simplified Chinese labels.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone
from importlib import resources

import jinja2

from ..kb.findings import meta
from ..model import SEVERITIES, HostResult
from .arsenal import LABELS as ARSENAL_LABELS, table as arsenal_table

LABELS = {
    "en": {
        "title": "smbsentry scan report", "generated": "Generated", "hosts": "Hosts with SMB",
        "smb1": "SMBv1 on", "unsigned": "Signing not required", "exposed": "Hosts with vulnerable or likely findings",
        "findings": "Findings", "finding": "Finding", "severity": "Severity", "status": "Status",
        "affected": "Affected hosts", "evidence": "Evidence", "reason": "Reason", "host": "Host", "address": "Address",
        "name": "Name", "os": "OS", "dialects": "SMB2/3 dialects", "signing": "Signing", "none": "No findings.",
        "inferred": "inferred", "all_hosts": "All hosts", "errors": "Errors",
        "charts": "Overview", "fix": "How to fix", "scan": "Scan", "targets": "Targets", "started": "Started",
        "by_severity": "Findings by severity (vulnerable or likely)", "by_os": "Hosts by OS", "smb1_share": "SMBv1 enabled",
        "unsigned_share": "SMB signing not required", "trend": "Trend across scans of the same targets", "unknown_os": "unknown",
    },
    "zh": {
        "title": "smbsentry 扫描报告", "generated": "生成时间", "hosts": "开放 SMB 的主机",
        "smb1": "启用 SMBv1", "unsigned": "未强制签名", "exposed": "存在漏洞或疑似漏洞的主机",
        "findings": "发现", "finding": "发现项", "severity": "严重性", "status": "状态",
        "affected": "受影响主机", "evidence": "证据", "reason": "原因", "host": "主机", "address": "地址",
        "name": "名称", "os": "操作系统", "dialects": "SMB2/3 协议版本", "signing": "签名", "none": "没有发现。",
        "inferred": "推断", "all_hosts": "全部主机", "errors": "错误",
        "charts": "概览", "fix": "修复方法", "scan": "扫描", "targets": "目标", "started": "开始时间",
        "by_severity": "按严重性统计的发现（漏洞或疑似）", "by_os": "按操作系统统计的主机", "smb1_share": "启用 SMBv1",
        "unsigned_share": "未强制 SMB 签名", "trend": "相同目标的历次扫描趋势", "unknown_os": "未知",
    },
}
STATUS_ORDER = ("vulnerable", "likely", "unknown", "not_vulnerable")


def _env() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(
        lambda name: resources.files("smbsentry.report").joinpath("templates", name).read_text("utf-8")
    )
    return jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True)


def render(results: list[HostResult], lang: str = "en", title: str | None = None,
           charts: list | None = None, fixes: dict[str, list[str]] | None = None, scan: dict | None = None) -> str:
    """charts: [(heading, Markup svg)]; fixes: finding id -> paragraphs; scan: the store's scan row."""
    if lang not in LABELS:
        raise ValueError(f"unknown language {lang!r} (en or zh)")
    by_finding: dict[str, dict] = defaultdict(lambda: {"hosts": [], "counts": Counter()})
    for r in results:
        for f in r.findings:
            entry = by_finding[f.id]
            entry["counts"][f.status] += 1
            if f.status in ("vulnerable", "likely", "unknown"):
                entry["hosts"].append((r, f))
    sections = []
    for fid, entry in by_finding.items():
        m = meta(fid)
        entry["hosts"].sort(key=lambda hf: STATUS_ORDER.index(hf[1].status))
        sections.append(
            {
                "id": fid,
                "title": m.get("title_zh") if lang == "zh" and m.get("title_zh") else m["title"],
                "severity": m["severity"],
                "cves": m.get("cves", []),
                "counts": [(s, entry["counts"][s]) for s in STATUS_ORDER if entry["counts"][s]],
                "hosts": entry["hosts"],
                "bad": entry["counts"]["vulnerable"] + entry["counts"]["likely"],
                "fix": (fixes or {}).get(fid, []),
            }
        )
    sections.sort(key=lambda s: (-min(s["bad"], 1), SEVERITIES.index(s["severity"]), -s["bad"], s["id"]))
    stats = {
        "hosts": len(results),
        "smb1": sum(1 for r in results if r.smb1 and r.smb1.enabled),
        "unsigned": sum(1 for r in results for f in r.findings if f.id == "smb-signing-not-required" and f.status == "vulnerable"),
        "exposed": sum(1 for r in results if any(f.status in ("vulnerable", "likely") and f.severity in ("critical", "high") for f in r.findings)),
    }
    return _env().get_template("scan.html.j2").render(
        t=LABELS[lang],
        lang=lang,
        title=title or LABELS[lang]["title"],
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        stats=stats,
        sections=sections,
        results=sorted(results, key=lambda r: r.address),
        charts=charts or [],
        scan=scan,
        arsenal=arsenal_table(results, lang), ta=ARSENAL_LABELS[lang],
    )
