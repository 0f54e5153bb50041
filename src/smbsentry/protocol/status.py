"""NT status codes: one enum for the scanner, the lab, the audit and the detector.

Every NT status the code names is a member of `NtStatus` here and nowhere
else.  The members are also module attributes (`status.ACCESS_DENIED`), which
is how most callers spell them.  An IntEnum compares and hashes as its int,
so a member can stand wherever a status read off the wire does.

`describe` gives the form evidence uses.  It names only the codes evidence has
always named (`NAMED`): a new name would change the text of stored findings and
make every scan-to-scan diff show a change that is not one.
"""

from __future__ import annotations

from enum import IntEnum


class NtStatus(IntEnum):
    SUCCESS = 0x00000000
    PENDING = 0x00000103
    BUFFER_OVERFLOW = 0x80000005
    NOT_IMPLEMENTED = 0xC0000002
    INVALID_HANDLE = 0xC0000008
    INVALID_PARAMETER = 0xC000000D
    INVALID_DEVICE_REQUEST = 0xC0000010
    MORE_PROCESSING_REQUIRED = 0xC0000016
    ACCESS_DENIED = 0xC0000022
    OBJECT_NAME_NOT_FOUND = 0xC0000034
    NO_SUCH_USER = 0xC0000064
    WRONG_PASSWORD = 0xC000006A
    LOGON_FAILURE = 0xC000006D
    ACCOUNT_RESTRICTION = 0xC000006E
    PASSWORD_EXPIRED = 0xC0000071
    ACCOUNT_DISABLED = 0xC0000072
    PIPE_NOT_AVAILABLE = 0xC00000AC
    NOT_SUPPORTED = 0xC00000BB
    NETWORK_NAME_DELETED = 0xC00000C9
    NETWORK_ACCESS_DENIED = 0xC00000CA
    BAD_NETWORK_NAME = 0xC00000CC
    REQUEST_NOT_ACCEPTED = 0xC00000D0
    PIPE_EMPTY = 0xC00000D9
    FILE_CLOSED = 0xC0000128
    LOGON_TYPE_NOT_GRANTED = 0xC000015B
    USER_SESSION_DELETED = 0xC0000203
    INSUFF_SERVER_RESOURCES = 0xC0000205
    PASSWORD_MUST_CHANGE = 0xC0000224
    ACCOUNT_LOCKED_OUT = 0xC0000234
    # the lab's disk shares (directory listings, reads)
    NO_MORE_FILES = 0x80000006
    INVALID_INFO_CLASS = 0xC0000003
    INFO_LENGTH_MISMATCH = 0xC0000004
    NO_SUCH_FILE = 0xC000000F
    END_OF_FILE = 0xC0000011
    OBJECT_PATH_NOT_FOUND = 0xC000003A
    FILE_IS_A_DIRECTORY = 0xC00000BA
    NOT_A_DIRECTORY = 0xC0000103
    MEDIA_WRITE_PROTECTED = 0xC00000A2
    # SMB1 DOS-class errors as an NT status field carries them (class 2, code)
    SMB_BAD_COMMAND = 0x00160002
    SMB_BAD_UID = 0x005B0002
    SMB_BAD_TID = 0x00050002


globals().update(NtStatus.__members__)  # status.ACCESS_DENIED is NtStatus.ACCESS_DENIED

#: Severity bits 31-30 both set: an error (MS-ERREF 2.3).
SEVERITY_ERROR = 0xC0000000

NAMED = frozenset({
    NtStatus.SUCCESS, NtStatus.MORE_PROCESSING_REQUIRED, NtStatus.INVALID_PARAMETER, NtStatus.NOT_IMPLEMENTED,
    NtStatus.INVALID_HANDLE, NtStatus.ACCESS_DENIED, NtStatus.LOGON_FAILURE, NtStatus.ACCOUNT_DISABLED,
    NtStatus.BAD_NETWORK_NAME, NtStatus.NOT_SUPPORTED, NtStatus.INSUFF_SERVER_RESOURCES,
    NtStatus.USER_SESSION_DELETED, NtStatus.REQUEST_NOT_ACCEPTED, NtStatus.NETWORK_ACCESS_DENIED,
    NtStatus.SMB_BAD_COMMAND, NtStatus.SMB_BAD_UID,
})
NAMES = {int(code): f"STATUS_{code.name}" for code in NAMED}


def is_error(code: int) -> bool:
    """True for an error-severity status (0xC.......): the operation failed."""
    return code & SEVERITY_ERROR == SEVERITY_ERROR


def name(code: int) -> str:
    """`STATUS_ACCESS_DENIED` for any member, `0x........` for anything else."""
    try:
        return f"STATUS_{NtStatus(code).name}"
    except ValueError:
        return f"0x{code:08X}"


def describe(code: int) -> str:
    """`0xC0000205 (STATUS_INSUFF_SERVER_RESOURCES)`: the form evidence uses."""
    label = NAMES.get(code)
    return f"0x{code:08X} ({label})" if label else f"0x{code:08X}"
