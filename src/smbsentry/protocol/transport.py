"""The TCP ports SMB is carried on, declared once for the scanner, the lab, the detector, the checks and the command line.

* 445, SMB over direct TCP: [MS-SMB2] 2.1 (Transport), [MS-CIFS] 2.1.1.2
  (Direct TCP transport); IANA "microsoft-ds".
* 139, SMB over the NetBIOS session service: RFC 1001 / RFC 1002, [MS-CIFS]
  2.1.1.1 (NetBIOS over TCP); IANA "netbios-ssn".  A client opens it with a
  NetBIOS SESSION REQUEST before the first SMB message (netbios.py).

These are facts of the protocol rather than of the world the knowledge base
describes (no vendor or release changes them), and they are needed at import
time by parts that never load the knowledge base (the detector, target
files), so they live here, in the lowest layer, rather than in kb/data.
The order is the scanner's probe order and every listing's: 445 first.

The detector's compiled hot loops (detect/engine.py `batch`, detect/pcap.py)
compare against the literals 445 and 139 so that Cython emits C integer
comparisons; a test (tests/test_architecture.py) keeps them equal to these.
"""

from __future__ import annotations

SMB_DIRECT_TCP = 445
NETBIOS_SESSION = 139

#: The SMB ports, in probe order.
SMB_PORTS: tuple[int, ...] = (SMB_DIRECT_TCP, NETBIOS_SESSION)
#: The same as the strings that key a host result's "ports" object.
SMB_PORT_NAMES: tuple[str, ...] = tuple(str(p) for p in SMB_PORTS)
#: The same as a --ports value ("445,139"): the default of every command and form that takes one.
SMB_PORTS_TEXT = ",".join(SMB_PORT_NAMES)
