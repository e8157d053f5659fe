"""The README's commands work as written: each is taken from the README itself and run, dry-run or skipped.

Every command in a ``sh`` block and every inline ``make ...`` of the README is listed here with what this
test does with it, so a command added to the README without a decision fails the test, and a command the
README changes is run as it now reads. ``make`` commands run in a copy of the working tree (so the
suite's own build/ and out/ are left alone) with the installed dependencies linked in; the ones too slow
or too outward-facing to run are checked with ``make -n`` (the target exists and runs what it should).
``pulumi`` and ``aws`` need an engine and an account: their outputs and files are checked against the
program, and the start-execution line runs in bash with stand-ins that print the arguments they got.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tools import harness

ROOT = harness.ROOT
README = ROOT / "README.md"
# Placeholders the README writes in angle brackets, and what the test puts there.
PLACEHOLDERS = {"<path>": "build/dev/definition.asl.json", "<stage>": "dev", "<n>": "1000000"}

RUN = "run"  # run for real in the copy; exit status 0 and the output checked
DRY = "dry-run"  # make -n: the target exists and its commands are what the README says
SKIP = "skip"  # not run here, for the reason given

# Every command the README shows, with what happens to it here and why.
DECISIONS: dict[str, tuple[str, str]] = {
    "make help": (RUN, "lists the targets"),
    "make synth": (RUN, "renders dev and prod into build/"),
    "make tune STACK=prod ROWS=100000000": (RUN, "plans a day (arithmetic, constant time)"),
    "make tune STACK=dev": (RUN, "plans a day at the default ROWS"),
    "make demo": (RUN, "the local pipeline on a generated day (5,760 readings)"),
    "make policy STACK=dev": (DRY, "the offline gate; make test and tests/policies run it"),
    "make policy STACK=prod": (DRY, "the offline gate; make test and tests/policies run it"),
    "make demo STACK=prod DEVICES=200 DAYS=2": (DRY, "115,200 readings: make demo above runs the target"),
    "make demo DEVICES=3472": (DRY, "a million readings, minutes: the README gives its measured figures"),
    "make demo INPUT=my-readings.csv": (DRY, "the user's own file; tests/localrun runs --input"),
    'make demo INPUT=readings.csv ARGS="--date 2025-06-01"': (DRY, "the user's own file"),
    "make bench": (DRY, "minutes of CPU; its figures are in the README"),
    "make test": (SKIP, "runs this very suite"),
    "make setup": (DRY, "installs every dependency (network); the copy links the installed ones"),
    "pulumi stack select dev": (SKIP, "needs the Pulumi engine and a backend"),
    "pulumi preview --policy-pack policies --policy-pack-config policies/config/dev.json": (SKIP, "engine"),
    "pulumi up      --policy-pack policies --policy-pack-config policies/config/dev.json": (SKIP, "engine"),
    'aws stepfunctions start-execution --state-machine-arn "$(pulumi stack output stateMachineArn)" '
    '--input \'{"runDate": "2026-11-20"}\'': (SKIP, "needs an account: run in bash with stand-ins below"),
}


def readme_commands(text: str) -> list[str]:
    """Commands of the README's ``sh`` blocks (continuations joined, comments dropped) and inline makes."""
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", "", block)
        for raw in joined.splitlines():
            line = re.split(r"\s+#\s", raw, maxsplit=1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    commands += re.findall(r"`(make [^`]+)`", text)
    out = []
    for written in commands:
        command = written
        for placeholder, value in PLACEHOLDERS.items():
            command = command.replace(placeholder, value)
        if command not in out:
            out.append(command)
    return out


COMMANDS = readme_commands(README.read_text())


def test_every_readme_command_has_a_decision() -> None:
    assert len(COMMANDS) > 10
    undecided = [c for c in COMMANDS if c not in DECISIONS]
    assert not undecided, f"README commands without a decision in this test: {undecided}"
    gone = [c for c in DECISIONS if c not in COMMANDS]
    assert not gone, f"decisions for commands the README no longer shows: {gone}"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the working tree with the installed dependencies linked in, as a clone after make setup."""
    copy = tmp_path_factory.mktemp("readme") / "sensorflow"
    skipped = {".git", ".venv", "node_modules", "build", "out", ".pytest_cache", ".ruff_cache", ".hypothesis"}
    shutil.copytree(
        ROOT,
        copy,
        symlinks=True,
        ignore=lambda d, names: [n for n in names if n in skipped or n == "__pycache__"],
    )
    for link in (".venv", "node_modules", "policies/.venv"):
        target = copy / link
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to((ROOT / link).resolve())
    shutil.copytree(ROOT / "build" / "lambda", copy / "build" / "lambda")  # keeps the package's mtimes
    stamps = [".venv/.installed", "policies/.venv/.installed", "node_modules/.installed"]
    stamps.append("build/lambda/.packaged")
    current = subprocess.run(["make", "-q", *stamps], check=False, cwd=copy, capture_output=True)
    if current.returncode != 0:
        pytest.fail("the installed dependencies are not current here: run make setup first")
    return copy


def make(tree: Path, command: str, *, dry: bool = False, timeout: int = 600) -> subprocess.CompletedProcess:
    words = command.split(" ", 1)
    args = f"make -n {words[1]}" if dry else command
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    return subprocess.run(
        ["bash", "-c", args], check=False, cwd=tree, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_readme_make_commands_run(tree: Path) -> None:
    # One test, in the README's order of need (synth before check-definition), in one copy.
    ran = [c for c, (what, _why) in DECISIONS.items() if what == RUN]
    assert ran
    for command in ran:
        result = make(tree, command)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        if command == "make help":
            for target in ("synth", "demo", "tune", "policy", "clean", "distclean"):
                assert f"make {target} " in result.stdout
        if command == "make synth":
            assert (tree / "build" / "dev" / "definition.asl.json").is_file()
            assert (tree / "build" / "prod" / "definition.asl.json").is_file()
        if command == "make demo":
            assert "SUCCEEDED" in result.stdout
            assert "ground truth: all 5,760 readings delivered exactly once" in result.stdout
            assert "whole command" in result.stdout
            assert (tree / "out" / "dev" / "latest" / "report.md").is_file()
        if command.startswith("make tune"):
            assert "wall time" in result.stdout.lower(), result.stdout


@pytest.mark.parametrize("command", [c for c, (what, _why) in DECISIONS.items() if what == DRY])
def test_readme_make_command_is_a_target_that_runs_what_it_says(tree: Path, command: str) -> None:
    result = make(tree, command, dry=True)
    assert result.returncode == 0, f"make -n {command}\n{result.stderr[-2000:]}"
    commands = result.stdout
    expected = {
        "make policy STACK=dev": "-m tools.policy_gate --stack dev",
        "make policy STACK=prod": "-m tools.policy_gate --stack prod",
        "make demo STACK=prod DEVICES=200 DAYS=2": "-m tools.localrun --stack prod --devices 200 --days 2",
        "make demo INPUT=my-readings.csv": "--input my-readings.csv",
        'make demo INPUT=readings.csv ARGS="--date 2025-06-01"': "--input readings.csv --date 2025-06-01",
        "make demo DEVICES=3472": "-m tools.localrun --stack dev --devices 3472",
        "make bench": "-m benchmarks.run",
    }.get(command)
    if expected is not None:
        assert expected in commands, commands
    for argument in re.findall(r'ARGS="([^"]+)"', command):
        assert argument in commands, commands  # what ARGS passes reaches the command
    if command.startswith("make demo STACK=prod"):
        assert "-m tools.synth --stack dev --stack prod" in commands  # renders the stack it runs


def test_make_demo_renders_the_stack_it_runs(tree: Path) -> None:
    # A stack other than the committed two: synth renders it too, and refuses it without a stack file.
    result = make(tree, "make demo STACK=qa", dry=True)
    assert result.returncode == 0, result.stderr
    assert "-m tools.synth --stack dev --stack prod --stack qa" in result.stdout
    assert "build/qa/definition.asl.json" in result.stdout
    real = make(tree, "make synth STACK=qa")
    assert real.returncode != 0
    assert "no stack 'qa'" in real.stderr
    assert "Stacks: dev, prod" in real.stderr


def test_the_stack_outputs_and_files_the_engine_commands_name_exist() -> None:
    exports = set(re.findall(r'pulumi\.export\(\s*"([A-Za-z]+)"', (ROOT / "__main__.py").read_text()))
    named = {name for c in COMMANDS for name in re.findall(r"pulumi stack output (\w+)", c)}
    assert named, "the README names no stack output"
    assert named <= exports, named - exports
    for command in COMMANDS:
        for path in re.findall(r"--policy-pack(?:-config)? (\S+)", command):
            assert (ROOT / path).exists(), (command, path)


def test_the_start_execution_command_passes_one_json_input(tmp_path: Path) -> None:
    (command,) = [c for c in COMMANDS if c.startswith("aws stepfunctions start-execution")]
    arn = "arn:aws:states:eu-west-1:222222222222:stateMachine:sensorflow-dev-pipeline"
    stubs = (
        f'pulumi() {{ [ "$*" = "stack output stateMachineArn" ] && echo "{arn}"; }}\n'
        # the stand-in for the AWS CLI prints each argument it received, NUL-terminated
        "aws() { printf '%s\\0' \"$@\"; }\n"
    )
    result = subprocess.run(["bash", "-c", stubs + command], capture_output=True, text=True, check=True)
    args = result.stdout.split("\0")[:-1]
    assert args[:4] == ["stepfunctions", "start-execution", "--state-machine-arn", arn]
    assert args[4] == "--input"
    assert json.loads(args[5]) == {"runDate": "2026-11-20"}
    assert len(args) == 6


def test_clean_and_distclean_remove_exactly_what_they_say(tmp_path: Path) -> None:
    shutil.copy2(ROOT / "Makefile", tmp_path / "Makefile")
    helps = subprocess.run(["make", "help"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    said = {
        target: re.search(rf"make {target}\s+(?:also )?remove ([^(]+)", helps).group(1).split()
        for target in ("clean", "distclean")
    }
    removable = said["clean"] + said["distclean"]
    kept = ["components", "functions", "Pulumi.dev.yaml", "build.txt"]
    for path in [*removable, *kept, "policies/keep.txt"]:
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if "." in Path(path).name and not Path(path).name.startswith("."):
            target.write_text("x")
        else:
            target.mkdir(exist_ok=True)
            (target / "f").write_text("x")

    subprocess.run(["make", "clean"], cwd=tmp_path, check=True, capture_output=True)
    assert not [p for p in said["clean"] if (tmp_path / p).exists()]
    assert all((tmp_path / p).exists() for p in [*said["distclean"], *kept, "policies/keep.txt"])

    subprocess.run(["make", "distclean"], cwd=tmp_path, check=True, capture_output=True)
    assert not [p for p in removable if (tmp_path / p).exists()]
    assert all((tmp_path / p).exists() for p in [*kept, "policies/keep.txt"])
