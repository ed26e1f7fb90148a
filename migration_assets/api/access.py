"""Who may use the API, and where its requests may point: bearer tokens with roles, compared in
constant time; the folders a request's paths must lie under. Plain Python, read from the
environment when the server starts.

- ``MIGRATION_API_TOKEN``: one token, named ``admin``, of role ``admin``.
- ``MIGRATION_API_TOKENS_FILE``: a TOML, YAML or JSON file of named tokens, each stored as its
  sha256, never itself::

      [[tokens]]
      name = "ci"
      role = "viewer"      # admin | viewer
      sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

  ``python -m migration_assets.api hash-token`` prints the sha256 of a token read from stdin.
- ``MIGRATION_ALLOWED_ROOTS``: the folders (separated by ``:``) that source, backup, rules,
  export and import paths must lie under, symbolic links resolved; unset, the server's working
  directory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROLES = ("admin", "viewer")


class AccessConfigError(ValueError):
    """A tokens file or an environment setting the server cannot start with."""


class PathNotAllowed(ValueError):
    """A path in a request that does not lie under an allowed root (or is no path at all)."""


@dataclass(frozen=True)
class Caller:
    """Who made a request: the token's name and role."""

    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Token:
    name: str
    role: str
    sha256: bytes


def token_digest(token: str) -> str:
    """What a tokens file keeps of a token: its sha256, in hex. Tokens are long random strings,
    so a fast hash is enough; the token itself is never stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _read_tokens_file(path: Path) -> list[Token]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AccessConfigError(f"the tokens file {path} cannot be read: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".toml":
            document: Any = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            document = yaml.safe_load(text)
        else:
            document = json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise AccessConfigError(f"the tokens file {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {str(exc).splitlines()[0]}") from None
    entries = document.get("tokens") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise AccessConfigError(f"the tokens file {path} needs a list of tokens (a [[tokens]] table each: name, role, sha256)")
    tokens = []
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise AccessConfigError(f"{path}: token {n} is not a table of name, role and sha256")
        name, role, digest = entry.get("name"), entry.get("role"), str(entry.get("sha256", "")).lower()
        if not isinstance(name, str) or not name.strip():
            raise AccessConfigError(f"{path}: token {n} has no name")
        if role not in ROLES:
            raise AccessConfigError(f"{path}: token {name!r} has role {role!r}; a role is one of {', '.join(ROLES)}")
        if "token" in entry:
            raise AccessConfigError(f"{path}: token {name!r} is written in clear; keep only its sha256 (python -m migration_assets.api hash-token)")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise AccessConfigError(f"{path}: token {name!r} needs sha256, the 64 hex digits of the token's sha256")
        tokens.append(Token(name.strip(), role, bytes.fromhex(digest)))
    names = [t.name for t in tokens]
    if len(set(names)) != len(names):
        raise AccessConfigError(f"{path}: two tokens have the same name")
    return tokens


@dataclass
class Access:
    """The tokens the server accepts and the roots its paths must lie under."""

    tokens: list[Token] = field(default_factory=list)
    allowed_roots: list[Path] = field(default_factory=list)
    insecure_local: bool = False  # no tokens at all: every request is the local admin (loopback only)

    @classmethod
    def from_env(cls, *, insecure_local: bool = False, environ: dict[str, str] | None = None) -> Access:
        env = os.environ if environ is None else environ
        tokens: list[Token] = []
        if env.get("MIGRATION_API_TOKEN"):
            tokens.append(Token("admin", "admin", hashlib.sha256(env["MIGRATION_API_TOKEN"].encode("utf-8")).digest()))
        if env.get("MIGRATION_API_TOKENS_FILE"):
            tokens += _read_tokens_file(Path(env["MIGRATION_API_TOKENS_FILE"]).expanduser())
        if not tokens and not insecure_local:
            raise AccessConfigError(
                "no API token is configured: set MIGRATION_API_TOKEN (or MIGRATION_API_TOKENS_FILE), "
                "or start with --insecure-local to serve loopback only without tokens"
            )
        roots = [Path(p).expanduser().resolve() for p in (env.get("MIGRATION_ALLOWED_ROOTS") or "").split(os.pathsep) if p.strip()]
        return cls(tokens, roots or [Path.cwd().resolve()], insecure_local=insecure_local and not tokens)

    def caller(self, token: str | None) -> Caller | None:
        """The caller a bearer token names, or None. Every known token is compared, each in
        constant time, so the time taken says nothing of which came close."""
        if self.insecure_local:
            return Caller("insecure-local", "admin")
        if not token:
            return None
        offered = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found = None
        for known in self.tokens:
            if hmac.compare_digest(offered, known.sha256):
                found = known
        return Caller(found.name, found.role) if found else None

    def allowed_path(self, value: str) -> Path:
        """``value`` resolved (symbolic links followed), when it lies under an allowed root."""
        if not isinstance(value, str) or not value.strip() or "\x00" in value:
            raise PathNotAllowed(f"{value!r} is not a usable path")
        path = Path(value).expanduser()
        if not path.is_absolute():
            raise PathNotAllowed(f"{value!r} is not an absolute path")
        try:
            resolved = path.resolve()
        except (ValueError, OSError, RuntimeError):
            raise PathNotAllowed(f"{value!r} is not a usable path") from None
        if not self._allowed(resolved):
            raise PathNotAllowed(f"{resolved} is not under an allowed root ({self._roots()}; set by MIGRATION_ALLOWED_ROOTS)")
        escape = self._link_out(resolved)
        if escape is not None:
            raise PathNotAllowed(f"{escape} inside {resolved} is a symbolic link out of the allowed roots ({self._roots()})")
        return resolved

    def _allowed(self, path: Path) -> bool:
        return any(path == root or path.is_relative_to(root) for root in self.allowed_roots)

    def _roots(self) -> str:
        return ", ".join(str(r) for r in self.allowed_roots)

    def _link_out(self, folder: Path, most: int = 50_000) -> Path | None:
        """The first symbolic link under ``folder`` that leads out of the allowed roots: the server
        would read or write through it (an export's file, a backup's ``reports`` folder)."""
        if not folder.is_dir():
            return None
        seen = 0
        for top, dirs, files in os.walk(folder, followlinks=False):
            for name in dirs + files:
                seen += 1
                entry = Path(top) / name
                if entry.is_symlink():
                    try:
                        target = entry.resolve()
                    except (OSError, RuntimeError):
                        continue  # a loop leads nowhere (a dangling link resolves, and is judged)
                    if not self._allowed(target):
                        return entry
            if seen > most:
                return None  # a tree this large is a content store, whose discovery follows no link anyway
        return None
