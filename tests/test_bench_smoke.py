"""The load generator runs end to end: a few seconds of tiny load produce a report with
nothing lost, duplicated or failed. Speed is the benchmark's business, not the tests'."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def test_bench_smoke_run_reports_no_loss_duplicates_or_errors(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    [report] = tmp_path.glob("*.json")
    assert list(tmp_path.glob("*.md"))
    results = json.loads(report.read_text())["results"]

    [chat] = results["chat"]["current"]
    assert chat["connect_error_count"] == 0
    phase = chat["phase"]
    assert phase["messages_sent"] > 0
    assert phase["messages_acked"] == phase["messages_sent"]
    assert (phase["lost"], phase["duplicated"], phase["errors"]) == (0, 0, 0)
    # Both directions are measured, and from the scheduled send time.
    assert phase["e2e_ms_customer_to_agent"]["n"] > 0
    assert phase["e2e_ms_agent_to_customer"]["n"] > 0
    assert phase["cpu_s_per_1000_msgs"]["all"] > 0

    [idle] = results["idle"]["current"]
    assert idle["held"] == idle["connections"]
    assert idle["errors"] == 0

    [rest] = results["rest"]["current"]
    for figures in (rest["history"], rest["session_create"], rest["login"]):
        assert figures["requests"] > 0
        assert figures["errors"] == 0
