"""The property table (docs/properties.md) and `ledgersync properties` list exactly the keys the code knows."""
from __future__ import annotations

import os
import re

from job.cli.main import main
from job.config.properties import REQUIRED, SPEC

PROPERTIES_DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "properties.md")


def _readme_property_names() -> set:
    with open(PROPERTIES_DOC, encoding="utf-8") as handle:
        text = handle.read()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    names = set()
    for row in rows:
        first_cell = row.split("|")[1]
        names.update(re.findall(r"`([a-z]+\.[a-z0-9.]+)`", first_cell))
    return names


def _spec_names() -> set:
    return {f"{group}.{key}" for group, keys in SPEC.items() for key in keys}


def test_every_property_is_in_the_readme_table():
    missing = _spec_names() - _readme_property_names()
    assert not missing, f"docs/properties.md's table lacks: {sorted(missing)}"


def test_the_readme_table_names_no_property_the_code_does_not_know():
    stale = _readme_property_names() - _spec_names()
    assert not stale, f"docs/properties.md's table names unknown keys: {sorted(stale)}"


def test_every_property_has_a_description():
    for group, keys in SPEC.items():
        for key, spec in keys.items():
            assert spec.description.strip(), f"{group}.{key}"


def test_ledgersync_properties_prints_every_key_with_its_default(capsys):
    assert main(["properties"]) == 0
    out = capsys.readouterr().out
    for group, keys in SPEC.items():
        assert f"[{group}]" in out
        for key, spec in keys.items():
            line = next(l for l in out.splitlines() if l.strip().startswith(f"{group}.{key} = "))
            if spec.default is REQUIRED:
                assert line.endswith("= required"), line
    assert "sink.batch.interval.ms = 200" in out and "replication.history = false" in out
