"""Splitting substantial text into knowledge chunks on paragraph and sentence boundaries."""

from __future__ import annotations

import re
from dataclasses import dataclass

_BREAKS = (re.compile(r"\n\s*\n"), re.compile(r"(?<=[.!?])\s+"), re.compile(r"\s+"))


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    start: int
    end: int
    text: str


def _cut(text: str, start: int, limit: int) -> int:
    """The best end for a chunk starting at ``start``: the last boundary before ``limit``."""
    if limit >= len(text):
        return len(text)
    window = text[start:limit]
    floor = len(window) // 2
    for pattern in _BREAKS:
        ends = [m.end() for m in pattern.finditer(window) if m.end() > floor]
        if ends:
            return start + ends[-1]
    return limit


def chunk_text(text: str, size: int = 1200) -> list[Chunk]:
    """Cover ``text`` with consecutive chunks of at most ``size`` characters; nothing is dropped."""
    chunks: list[Chunk] = []
    start = 0
    while start < len(text):
        end = _cut(text, start, start + size)
        piece = text[start:end]
        if piece.strip():
            chunks.append(Chunk(len(chunks), start, end, piece))
        start = end
    return chunks
