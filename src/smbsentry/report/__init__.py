"""smbsentry.report: the HTML scan report and the store-backed history / diff / report / OCSF exports."""
