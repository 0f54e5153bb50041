"""smbsentry.report."""
