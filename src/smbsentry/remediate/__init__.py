"""smbsentry.remediate: results -> an ordered remediation plan, scripts, the offline patch bundle.

    plan(results, lang="en"|"zh", as_of=None) -> Plan      # scan, audit or merged host dicts, in any mix
    write_plan(plan, out_dir) -> [paths]                     # plan.md, plan.json, bundle.csv, scripts/
    main_plan(results_paths, out_dir, lang) -> exit status   # what `smbsentry plan` calls
"""

from .planner import BundleRow, HostPlan, Plan, ScriptGroup, Step, plan
from .scripts import safe_label
from .writer import load_results, main_plan, render_markdown, write_plan

__all__ = ["BundleRow", "HostPlan", "Plan", "ScriptGroup", "Step", "load_results", "main_plan", "plan", "render_markdown", "safe_label",
           "write_plan"]
