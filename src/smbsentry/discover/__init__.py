"""Discovery: which addresses of a range have SMB, before any host is fingerprinted.

On a real network most addresses of a range are silent (not even a reset),
so a scan that opens a connection to each one waits out a timeout per
address: a /16 takes over twenty minutes.  This stage finds the live SMB
hosts first and hands each one to the fingerprinting engine as soon as it
is confirmed:

* `syn` (raw sockets, root or CAP_NET_RAW): stateless SYN probes in a
  permuted order (permute.py) at a fixed packet rate, the SYN cookie in
  the sequence number (cookie.py), sent in batches by a small C extension
  or by plain Python (sender.py), replies read from a raw socket (syn.py);
* `connect` (no raw sockets): full TCP connects with adaptive timeouts
  that follow the measured round-trip times (connect.py, rtt.py).

Either way a host with an open SMB port counts only once a real SMB
negotiate answered (confirm.py): middleboxes answer SYNs on every port.
stage.py picks the mode and carries the counts and the mode line.

targets.py is what every stage starts from: the target tokens, targets
files and excludes, validated up front and expanded lazily; it lives here,
below scan/ and audit/, because both read it.
"""
