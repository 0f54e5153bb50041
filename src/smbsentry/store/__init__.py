"""smbsentry.store."""
