"""smbsentry.lab."""
