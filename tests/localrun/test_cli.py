"""The command: a simulated demo, a user's own CSV, and one clear line for everything it refuses.

A refused or interrupted run leaves the previous result in place; two runs never share a folder at once.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from tools.localrun import __main__ as cli
from tools.localrun import report
from tools.localrun.__main__ import main
from tools.localrun.run import RunSummary

HEADER = "deviceid,timestamp,temperature,humidity,batterylevel,latitude,longitude\n"
SMALL = ["--stack", "dev", "--devices", "3", "--interval", "600", "--processes", "0"]


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output folder holding one complete run."""
    out = tmp_path_factory.mktemp("out")
    assert main([*SMALL, "--out", str(out)]) == 0
    return out


def snapshot(out: Path) -> tuple[Path, list[str]]:
    """Where latest points and every file of that run."""
    target = (out / "latest").resolve()
    return target, sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())


def test_demo_writes_the_report(previous: Path, capsys: pytest.CaptureFixture[str]) -> None:
    latest = previous / "latest"
    assert latest.is_symlink()
    assert latest.resolve().parent == previous / "runs"
    for name in ("report.md", "report.html", "anomalies.png", "battery.png"):
        assert (latest / name).stat().st_size > 0
    records = list((latest / "run" / "buckets").glob("*analytics*/analysis/**/*.gz"))
    assert records, "no analysis records under latest/run/buckets"


def test_demo_prints_where_the_results_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SMALL, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "delivered exactly once" in out
    assert f"results in {tmp_path / 'latest'}" in out
    assert "readings: about" in out  # the size estimate, before starting


def test_own_csv_runs_for_the_given_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "mine.csv"
    csv.write_text(
        HEADER + "dev-1,2025-03-04T10:00:00Z,41.5,50,80,1,2\n"
        "dev-1,2025-03-04T10:05:00Z,21.5,50,12,1,2\n"
        "dev-2,not-a-time,21.5,50,80,1,2\n"
    )
    out_dir = tmp_path / "out"
    argv = ["--stack", "dev", "--input", str(csv), "--date", "2025-03-04", "--out", str(out_dir)]
    assert main([*argv, "--processes", "0"]) == 0
    text = (out_dir / "latest" / "report.md").read_text()
    assert "2025-03-04" in text
    assert "timestamp:malformed" in text


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ("id,time,temp\n", "missing column(s) deviceid, timestamp, temperature"),
        (HEADER.replace("humidity", "humid"), "missing column(s) humidity; unexpected column(s) 'humid'"),
        (HEADER.strip() + ",extra\n", "unexpected column(s) 'extra'"),
        (HEADER.replace("deviceid,timestamp", "timestamp,deviceid"), "the right columns in another order"),
    ],
)
def test_a_wrong_header_names_the_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str, named: str
) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(header + "1,2,3\n")
    assert main(["--stack", "dev", "--input", str(csv), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err
    assert named in err
    assert "deviceid,timestamp,temperature" in err
    assert not (tmp_path / "out").exists(), "a refused input touched the output folder"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--date", "2025-02-30"], "'2025-02-30': not a real date"),
        (["--date", "../../x"], "'../../x': expected a day as YYYY-MM-DD"),
        (["--start", "20250601"], "expected a day as YYYY-MM-DD"),
        (["--processes", "-1"], "argument --processes: -1: expected 0 or more"),
        (["--devices", "0"], "argument --devices: 0: expected 1 or more"),
        (["--days", "two"], "argument --days: 'two': expected a whole number"),
    ],
)
def test_a_bad_argument_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], named: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--stack", "dev", *argv])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert named in err
    assert len(err.strip().splitlines()) == 1, err


def test_a_missing_stack_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "prdo", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no stack 'prdo'" in err
    assert "did you mean prod?" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--input", "missing.csv"],
        ["--devices", "0"],
        ["--date", "2025-02-30"],
        ["--interval", "7"],  # not a divisor of a day: the simulator refuses it
        ["--devices", "100000", "--days", "366"],  # 10.5 billion readings
    ],
)
def test_a_refused_run_keeps_the_previous_result(
    previous: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    before = snapshot(previous)
    runs = sorted((previous / "runs").iterdir())
    try:
        status = main(["--stack", "dev", "--out", str(previous), "--processes", "0", *argv])
    except SystemExit as exc:  # argparse refusals
        status = exc.code
    assert status == 2
    assert snapshot(previous) == before
    assert sorted((previous / "runs").iterdir()) == runs, "a refused run left a folder behind"


def test_an_interrupted_run_keeps_the_previous_result(
    previous: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(previous)
    runs = sorted((previous / "runs").iterdir())

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.LocalPipeline, "execute", interrupted)
    assert main([*SMALL, "--out", str(previous)]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"localrun: interrupted; {previous / 'latest'} still holds the previous run"
    ]
    assert snapshot(previous) == before
    assert sorted((previous / "runs").iterdir()) == runs


def test_a_second_run_on_the_same_folder_is_refused(
    previous: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(previous)
    with (previous / ".lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running run holds it
        assert main([*SMALL, "--out", str(previous)]) == 2
    assert f"another run is using {previous}" in capsys.readouterr().err
    assert snapshot(previous) == before


def test_only_the_last_runs_are_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(cli.KEEP_RUNS + 1):
        assert main([*SMALL, "--devices", "1", "--out", str(tmp_path)]) == 0
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == cli.KEEP_RUNS
    assert (tmp_path / "latest").resolve() == runs[-1]


def test_the_size_estimate_refuses_what_memory_cannot_hold() -> None:
    readings = 100_000 * 366 * 288
    with pytest.raises(cli.Refused) as caught:
        cli.check_size(readings, memory=24 * 2**30)
    text = str(caught.value)
    assert "10,540,800,000 readings" in text
    assert "holds at most 14,2" in text  # 12 GiB at ~907 bytes a reading
    assert "--force" in text
    assert "readings: about" in cli.check_size(readings, memory=24 * 2**30, force=True)
    assert "readings: about" in cli.check_size(1_000_000, memory=24 * 2**30)


def test_a_failure_names_the_state_that_failed_not_only_its_fail_state() -> None:
    run = RunSummary(
        run_date="2025-06-01",
        execution_id="x",
        status="FAILED",
        error="Athena.InvalidRequestException",
        cause="bad query",
        failed_state="ExportFailed",
        output=None,
        history=[
            ("t0", "PrepareRun", "Pass"),
            ("t1", "CheckRunDate", "Choice"),
            ("t2", "ExportDay", "Task"),
            ("t3", "ExportFailed", "Fail"),
        ],
    )
    assert report.failure_line(run) == (
        "failed in ExportDay → ExportFailed: Athena.InvalidRequestException: bad query"
    )
    uncaught = RunSummary("d", "x", "FAILED", "States.Timeout", "late", "ExportDay", None)
    assert report.failure_line(uncaught) == "failed in ExportDay: States.Timeout: late"
