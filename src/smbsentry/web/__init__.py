"""smbsentry.web."""
