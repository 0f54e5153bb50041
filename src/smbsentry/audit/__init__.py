"""smbsentry.audit: offline inventories -> host facts -> patch verdicts.

Entry points for the command line:
    audit_files(paths) -> AuditRun(results, errors)
    render_audit(results, fmt)            # table | jsonl | json
    merge_scan_audit(host_result, audit)  # rules in merge.py
"""

from .api import AuditRun, audit_files, collect, render_audit
from .errors import InventoryError
from .evaluate import evaluate, resolve_product
from .facts import HostFacts
from .merge import merge_scan_audit
from .result import AuditResult, Verdict

__all__ = ["AuditRun", "AuditResult", "HostFacts", "InventoryError", "Verdict", "audit_files", "collect", "evaluate",
           "merge_scan_audit", "render_audit", "resolve_product"]
