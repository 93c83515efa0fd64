"""`make fuzz` keeps working: every target runs for a couple of seconds from its seeds
and stays clean, and every source.format has a target (a new format needs one)."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT
from tests.fuzz.decoders import TARGETS

SMOKE_SECONDS = 2


def _formats() -> list:
    from job.config.properties import SPEC

    parse = SPEC["source"]["format"].parse
    try:
        parse("\x00 not a format")
    except ValueError as exc:
        return str(exc).split("expected one of ", 1)[1].split(", ")
    raise AssertionError("source.format accepted anything")


def test_every_source_format_has_fuzz_targets():
    covered = {f for t in TARGETS.values() for f in t.formats}
    assert set(_formats()) <= covered, f"formats without a fuzz target: {set(_formats()) - covered}"


def test_every_target_has_seeds():
    for target in TARGETS.values():
        assert target.seeds(), target.name


def test_a_short_fuzz_of_every_target_is_clean(tmp_path):
    report = tmp_path / "fuzz.json"
    result = subprocess.run([sys.executable, "-m", "tests.fuzz.decoders", "--all", "--seconds", str(SMOKE_SECONDS),
                             "--work-dir", str(tmp_path / "work"), "--json", str(report)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60 * len(TARGETS))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    outcomes = {r["target"]: r for r in json.loads(report.read_text())}
    assert set(outcomes) == set(TARGETS)
    for name, outcome in outcomes.items():
        assert outcome["ok"] and outcome["executions"] > 50, (name, outcome)
