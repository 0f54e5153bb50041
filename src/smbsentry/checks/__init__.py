"""smbsentry.checks."""
