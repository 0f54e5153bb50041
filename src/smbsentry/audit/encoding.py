"""Decode inventory files the way Windows wrote them.

`systeminfo > f` in PowerShell 5 writes UTF-16LE with a BOM; in cmd it
writes the console code page (437 for US English, 936/GBK for Chinese);
Export-Csv in Windows PowerShell writes ASCII, `Out-File -Encoding utf8`
UTF-8 with a BOM, PowerShell 7 UTF-8 without one; wmic writes UTF-16LE.
Nothing here guesses silently: the chosen encoding is returned.
"""

from __future__ import annotations

import codecs
import re

from .errors import InventoryError

CJK = re.compile(r"[\u4e00-\u9fff]")


def _utf16(data: bytes, codec: str, path: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise InventoryError(path, None, f"not valid {codec.upper()} at byte {exc.start}") from None


def decode(data: bytes, path: str = "<bytes>") -> tuple[str, str]:
    """(text with \\n line ends, encoding name)."""
    if data.startswith(codecs.BOM_UTF8):
        text, enc = data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    elif data.startswith(codecs.BOM_UTF16_LE):
        text, enc = _utf16(data[2:], "utf-16-le", path), "utf-16-le"
    elif data.startswith(codecs.BOM_UTF16_BE):
        text, enc = _utf16(data[2:], "utf-16-be", path), "utf-16-be"
    elif len(data) >= 4 and data[1::2].count(0) > len(data) // 4 and data[0::2].count(0) < len(data) // 16:
        text, enc = _utf16(data, "utf-16-le", path), "utf-16-le"
    elif len(data) >= 4 and data[0::2].count(0) > len(data) // 4 and data[1::2].count(0) < len(data) // 16:
        text, enc = _utf16(data, "utf-16-be", path), "utf-16-be"
    else:
        text, enc = _single_byte(data)
    if "\x00" in text:
        raise InventoryError(path, None, "binary data (NUL characters) in a text inventory")
    # wmic piped through cmd ends lines with \r\r\n; normalise every flavour to \n.
    return text.replace("\r\r\n", "\n").replace("\r\n", "\n").replace("\r", "\n"), enc


def _single_byte(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gbk")
        if CJK.search(text):
            return text, "gbk"
    except UnicodeDecodeError:
        pass
    return data.decode("cp437"), "cp437"
