"""Every row of the Ion -> JSON mapping table (README "How Ion values land in MySQL"),
from Ion text and from binary Ion, as QLDB writes it."""
import decimal
import json

import pytest
from amazon.ion import simpleion
from hypothesis import given, strategies as st

from connectors.formats.ion_json import INT64_MAX, INT64_MIN, IonMappingError, ion_to_json

NULL_TYPES = ("null", "bool", "int", "float", "decimal", "timestamp", "string", "symbol", "blob", "clob",
              "list", "sexp", "struct")


def mapped(ion_text: str, **kw):
    """The mapping of a value read from Ion text, checked to be the same from binary Ion."""
    value = simpleion.loads(ion_text, single_value=True)
    from_text = ion_to_json(value, **kw)
    binary = simpleion.loads(simpleion.dumps(value, binary=True), single_value=True)
    assert ion_to_json(binary, **kw) == from_text or from_text != from_text  # nan is not equal to itself
    return from_text


@pytest.mark.parametrize("ion, expected", [
    # null and every typed null
    *[(f"null.{t}" if t != "null" else "null", None) for t in NULL_TYPES],
    # bool
    ("true", True), ("false", False),
    # int: 64-bit as numbers, beyond as exact digit strings
    ("0", 0), ("-17", -17), (str(INT64_MAX), INT64_MAX), (str(INT64_MIN), INT64_MIN),
    (str(INT64_MAX + 1), str(INT64_MAX + 1)), (str(INT64_MIN - 1), str(INT64_MIN - 1)),
    ("0x7f", 127), ("0b101", 5), ("1_000_000", 1000000),
    ("1180591620717411303424", "1180591620717411303424"),
    # decimal: exact text, trailing zeros and sign kept, plain notation
    ("1.10", "1.10"), ("-0.5", "-0.5"), ("-0.", "-0"), ("0.", "0"), ("1.2d5", "120000"),
    ("123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"),
    ("0.000001", "0.000001"), ("1d-7", "0.0000001"), ("1d300", "1E+300"), ("2.5d-200", "2.5E-200"),
    # float: numbers; nan and infinities as strings
    ("1.5e0", 1.5), ("-0e0", -0.0), ("1e300", 1e300), ("nan", "nan"), ("+inf", "+inf"), ("-inf", "-inf"),
    # timestamp: Ion text, precision and offset kept
    ("2007T", "2007T"), ("2007-02T", "2007-02T"), ("2007-02-23", "2007-02-23"),
    ("2007-02-23T12:14Z", "2007-02-23T12:14Z"),
    ("2007-02-23T12:14:33-00:00", "2007-02-23T12:14:33-00:00"),
    ("2007-02-23T12:14:33.079-08:00", "2007-02-23T12:14:33.079-08:00"),
    ("2007-02-23T12:14:33.000Z", "2007-02-23T12:14:33.000Z"),
    ("2007-02-23T12:14:33.123456789+05:30", "2007-02-23T12:14:33.123456789+05:30"),
    # string, symbol
    ('"hello"', "hello"), ('"Zürich \\u00e9 \\U0001F600"', "Zürich é \U0001F600"), ('"a\\0b"', "a\x00b"),
    ("'a symbol'", "a symbol"), ("plain_symbol", "plain_symbol"),
    # blob, clob: base64
    ("{{aGVsbG8=}}", "aGVsbG8="), ('{{"hello"}}', "aGVsbG8="), ("{{}}", ""),
    # list, sexp
    ("[1, 2.5, \"x\", null]", [1, "2.5", "x", None]), ("(a + 1)", ["a", "+", 1]), ("[]", []),
    # struct, nested; a repeated field name: the last value wins
    ("{a: 1, b: {c: [true]}}", {"a": 1, "b": {"c": [True]}}), ("{a: 1, a: 2}", {"a": 2}),
    ("{'odd name': 1, \"\": 2}", {"odd name": 1, "": 2}),
    # annotations: dropped, at every level
    ("x::y::{a: z::1, t: when::2007T, s: s::\"v\"}", {"a": 1, "t": "2007T", "s": "v"}),
])
def test_mapping_table(ion, expected):
    result = mapped(ion)
    assert result == expected or (isinstance(expected, float) and str(result) == str(expected))
    assert type(result) is type(expected)
    json.dumps(result, allow_nan=False)  # always valid JSON


def test_float_negative_zero_keeps_its_sign():
    assert str(mapped("-0e0")) == "-0.0"


def test_symbol_with_unknown_text_is_an_error_naming_where():
    with pytest.raises(IonMappingError, match=r"\$\.a\[1\]: symbol with unknown text"):
        mapped("{a: [1, $0]}")


def test_field_name_with_unknown_text_is_an_error():
    with pytest.raises(IonMappingError, match="field name with unknown text"):
        mapped("{$0: 1}")


def test_depth_limit_counts_structs_and_lists():
    assert mapped("{a: [{b: 1}]}", max_depth=3) == {"a": [{"b": 1}]}
    with pytest.raises(IonMappingError, match=r"\$\.a\[0\]: nested more than 2 structs/lists deep"):
        mapped("{a: [{b: 1}]}", max_depth=2)


def test_very_deep_value_fails_cleanly_with_a_short_path():
    deep = "[" * 500 + "]" * 500
    with pytest.raises(IonMappingError) as info:
        mapped(deep, max_depth=31)
    assert "nested more than 31" in str(info.value) and len(str(info.value)) < 200


def test_integer_too_long_for_text_is_an_error():
    huge = 10 ** 5000  # beyond Python's int -> str digit limit
    with pytest.raises(IonMappingError, match="too long to write as text"):
        ion_to_json({"n": huge})


def test_plain_python_values_map_like_ion_ones():
    assert ion_to_json({"d": decimal.Decimal("1.10"), "b": True, "i": 2 ** 70, "t": (1, "x")}) == \
        {"d": "1.10", "b": True, "i": str(2 ** 70), "t": [1, "x"]}


@given(st.integers())
def test_any_int_maps_exactly(number):
    result = mapped(str(number))
    assert (result == number) if INT64_MIN <= number <= INT64_MAX else (result == str(number))


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_any_decimal_maps_to_exact_text(number):
    value = simpleion.loads(simpleion.dumps(number, binary=True), single_value=True)
    text = ion_to_json(value)
    assert isinstance(text, str) and decimal.Decimal(text) == number


@given(st.floats(allow_nan=False))
def test_any_float_maps_to_the_same_double(number):
    result = mapped(simpleion.dumps(number, binary=False, omit_version_marker=True))
    assert result == number or result in ("+inf", "-inf")
