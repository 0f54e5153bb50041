"""smbsentry.audit."""
