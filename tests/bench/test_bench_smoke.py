"""Every benchmark runs in its smoke mode, so a change that breaks a benchmark breaks the suite.

The smoke runs use tiny sizes: they check that each script still works end to end and prints
its figures, not what the figures are.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"

# script -> a line its report must contain (a figure, so a run that measured nothing fails)
EXPECTED = {
    "append.py": re.compile(r"group commit: \d+ events/s on the loop"),
    "send_text.py": re.compile(r"\d[\d,]* sends/s"),
    "rebuild.py": re.compile(r"rebuild: [\d,]+ events in [\d.]+ s"),
    "webhooks.py": re.compile(r"p99"),
    "http_clients.py": re.compile(r"httpx\s+4 connections: +\d+ req/s"),
}


def test_every_bench_script_has_a_smoke_expectation() -> None:
    scripts = {p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(EXPECTED), "add the new bench script to EXPECTED (and give it --smoke)"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_bench_smoke(script: str, database_url: str) -> None:
    env = {**os.environ, "WAREST_BENCH_DATABASE_URL": database_url}
    run = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert EXPECTED[script].search(run.stdout), run.stdout[-4000:]
