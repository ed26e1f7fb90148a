"""The inventory of a source directory: every file, its fingerprint and whether it is eligible.

Symbolic links are never followed out of the source directory, and each real file is
listed once however many links point at it.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

FORMATS: dict[str, str] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",  # MDX (Docusaurus, Astro): front matter and Markdown, its JSX kept as text
    ".mdown": "markdown",
    ".mkd": "markdown",
    ".mkdn": "markdown",
    ".mdwn": "markdown",
    ".txt": "text",
    ".text": "text",
    ".csv": "csv",
}


class FileStatus(enum.StrEnum):
    ELIGIBLE = "eligible"
    TOO_LARGE = "too_large"
    UNSUPPORTED = "unsupported"
    UNREADABLE = "unreadable"
    NOT_FOLLOWED = "not_followed"
    MISSING = "missing"


class SourceFile(NamedTuple):  # a tuple: compact (an inventory holds one per file) and quick to pickle
    """One file found under the source directory, with what the migration will do with it."""

    rel_path: str
    format: str
    size: int
    mtime: float
    sha256: str | None
    status: FileStatus
    reason: str | None = None

    @property
    def eligible(self) -> bool:
        return self.status is FileStatus.ELIGIBLE


def format_of(name: str) -> str:
    suffix = os.path.splitext(name)[1].lower()
    return FORMATS.get(suffix, suffix.lstrip(".")[:20] or "none")  # 20: the width of the format columns


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _walk(root: Path) -> Iterator[tuple[Path, FileStatus, str | None]]:
    """Yield ``(path, status, reason)`` for every entry that is not a folder, in a stable order.

    Real files and folders come first; symbolic links after them, so a file reached both
    directly and through a link inside the source is listed under its real path (the link is
    reported as not followed), and a link loop ends at the first folder seen twice.
    """
    root_stat = root.stat()
    seen: set[tuple[int, int]] = {(root_stat.st_dev, root_stat.st_ino)}
    links: list[Path] = []

    def walk_tree(top: Path) -> Iterator[tuple[Path, FileStatus, str | None]]:
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                yield folder, FileStatus.UNREADABLE, f"folder cannot be listed: {exc.strerror or exc}"
                continue
            subfolders = []
            for entry in entries:
                path = Path(entry.path)
                if entry.is_symlink():
                    links.append(path)
                    continue
                try:
                    stat = entry.stat()
                except OSError as exc:
                    yield path, FileStatus.UNREADABLE, f"cannot be read: {exc.strerror or exc}"
                    continue
                seen.add((stat.st_dev, stat.st_ino))
                if entry.is_dir():
                    subfolders.append(path)
                elif entry.is_file():
                    yield path, FileStatus.ELIGIBLE, None
                else:
                    yield path, FileStatus.UNSUPPORTED, "not a regular file"
            stack.extend(reversed(subfolders))

    yield from walk_tree(root)
    while links:
        link = links.pop(0)
        try:
            target = link.resolve()
            if not target.is_relative_to(root):
                yield link, FileStatus.NOT_FOLLOWED, "symbolic link pointing outside the source directory"
                continue
            stat = link.stat()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of links
            yield link, FileStatus.NOT_FOLLOWED, f"broken or looping symbolic link: {exc}"
            continue
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            if not link.is_dir():
                yield link, FileStatus.NOT_FOLLOWED, "link to a file listed already"
            continue
        seen.add(key)
        if link.is_dir():
            yield from walk_tree(link)
        elif link.is_file():
            yield link, FileStatus.ELIGIBLE, None
        else:
            yield link, FileStatus.UNSUPPORTED, "not a regular file"


Fingerprints = Mapping[str, tuple[int, float, str | None]]
"""Known ``rel_path → (size, mtime, sha256)``: a file whose size and mtime match is not read again."""


def describe_file(
    root: Path, path: Path, *, max_file_size: int, skip_large_files: bool = True, known: Fingerprints | None = None, hash_new: bool = True
) -> SourceFile:
    """One regular file under ``root``: its fingerprint and whether it is eligible (without
    ``hash_new``, a file ``known`` does not list is not read: its sha256 is left None)."""
    rel = path.relative_to(root).as_posix()
    fmt = format_of(path.name)
    try:
        stat = path.stat()
        if fmt not in FORMATS.values():
            return SourceFile(rel, fmt, stat.st_size, stat.st_mtime, None, FileStatus.UNSUPPORTED, f"unsupported format '{fmt}'")
        if stat.st_size > max_file_size and skip_large_files:
            reason = f"{stat.st_size} bytes is over max_file_size ({max_file_size})"
            return SourceFile(rel, fmt, stat.st_size, stat.st_mtime, None, FileStatus.TOO_LARGE, reason)
        previous = known.get(rel) if known else None
        if previous and previous[0] == stat.st_size and previous[1] == stat.st_mtime and previous[2]:
            digest = previous[2]  # unchanged size and mtime: trust the fingerprint, do not read
        elif previous is None and not hash_new:
            digest = None
        else:
            digest = file_sha256(path)
    except OSError as exc:
        return SourceFile(rel, fmt, 0, 0.0, None, FileStatus.UNREADABLE, f"cannot be read: {exc.strerror or exc}")
    return SourceFile(rel, fmt, stat.st_size, stat.st_mtime, digest, FileStatus.ELIGIBLE)


def scan_source(
    root: Path, *, max_file_size: int, skip_large_files: bool = True, known: Fingerprints | None = None, hash_new: bool = True
) -> Iterator[SourceFile]:
    """Every file under ``root``, fingerprinted, with its eligibility and the reason if not."""
    root = root.resolve()
    for path, status, problem in _walk(root):
        rel = path.relative_to(root).as_posix()
        if any("\udc80" <= ch <= "\udcff" for ch in rel):  # bytes that are not UTF-8, smuggled in by os.fsdecode
            shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
            yield SourceFile(shown, format_of(shown), 0, 0.0, None, FileStatus.UNREADABLE, "file name is not valid UTF-8; rename it to migrate it")
            continue
        if status is not FileStatus.ELIGIBLE:
            yield SourceFile(path.relative_to(root).as_posix(), format_of(path.name), 0, 0.0, None, status, problem)
            continue
        yield describe_file(root, path, max_file_size=max_file_size, skip_large_files=skip_large_files, known=known, hash_new=hash_new)


def scan_paths(
    root: Path,
    rel_paths: Iterable[str],
    *,
    max_file_size: int,
    skip_large_files: bool = True,
    known: Fingerprints | None = None,
    hash_new: bool = True,
) -> Iterator[SourceFile]:
    """The given files under ``root`` as they are now (a file that is gone is reported missing)."""
    root = root.resolve()
    inside: dict[Path, bool] = {}  # folder → whether it resolves to somewhere under root
    for rel in rel_paths:
        path = root / rel
        fmt = format_of(path.name)
        if path.is_symlink():
            # as in the walk: a link's target inside the source is listed under its real path
            reason = "link to a file listed already" if path.resolve().is_relative_to(root) else "symbolic link pointing outside the source directory"
            yield SourceFile(rel, fmt, 0, 0.0, None, FileStatus.NOT_FOLLOWED, reason)
        elif not path.is_file():
            if _undecodable_name(root, rel):  # planned under its shown name (see scan_source): still there, never migratable
                yield SourceFile(rel, fmt, 0, 0.0, None, FileStatus.UNREADABLE, "file name is not valid UTF-8; rename it to migrate it")
            else:
                yield SourceFile(rel, fmt, 0, 0.0, None, FileStatus.MISSING, "no longer in the source directory")
        elif not _resolves_inside(path.parent, root, inside):  # under a linked folder that leads out
            yield SourceFile(rel, fmt, 0, 0.0, None, FileStatus.NOT_FOLLOWED, "symbolic link pointing outside the source directory")
        else:
            yield describe_file(root, path, max_file_size=max_file_size, skip_large_files=skip_large_files, known=known, hash_new=hash_new)


_SHOWN_BYTE = re.compile(r"\\x([0-9a-f]{2})")


def _undecodable_name(root: Path, shown: str) -> bool:
    """Whether ``shown`` is how ``scan_source`` lists a file whose name is not UTF-8 (each such
    byte as ``\\xNN``), and that file is there."""
    if "\\x" not in shown:
        return False
    raw = _SHOWN_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), shown)  # the bytes back, as os.fsdecode holds them
    return raw != shown and (root / raw).is_file()


def _resolves_inside(folder: Path, root: Path, known: dict[Path, bool]) -> bool:
    """Whether ``folder`` (with every link on its way resolved) is under ``root``; remembered per folder."""
    if folder not in known:
        known[folder] = folder.resolve().is_relative_to(root)
    return known[folder]
