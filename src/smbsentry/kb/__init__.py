"""Knowledge as data: OS builds, products, vulnerabilities, fixes, remediation.

Data files live in kb/data with a source for every entry; the modules here
load them once and answer queries.  Nothing in checks or scan hard-codes a
build number or a KB: they ask this package.
"""
