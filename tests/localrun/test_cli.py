"""The command: a simulated demo, a user's own CSV, and a clear error for a CSV in the wrong layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.localrun.__main__ import main


def test_demo_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "--stack",
                "dev",
                "--devices",
                "3",
                "--interval",
                "600",
                "--out",
                str(tmp_path),
                "--processes",
                "0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "delivered exactly once" in out
    assert f"results in {tmp_path}" in out
    for name in ("report.md", "report.html", "anomalies.png", "battery.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_own_csv_runs_for_the_given_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "mine.csv"
    csv.write_text(
        "deviceid,timestamp,temperature,humidity,batterylevel,latitude,longitude\n"
        "dev-1,2025-03-04T10:00:00Z,41.5,50,80,1,2\n"
        "dev-1,2025-03-04T10:05:00Z,21.5,50,12,1,2\n"
        "dev-2,not-a-time,21.5,50,80,1,2\n"
    )
    out_dir = tmp_path / "out"
    assert (
        main(
            [
                "--stack",
                "dev",
                "--input",
                str(csv),
                "--date",
                "2025-03-04",
                "--out",
                str(out_dir),
                "--processes",
                "0",
            ]
        )
        == 0
    )
    report = (out_dir / "report.md").read_text()
    assert "2025-03-04" in report
    assert "timestamp:malformed" in report


def test_wrong_header_is_refused_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("id,time,temp\n1,2,3\n")
    assert (
        main(["--stack", "dev", "--input", str(csv), "--out", str(tmp_path / "out"), "--processes", "0"]) == 2
    )
    err = capsys.readouterr().err
    assert "bad.csv" in err
    assert "deviceid,timestamp,temperature" in err
