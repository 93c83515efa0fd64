"""Ion Hash (connectors/formats/ion_hash.py) against the specification's published test
vectors (a subset in tests/unit/data/ion_hash_vectors.ion), read the way exports are read."""
from __future__ import annotations

import hashlib
import os

import pytest
from amazon.ion import simpleion

from connectors.formats.ion_hash import IonHashError, ion_hash, serialize

VECTORS = os.path.join(os.path.dirname(__file__), "data", "ion_hash_vectors.ion")
IVM = bytes([0xE0, 0x01, 0x00, 0xEA])
HASHES = {"identity": lambda data: data, "md5": lambda data: hashlib.md5(data).digest()}


def _vectors() -> list:
    out = []
    for test in simpleion.loads(open(VECTORS, "rb").read(), single_value=False):
        if "ion" in test:
            source = simpleion.dumps(test["ion"], binary=True)  # as an export holds it: binary Ion
            name = simpleion.dumps(test["ion"], binary=False, omit_version_marker=True)
        else:
            source = IVM + bytes(test["10n"])
            name = "10n:" + bytes(test["10n"]).hex(" ")
        if test.ion_annotations:
            name = test.ion_annotations[0].text
        for algorithm, expected in test["expect"].items():
            digests = [bytes(s) for s in expected if s.ion_annotations[0].text in ("digest", "final_digest")]
            out.append(pytest.param(source, algorithm, digests[-1], id=f"{algorithm}:{name[:60]}"))
    return out


@pytest.mark.parametrize("source, algorithm, expected", _vectors())
def test_spec_vector(source, algorithm, expected):
    value = simpleion.loads(source, single_value=True)
    assert ion_hash(value, HASHES[algorithm]).hex(" ") == expected.hex(" ")


def test_vectors_cover_every_ion_type():
    kinds = set()
    for test in simpleion.loads(open(VECTORS, "rb").read(), single_value=False):
        if "ion" in test:
            value = test["ion"]
            kinds.add("annotated" if getattr(value, "ion_annotations", ()) else value.ion_type.name)
    assert kinds >= {"NULL", "BOOL", "INT", "FLOAT", "DECIMAL", "TIMESTAMP", "SYMBOL", "STRING", "CLOB", "BLOB",
                     "LIST", "SEXP", "STRUCT", "annotated"}


def test_sha256_is_the_default_and_hashes_the_serialized_bytes():
    # s("hello") = B, TQ 0x80 (string), the UTF-8, E
    assert ion_hash(simpleion.loads('"hello"')) == hashlib.sha256(b"\x0b\x80hello\x0e").digest()


def test_struct_field_order_does_not_matter_but_names_do():
    a = simpleion.loads("{id: \"x\", version: 3}")
    b = simpleion.loads("{version: 3, id: \"x\"}")
    c = simpleion.loads("{version: 3, ID: \"x\"}")
    assert ion_hash(a) == ion_hash(b) != ion_hash(c)


def test_text_and_binary_give_the_same_hash():
    text = ('{data: {amount: 12.30, when: 2024-05-06T07:08:09.120+02:00, kind: car, photo: {{AAEC}}, '
            'n: -12345678901234567890, f: 1.5e0, z: 0e0, tags: ["a", b], nested: {a: null.int}}}')
    from_text = simpleion.loads(text)
    from_binary = simpleion.loads(simpleion.dumps(from_text, binary=True))
    assert ion_hash(from_text) == ion_hash(from_binary)


def test_types_precision_and_offsets_change_the_hash():
    def h(text):
        return ion_hash(simpleion.loads(text))
    assert h('"car"') != h("car")  # string vs symbol
    assert h("1.0") != h("1.00")  # decimal precision
    assert h("2024-05-06T07:08:09Z") != h("2024-05-06T07:08:09.000Z")
    assert h("2024-05-06T07:08:09Z") != h("2024-05-06T09:08:09+02:00")  # same instant, another offset
    assert h("[1, 2]") != h("(1 2)")


def test_symbol_without_text_is_an_error_naming_it():
    from amazon.ion.simple_types import IonPySymbol
    from amazon.ion.core import IonType
    from amazon.ion.symbols import SymbolToken

    value = IonPySymbol.from_value(IonType.SYMBOL, SymbolToken(None, 12))
    with pytest.raises(IonHashError, match=r"\$12 has unknown text"):
        serialize(value)
