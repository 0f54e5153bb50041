"""Knowledge as data: OS builds, products, vulnerabilities, fixes, remediation.

Data files live in kb/data with a source for every entry (sources.json);
store.py validates them against schema.py and checks every cross-reference
when first used, so a broken file stops the program naming file and path.
Nothing in checks or scan hard-codes a build number or a KB: they ask here.

    builds.lookup(major, minor, build)       NTLM version -> product candidates
    findings.meta(id) / affected_build / samba_affected
    lifecycle.end_of_support(name)
    query.*   fixes_for, supersedes_chain, superseded_by, covering_updates,
              fixed_build, file_verdict, actions_for, product_from_os_string ...
    show.kb_show(entry_id), show.which_kb(os_text, vuln_id)   (CLI text)
"""
