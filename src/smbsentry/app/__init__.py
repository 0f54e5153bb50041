"""The application layer: the jobs a person asks for, run the same way for the CLI and the web.

The CLI parses arguments into a request and calls these; nothing here prints
usage or parses argv.  `scanprep` turns a scan request into a ready scan
(scan/runner.py runs it); `respond` is the whole job of an outbreak: scan,
audit, plan, reports.
"""
