"""smbsentry.engines."""
