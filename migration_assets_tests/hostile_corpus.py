"""A corpus of hostile legacy files, each with what a correct migration must do with it.

    write_hostile_corpus(root) -> {relative path: Expect}

Every class of bad input the reliability issue names is here at least once; the tests
migrate it and assert, file by file, the status, the number of records loaded and the reason.
"""

from __future__ import annotations

import codecs
import json
import os
from dataclasses import dataclass
from pathlib import Path

MAX_FILE_SIZE = 200_000  # the tests migrate with this limit


@dataclass(frozen=True)
class Expect:
    status: str  # migrated | skipped | rejected
    loaded: int = 0
    reason: str | None = None  # a substring of the reported reason
    rejected_records: int = 0


def _alias_bomb() -> str:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "---\n" + "\n".join(lines) + "\ntitle: bomb\n---\nbody\n"


def write_hostile_corpus(root: Path, outside: Path) -> dict[str, Expect]:
    files: dict[str, bytes] = {}
    expect: dict[str, Expect] = {}

    def put(rel: str, data: bytes | str, outcome: Expect) -> None:
        files[rel] = data.encode("utf-8") if isinstance(data, str) else data
        expect[rel] = outcome

    put("json/truncated.json", '{"id": 1, "title": "cut o', Expect("rejected", reason="malformed JSON"))
    put("json/deep.json", "[" * 100_000 + "]" * 100_000, Expect("rejected", reason="nested too deeply"))
    put("json/scalar.json", "42", Expect("rejected", reason="top-level JSON value is int"))
    put("json/nan.json", '{"id": "nan1", "title": "t", "content": "c", "metadata": {"score": NaN, "inf": Infinity}}', Expect("migrated", 1))
    put("json/nul.json", '{"id": "nul1", "title": "a\\u0000b", "content": "x\\u0000y", "metadata": {"k\\u0000": "v\\u0000"}}', Expect("migrated", 1))
    put(
        "json/wrong-types.json",
        json.dumps([{"id": "w1", "title": {"a": 1}}, {"id": "w2", "title": "ok"}]),
        Expect("migrated", 1, "wrong field type", 1),
    )
    put(
        "json/nulls.json",
        '{"id": null, "title": null, "content": null}',
        Expect("rejected", reason="neither a title nor content", rejected_records=1),
    )
    put("json/bom.json", codecs.BOM_UTF8 + b'{"id": "bom1", "title": "B"}', Expect("migrated", 1))
    put("json/surrogate.json", '{"id": "sur1", "title": "\\ud800 lone"}', Expect("migrated", 1))
    put(
        "json/bigint.json",
        '{"id": 123456789012345678901234567890, "title": "big", "metadata": {"n": 99999999999999999999999}}',
        Expect("migrated", 1),
    )
    put("json/dupkeys.json", '{"id": "dup1", "title": "first", "title": "second"}', Expect("migrated", 1))
    put("json/path-like-id.json", '{"id": "../../../etc/passwd", "title": "an id is data, never a path"}', Expect("migrated", 1))
    put("csv/ragged.csv", "id,title\n1,a\n2,b,surplus\n", Expect("migrated", 1, "has 3 fields", 1))
    put("csv/huge-field.csv", "id,title,content\nh1,Huge," + "x" * 150_000 + "\n", Expect("migrated", 1))
    put("csv/formula.csv", "id,title\nf1,=SUM(A1:A2)\nf2,@cmd\n", Expect("migrated", 2))
    put("csv/mixed.csv", "id;title;content\nm1;a;b\nm2,b,c\n", Expect("migrated", 1, "has 1 fields", 1))
    put("md/unsafe-tag.md", "---\ntitle: !!python/object/apply:os.system ['touch pwned']\n---\nbody", Expect("rejected", reason="YAML tag"))
    put("md/alias-bomb.md", _alias_bomb(), Expect("rejected", reason="expands to more than"))
    put("md/toml.md", '+++\ntitle = "Toml"\ntags = ["a", "b"]\ndate = 2021-03-04\n+++\nbody text', Expect("migrated", 1))
    put("md/list-frontmatter.md", "---\n- a\n- b\n---\nbody", Expect("rejected", reason="frontmatter is a list"))
    put("md/unclosed.md", "---\ntitle: x\nbody without an end", Expect("rejected", reason="never closed"))
    put("md/yaml11.md", "---\ntitle: no\nid: 012345\ndate: 2020-01-02\ntags: yes, on\n---\nbody", Expect("migrated", 1))
    put("md/long.md", "# Long\n\n" + "\n\n".join(f"Paragraph {i}. " + "Words that go on. " * 40 for i in range(60)), Expect("migrated", 1))
    put("bin/fake.txt", b"\x00\x01\x02binary\x00" * 50, Expect("rejected", reason="binary"))
    put("bin/fake.json", b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)), Expect("rejected", reason="binary"))
    put("enc/utf16.txt", codecs.BOM_UTF16_LE + "Grüße aus Köln".encode("utf-16-le"), Expect("migrated", 1))
    put("enc/cp1252.txt", "“Smart quotes” cost 5 €".encode("cp1252"), Expect("migrated", 1))
    put("enc/latin1.md", "# Café\n\nCrème brûlée".encode("latin-1"), Expect("migrated", 1))
    put("empty/empty.json", "", Expect("rejected", reason="empty file"))
    put("empty/spaces.md", "   \n\t  \n", Expect("rejected", reason="empty file"))
    put("empty/blank.csv", "\n\n", Expect("rejected", reason="empty file"))
    put("names/with space.txt", "space", Expect("migrated", 1))
    put('names/quote"s.txt', "quote", Expect("migrated", 1))
    put("names/new\nline.txt", "newline", Expect("migrated", 1))
    put("names/cafe\u0301.txt", "decomposed", Expect("migrated", 1))
    put("names/caf\u00e9.txt", "composed", Expect("migrated", 1))
    put("names/Case.txt", "upper", Expect("migrated", 1))
    put("names/case.txt", "lower", Expect("migrated", 1))
    put("large/too-big.txt", "y" * (MAX_FILE_SIZE + 1), Expect("skipped", reason="over max_file_size"))
    put("other/page.html", "<html></html>", Expect("skipped", reason="unsupported format"))
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.txt").write_text("outside the source")
    (root / "links").mkdir()
    os.symlink(outside / "secret.txt", root / "links" / "outside.txt")
    expect["links/outside.txt"] = Expect("skipped", reason="outside the source directory")
    os.symlink(root / "names" / "Case.txt", root / "links" / "inside.txt")  # the real path wins
    expect["links/inside.txt"] = Expect("skipped", reason="listed already")
    os.symlink(root, root / "links" / "loop")
    return expect
