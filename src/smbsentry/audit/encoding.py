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

CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")


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


# Console (OEM) and ANSI code pages systeminfo output is found in, in the order ties are settled.  The CJK ones are
# Windows' own (936, 950, 932, 949): supersets of GB2312/GBK, Big5, Shift-JIS and EUC-KR that Windows writes.
CODE_PAGES = ("gbk", "cp950", "cp932", "cp949", "cp866", "cp1251", "cp850", "cp1252", "cp852", "cp1250", "cp857", "cp1254", "cp437")


def _labels_of(data: bytes) -> list[bytes]:
    """The label bytes (before the first colon) of the first few non-indented lines."""
    out = []
    for line in data[:4096].split(b"\n"):
        if line.strip() and line[:1] not in b" \t" and b":" in line:
            out.append(line.split(b":", 1)[0].strip())
            if len(out) == 4:
                break
    return out


def _single_byte(data: bytes) -> tuple[str, str]:
    """UTF-8, else the code page under which the first labels read as known systeminfo labels, else a guess."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from .formats.labels import LABELS

    labels = [b for b in _labels_of(data) if not b.isascii()]
    best, score = None, 0
    for enc in CODE_PAGES:
        hits = 0
        for raw in labels:
            try:
                hits += raw.decode(enc).strip().lower() in LABELS
            except UnicodeDecodeError:
                pass
        if hits > score:
            best, score = enc, hits
    if best:
        return data.decode(best, errors="replace"), best
    for enc in ("gbk", "cp950", "cp932", "cp949"):  # an unknown language in a CJK code page: the first that decodes
        try:
            text = data.decode(enc)
            if CJK.search(text):
                return text, enc
        except UnicodeDecodeError:
            pass
    return data.decode("cp437"), "cp437"
