"""smbsentry.remediate."""
