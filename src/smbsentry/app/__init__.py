"""The application layer: the jobs a person asks for, run the same way for the CLI, the web and the engines.

The CLI parses arguments into a request and calls these; nothing here prints
usage or parses argv.  `scanprep` turns a scan request into a ready scan;
`scans.run` is the one run of a scan (the CLI's `scan`, `respond`, the
dashboard's worker); `respond` is the whole job of an outbreak: scan, audit,
plan, reports.
"""
