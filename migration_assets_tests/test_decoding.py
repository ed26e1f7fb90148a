import codecs

import pytest

from migration_assets.sources.decoding import BinaryContent, decode_bytes


def test_utf8_without_bom():
    assert decode_bytes("Café 東京".encode()) == ("Café 東京", "utf-8")


def test_utf8_bom_is_stripped():
    assert decode_bytes(codecs.BOM_UTF8 + "naïve".encode()) == ("naïve", "utf-8-sig")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom(encoding):
    bom = codecs.BOM_UTF16_LE if encoding.endswith("le") else codecs.BOM_UTF16_BE
    text, used = decode_bytes(bom + "façade données".encode(encoding))
    assert (text, used) == ("façade données", "utf-16")


def test_cp1252_curly_quotes_and_euro():
    text, used = decode_bytes("“price” 5 €".encode("cp1252"))
    assert (text, used) == ("“price” 5 €", "cp1252")


def test_latin1_bytes_undefined_in_cp1252_still_decode():
    text, used = decode_bytes(b"caf\xe9 \x81")
    assert used == "latin-1" and text.startswith("café")


def test_binary_is_refused_not_garbled():
    with pytest.raises(BinaryContent):
        decode_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
