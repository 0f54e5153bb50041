"""JSON Schemas of the data files in kb/data.

Kept in Python rather than as files so the shared definitions (dates, KB
numbers, product ids, sources) are written once, and so packaging needs no
extra data glob.  The loader (store.py) validates every file against its
schema, then checks what a schema cannot: that every id referred to exists.
"""

from __future__ import annotations

import hashlib
import json

DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
KB = {"type": "string", "pattern": r"^KB\d{6,7}$"}
PID = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9.-]*$"}
ARCH = {"enum": ["x86", "x64", "arm64", "ia64"]}
TEXT = {"type": "string", "minLength": 1}
SOURCE = {"oneOf": [TEXT, {"type": "array", "items": TEXT, "minItems": 1}]}
PORTS = {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}}
CVSS = {"type": "string", "pattern": r"^(CVSS:3\.[01]/AV:[NALP]/|AV:[LAN]/AC:[LMH]/Au:[NSM]/)"}
VERSION = {"type": "string", "pattern": r"^\d+(\.\d+){1,3}$"}
FAMILIES = ["windows-nt5", "windows-nt6.0", "windows-nt6.1", "windows-nt6.2", "windows-nt6.3", "windows-10",
            "samba", "mdaemon", "lotus-notes", "lotus-domino", "exchange", "iis"]
FIX_KINDS = ["security-only", "monthly-rollup", "preview-rollup", "cumulative", "standalone", "service-pack"]


def _obj(required: dict, optional: dict | None = None) -> dict:
    """An object with exactly these properties: unknown keys are typos."""
    props = dict(required)
    props.update(optional or {})
    return {"type": "object", "required": list(required), "properties": props, "additionalProperties": False}


def _doc(key: str, body: dict) -> dict:
    return _obj({"_about": TEXT, key: body})


SOURCES = _doc("sources", {"type": "object", "minProperties": 1, "additionalProperties": _obj(
    {"title": TEXT, "kind": {"enum": ["vendor", "reference", "public-code", "project", "seed"]}}, {"url": TEXT, "licence": TEXT})})

PRODUCT = _obj(
    {"id": PID, "name": TEXT, "line": TEXT, "family": {"enum": FAMILIES}, "role": {"enum": ["client", "server", "both"]},
     "version": {"oneOf": [{"type": "null"}, VERSION]}, "build": {"type": ["integer", "null"]},
     "service_pack": {"type": ["integer", "null"], "minimum": 0}, "editions": {"type": "array", "items": TEXT},
     "architectures": {"type": "array", "items": ARCH}, "end_of_support": {"oneOf": [{"type": "null"}, DATE]},
     "ubr_is_proof": {"type": "boolean"}, "source": SOURCE},
    {"aliases": {"type": "array", "items": TEXT}, "other_builds": {"type": "array", "items": {"type": "integer"}},
     "next_service_pack": _obj({"kb": KB, "product": PID}), "service_pack_support_end": DATE,
     "lifecycle_note": TEXT, "note": TEXT})
PRODUCTS = _doc("products", {"type": "array", "items": PRODUCT, "minItems": 1})

PREREQ = _obj({"kb": KB, "name": TEXT, "kind": {"enum": ["service-pack", "update"]}},
              {"provides": {"type": "array", "items": PID, "minItems": 1}, "products": {"type": "array", "items": PID, "minItems": 1}})
LANGUAGE = {"oneOf": [{"type": "null"}, {"type": "string", "pattern": r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$"}]}
SOURCES_LIST = {"type": "array", "items": TEXT, "minItems": 1}
# update_files.json: the package files of the updates (and why some have none), built by scripts/import-update-files
FILEREF = _obj({"kb": KB, "products": {"type": "array", "items": PID, "minItems": 1}, "architecture": ARCH, "language": LANGUAGE,
                "name": TEXT, "url": {"oneOf": [{"type": "null"}, {"type": "string", "pattern": r"^https?://[^/\s]+/\S+$"}]},
                "source": SOURCES_LIST}, {"note": TEXT})
FILEGAP = _obj({"kb": KB, "products": {"type": "array", "items": PID, "minItems": 1}, "architecture": ARCH, "language": LANGUAGE,
                "reason": TEXT, "source": SOURCES_LIST})
UPDATE_FILES = _obj({"_about": TEXT, "files": {"type": "array", "items": FILEREF}, "gaps": {"type": "array", "items": FILEGAP}})
FILEVER = _obj({"products": {"type": "array", "items": PID, "minItems": 1}, "version": VERSION},
               {"branch": {"enum": ["GDR", "LDR"]},
                "revisions": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}})
FIX = _obj(
    {"kb": KB, "title": TEXT, "kind": {"enum": FIX_KINDS}, "products": {"type": "array", "items": PID, "minItems": 1},
     "architectures": {"type": "array", "items": ARCH, "minItems": 1}, "released": {"oneOf": [{"type": "null"}, DATE]},
     "addresses": {"type": "array", "items": TEXT}, "supersedes": {"type": "array", "items": KB}, "source": SOURCE},
    {"released_for": {"type": "object", "additionalProperties": DATE},
     "fixed_builds": {"type": "array", "items": _obj({"build": {"type": "integer"}, "ubr": {"type": "integer", "minimum": 0}})},
     "fixed_file": _obj({"name": TEXT, "versions": {"type": "array", "items": FILEVER, "minItems": 1}}),
     "prerequisites": {"type": "array", "items": PREREQ}, "note": TEXT})
RULE = _obj({"id": PID, "bulletin": TEXT, "kinds": {"type": "array", "items": {"enum": FIX_KINDS}, "minItems": 1},
             "products": {"type": "array", "items": PID, "minItems": 1}, "released_from": DATE, "text": TEXT, "source": SOURCE})
FIXES = _obj({"_about": TEXT, "fixes": {"type": "array", "items": FIX, "minItems": 1}, "rules": {"type": "array", "items": RULE}})

AFFECTED = _obj({"products": {"type": "array", "items": PID}},
                {"architectures": {"type": "array", "items": ARCH}, "role": {"enum": ["domain-controller"]}, "component": PID,
                 "versions": {"oneOf": [TEXT, {"type": "array", "items": TEXT}]}, "fixed_version": TEXT,
                 "platforms": {"type": "array", "items": {"enum": FAMILIES}}})
FINDING = _obj(
    {"title": TEXT, "title_zh": TEXT, "kind": {"enum": ["vulnerability", "implant", "configuration", "lifecycle", "exploit-module"]},
     "severity": {"enum": ["critical", "high", "medium", "low", "info"]}, "cves": {"type": "array", "items": {"type": "string", "pattern": r"^CVE-\d{4}-\d{4,}$"}},
     "references": {"type": "array", "items": TEXT}, "source": SOURCE},
    {"cvss": CVSS, "bulletin": TEXT, "released": DATE, "ports": PORTS, "udp_ports": PORTS, "component": TEXT, "fixed_file": TEXT,
     "affected": {"type": "array", "items": AFFECTED}, "workarounds": {"type": "array", "items": PID},
     "module": _obj({"name": TEXT, "name_zh": TEXT}), "unassessed": {"type": "array", "items": PID}, "affected_text": TEXT, "fix_text": TEXT, "fix_text_zh": TEXT, "note": TEXT,
     "affected_builds": {"type": "array", "items": _obj({"version": TEXT, "build": {"type": "integer"}})},
     "affected_samba": {"type": "array", "items": {"type": "array", "items": VERSION, "minItems": 2, "maxItems": 2}},
     "fixed_ubr": {"type": "integer"}})
VULNERABILITIES = _doc("findings", {"type": "object", "minProperties": 1, "propertyNames": PID, "additionalProperties": FINDING})

COMMANDS = {"type": "object", "propertyNames": {"enum": ["powershell", "powershell-server", "cmd", "shell"]},
            "additionalProperties": {"type": "array", "items": TEXT, "minItems": 1}}
ACTION = _obj({"id": PID, "kind": {"enum": ["patch", "upgrade", "workaround", "check", "response"]},
               "text": _obj({"en": TEXT, "zh": TEXT}), "applies_to": {"type": "array", "items": {"enum": FAMILIES}, "minItems": 1},
               "commands": COMMANDS, "rollback": COMMANDS, "reboot": {"type": "boolean"}, "source": SOURCE},
              {"note": TEXT, "disrupts": _obj({"en": TEXT, "zh": TEXT}),
               # a command per script flavour that succeeds once the action is in place (the scripts' verify mode)
               "verify": {"type": "object", "propertyNames": {"enum": ["shell"]}, "additionalProperties": TEXT}})
ACTIONS = _doc("actions", {"type": "array", "items": ACTION, "minItems": 1})

BUILDS = _obj({"_about": TEXT, "sources": {"type": "object", "additionalProperties": TEXT},
               "builds": {"type": "array", "minItems": 1, "items": _obj(
                   {"version": TEXT, "build": {"type": "integer"}, "products": {"type": "array", "items": TEXT, "minItems": 1}, "source": TEXT},
                   {"note": TEXT, "enablement": {"type": "object", "additionalProperties": {"type": "array", "items": TEXT, "minItems": 1}},
                    "enablement_source": TEXT})},
               "samba": _obj({"version": TEXT, "build": {"type": "integer"}, "source": TEXT},
                             # the SMB1 NativeLanMan a Samba server sends: a regex whose group 1 is the version
                             {"native_lm": TEXT, "native_lm_source": TEXT})},
              # an NT version's display name where the build is not known, and whether every product of it left support
              {"nt_versions": {"type": "array", "items": _obj({"version": {"type": "string", "pattern": r"^\d+\.\d+$"}, "name": TEXT,
                                                               "end_of_life": {"type": "boolean"}, "source": SOURCE})}})

def _by_finding(item: dict) -> dict:
    return {"type": "object", "propertyNames": PID, "additionalProperties": item}


# remediation.json (kb/model.py Remediation): how the planner answers findings per OS family
REMEDIATION = _obj({
    "_about": TEXT,
    "families": {"type": "object", "propertyNames": {"enum": FAMILIES}, "additionalProperties": _obj(
        {"label": PID, "script": {"enum": ["cmd", "ps1", "sh"]}, "source": SOURCE}, {"smb1_action": PID})},
    "hardening": _by_finding(_obj({"action": PID, "source": SOURCE})),
    "samba_manual": _by_finding(_obj({"step": PID, "source": SOURCE})),
    "findings": _by_finding(_obj({"steps": {"type": "array", "minItems": 1, "items": _obj(
        {"action": PID, "phase": {"enum": ["immediate", "patch"]}}, {"unless_fact": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*$"}})}, "source": SOURCE},
        {"families": {"type": "array", "items": {"enum": FAMILIES}, "minItems": 1}})),
    "settle": _by_finding(_obj({"how": PID, "source": SOURCE})),
    "installer_exit_codes": {"type": "array", "minItems": 1, "items": _obj({
        "code": {"type": "integer", "minimum": -2147483648, "maximum": 2147483647},  # ERRORLEVEL: a signed 32-bit value
        "name": {"type": "string", "pattern": r"^[A-Z][A-Z0-9_]*$"},
        "outcome": {"enum": ["reboot", "installed", "failed"]},
        "meaning": {"type": "string", "pattern": r"^[a-z][a-z0-9 ,:-]*$"},  # written into cmd echo and PowerShell '...' as is
        "source": SOURCE})}})

# services.json: the other services' ports (smbsentry.services) and the AD functional level names
SERVICES = _obj({
    "_about": TEXT,
    "services": {"type": "object", "minProperties": 1, "propertyNames": PID,
                 "additionalProperties": _obj({"ports": {**PORTS, "minItems": 1}, "source": SOURCE})},
    "dc_functionality": _obj({"levels": {"type": "object", "propertyNames": {"pattern": r"^\d{1,3}$"}, "additionalProperties": TEXT},
                              "source": SOURCE}),
    "default_workgroups": _obj({"names": {"type": "array", "minItems": 1, "items": TEXT}, "source": SOURCE, "note": TEXT})})

def _pattern_to(value: dict) -> dict:
    """[[regular expression, value], ...]: tried in order."""
    return {"type": "array", "minItems": 1, "items": {"type": "array", "prefixItems": [TEXT, value], "minItems": 2, "maxItems": 2}}


# osnames.json (kb/osname.py): edition names, architecture words, release tags and product-line patterns
OSNAMES = _obj({
    "_about": TEXT,
    "editions": _obj({"zh": {"type": "object", "additionalProperties": TEXT}, "en": {"type": "array", "items": TEXT}, "source": SOURCE}),
    "architectures": _obj({"words": _pattern_to(ARCH), "source": SOURCE}),
    "releases": _obj({"tags": {"type": "array", "items": {"type": "string", "pattern": r"^[0-9a-z]{4}$"}, "minItems": 1}, "source": SOURCE}),
    "lines": _obj({"patterns": _pattern_to(TEXT), "source": SOURCE})})

CATALOG_UPDATE = _obj(
    {"kb": KB, "kind": {"enum": ["security-only", "monthly-rollup", "cumulative", "standalone"]}, "released": DATE,
     "products": {"type": "array", "items": PID, "minItems": 1}, "architectures": {"type": "array", "items": ARCH, "minItems": 1},
     "supersedes": {"type": "array", "items": KB}},
    {"fixes": {"type": "array", "items": TEXT, "minItems": 1},
     "builds": {"type": "object", "propertyNames": {"pattern": r"^\d{4,5}$"}, "additionalProperties": {"type": "integer", "minimum": 0}}})
CATALOG_SOURCE = {"type": "object", "required": ["title", "url", "licence"], "properties": {"title": TEXT, "url": TEXT, "licence": TEXT}}
# catalog.json (kb/catalog.py): written by scripts/import_catalog.py, replaceable by `smbsentry kb update`.
CATALOG = _obj({"_about": TEXT, "format": {"const": 1}, "date": DATE, "source": CATALOG_SOURCE,
                "updates": {"type": "array", "items": CATALOG_UPDATE, "minItems": 1}},
               {"build_source": CATALOG_SOURCE})

SCHEMAS = {
    "sources.json": SOURCES,
    "products.json": PRODUCTS,
    "fixes.json": FIXES,
    "vulnerabilities.json": VULNERABILITIES,
    "actions.json": ACTIONS,
    "builds.json": BUILDS,
    "update_files.json": UPDATE_FILES,
    "remediation.json": REMEDIATION,
    "services.json": SERVICES,
    "osnames.json": OSNAMES,
}


def digest(raw: bytes, schema: dict) -> str:
    """A seal (store.py, data/sealed.json): the SHA-256 of a file's bytes and of the schema it was checked against."""
    return hashlib.sha256(raw + b"\0" + json.dumps(schema, sort_keys=True).encode()).hexdigest()
