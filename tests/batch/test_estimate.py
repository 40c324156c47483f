"""The plan's time: requests per account and the least wall time each budget allows."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from support import run_cli

from fwprep.batch.admit import BatchPlan
from fwprep.batch.estimate import estimate, human_duration


def test_the_least_time_is_the_requests_at_the_budget() -> None:
    plan = BatchPlan(per_account=Counter(acme=3000, solo=1), waits_per_account=Counter(w=4))
    acme, solo, w = estimate(plan, [10, 6000], check=False)
    assert (acme.account, acme.prepares, acme.check_reads) == ("acme", 3000, None)
    assert acme.least_seconds == {10: 2999 * 6.0, 6000: pytest.approx(29.99)}
    assert solo.least_seconds == {10: 0.0, 6000: 0.0}  # one request goes at once
    assert (w.prepares, w.waits) == (0, 4)


def test_check_adds_its_fewest_reads_to_the_least_time() -> None:
    plan = BatchPlan(per_account=Counter(acme=401))
    (acme,) = estimate(plan, [60], check=True)
    assert acme.check_reads == (3, 401)  # three list pages of 200 at best, one read an item
    assert acme.least_seconds == {60: 403.0}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(18000, "5h00m"), (17994, "5h00m"), (150, "2m30s"), (30, "30s"), (0.4, "0.4s")],
)
def test_human_durations(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "m.csv"
    rows = [f"accounts/acme/models/m{i},fp8" for i in range(3000)] + ["accounts/b/models/x,fp8"]
    path.write_text("model,precision\n" + "\n".join(rows) + "\n")
    return path


def test_the_dry_run_says_how_long_at_the_documented_bounds(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "batch", str(manifest), "--dry-run", "--check", "--wait")
    assert code == 0
    assert "account acme: 3000 prepares, and 15 to 3000 reads (--check)" in out
    # 3000 prepares and the 15 pages --check reads at best, at 10 a minute
    assert "  at least 5h01m at 10 requests a minute (the least budget Fireworks documents)" in out
    assert "  at least 30s at 6000 requests a minute (the most)" in out
    assert "account b: 1 prepare, and 1 read (--check)" in out
    assert "--wait adds the preparations' own time" in out


def test_a_given_rate_is_the_budget_timed(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "batch", str(manifest), "--dry-run", "--max-rps", "10")
    assert code == 0
    assert "at least 5m00s at 600 requests a minute (--max-rps)" in out
    assert "6000 requests a minute" not in out
    code, out, _ = run_cli(capsys, "batch", str(manifest), "--dry-run", "-o", "json")
    data = json.loads(out)
    assert data["accounts"]["acme"]["least_seconds"] == {"10": 17994.0, "6000": 29.99}
    assert data["accounts"]["acme"]["prepares"] == 3000
    assert data["wait_seconds"] is None
