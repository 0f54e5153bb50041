"""`smbsentry rules`: effective exposure of SMB/RDP ports in firewall and security-group exports.

Seeds 001/002/004 tell admins to close 135/137/139/445/3389 to the Internet;
this package reads what the rules actually say (AWS, Alibaba, Azure, iptables,
nft, Windows Firewall) and reports each port still reachable from a wide
source, the rule that grants it, and the fix in that platform's syntax.
"""

from .cli import main_rules, scan_files
from .detect import read
from .errors import RulesError
from .evaluate import Exposure, evaluate, parse_targets

__all__ = ["main_rules", "scan_files", "read", "RulesError", "Exposure", "evaluate", "parse_targets"]
