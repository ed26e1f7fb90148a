"""Bytes → text for every encoding legacy systems wrote: UTF-8 (with or without BOM),
UTF-16/32 with BOM, and single-byte cp1252 / Latin-1 as the fallback that never fails."""

from __future__ import annotations

import codecs

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class BinaryContent(ValueError):
    """The bytes are not text in any encoding we accept."""


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 9 or 13 < b < 32)
    return len(sample) > 0 and controls / len(sample) > 0.1


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Return ``(text, encoding)``; raise ``BinaryContent`` for data that is not text."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise BinaryContent(f"starts with a {encoding} byte order mark but does not decode: {exc.reason}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if _looks_binary(data):
            raise BinaryContent("binary content (control bytes), not text") from None
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            return data.decode("latin-1"), "latin-1"
    if "\x00" in text[:8192]:
        raise BinaryContent("binary content (NUL bytes), not text")
    return text, "utf-8"
