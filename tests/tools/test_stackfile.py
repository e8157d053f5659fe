"""Stack files: every command refuses a stack without a file, and lists every problem of a file at once."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spec import settings
from tools import harness, policy_gate, stackfile, synth
from tools.tune import __main__ as tune_main

BROKEN = """\
config:
  aws:region: eu-west-1
  aws:allowedAccountIds:
    - "222222222222"
  sensorflow:owner: [iot-platform]
  sensorfow:lambdaLogLevel: DEBUG
  sensorflow:maxConcurency: 3
  sensorflow:maxConcurrency: 0
  sensorflow:lambdaMemoryMb: 512
  sensorflow:lambdaMemoryMb: 1024
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with the real Pulumi.yaml and the dev stack file."""
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copyfile(harness.ROOT / name, tmp_path / name)
    return tmp_path


def test_a_missing_stack_names_the_stacks_that_exist() -> None:
    with pytest.raises(stackfile.StackNotFoundError) as caught:
        stackfile.load("prdo")
    text = str(caught.value)
    assert "Pulumi.prdo.yaml does not exist" in text
    assert "Stacks: dev, prod" in text
    assert "did you mean prod?" in text


def test_the_harness_refuses_a_missing_stack_instead_of_running_on_defaults() -> None:
    with pytest.raises(stackfile.StackNotFoundError):
        harness.stack_config("prdo")


def test_synth_refuses_a_missing_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert synth.main(["--stack", "prdo", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no stack 'prdo'" in err
    assert "dev, prod" in err
    assert not list(tmp_path.iterdir()), "synth rendered something for a stack that does not exist"


def test_policy_gate_refuses_a_missing_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert policy_gate.main(["--stack", "prdo"]) == 2
    captured = capsys.readouterr()
    assert "no stack 'prdo'" in captured.err
    assert "passed" not in captured.out


def test_tune_refuses_a_missing_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert tune_main.main(["--stack", "prdo", "--rows", "1000"]) == 2
    assert "no stack 'prdo'" in capsys.readouterr().err


def test_every_problem_at_once_with_types_namespaces_and_near_misses(project: Path) -> None:
    (project / "Pulumi.dev.yaml").write_text(BROKEN)
    with pytest.raises(settings.SettingsError) as caught:
        stackfile.load("dev", root=project)
    text = str(caught.value)
    assert text.startswith("5 problem(s) in Pulumi.dev.yaml:"), text
    assert "owner=['iot-platform']: expected a string, got a list" in text
    assert "unknown namespace 'sensorfow' (did you mean sensorflow:lambdaLogLevel?)" in text
    assert "maxConcurency: unknown setting (did you mean maxConcurrency?)" in text
    assert "maxConcurrency=0: below the minimum" in text
    assert "line 10: sensorflow:lambdaMemoryMb appears twice (first at line 9)" in text


def test_a_yaml_syntax_error_names_the_file_and_line(project: Path) -> None:
    (project / "Pulumi.dev.yaml").write_text("config:\n  sensorflow:owner: [unclosed\n")
    with pytest.raises(settings.SettingsError) as caught:
        stackfile.load("dev", root=project)
    text = str(caught.value)
    assert "Pulumi.dev.yaml" in text
    assert "not valid YAML: line 3" in text


def test_provider_keys_the_tools_read_are_checked(project: Path) -> None:
    (project / "Pulumi.dev.yaml").write_text("config:\n  aws:allowedAccountIds: 222222222222\n")
    with pytest.raises(settings.SettingsError, match="aws:allowedAccountIds=222222222222: expected a list"):
        stackfile.load("dev", root=project)


def test_the_program_itself_sees_a_list_given_to_a_string_setting() -> None:
    # The engine hands lists over as JSON text: the program must not tag owner='["iot-platform"]'.
    with pytest.raises(settings.SettingsError, match="owner=\\['iot-platform'\\]: expected a string"):
        harness.run(stack="dev", overrides={"owner": ["iot-platform"]})


def test_the_program_flags_a_namespace_typo() -> None:
    with pytest.raises(settings.SettingsError, match="did you mean sensorflow:lambdaLogLevel"):
        harness.run(stack="dev", overrides={"sensorfow:lambdaLogLevel": "DEBUG"})


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "tools.synth", "--stack", "dev"],
        ["-m", "tools.policy_gate", "--stack", "dev"],
        ["-m", "tools.tune", "--stack", "dev", "--rows", "1000"],
        ["-m", "tools.localrun", "--stack", "dev", "--processes", "0"],
    ],
)
def test_commands_print_the_list_without_a_traceback(project: Path, command: list[str]) -> None:
    """Each command, on a broken stack file, prints the one list and exits 1 or 2."""
    (project / "Pulumi.dev.yaml").write_text(BROKEN)
    script = (
        "import sys, runpy; from pathlib import Path; from tools import stackfile;"
        f"stackfile.ROOT = Path({str(project)!r});"
        f"sys.argv = {[command[1], *command[2:]]!r};"
        f"runpy.run_module({command[1]!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=harness.ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (1, 2), done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "5 problem(s) in Pulumi.dev.yaml" in done.stderr, done.stderr


def test_two_stacks_owning_one_accounts_alarms_are_refused_naming_the_other(project: Path) -> None:
    prod = project / "Pulumi.prod.yaml"
    shutil.copyfile(harness.ROOT / "Pulumi.prod.yaml", prod)
    # The shipped stacks deploy to different accounts: each owns its own account's alarms.
    assert stackfile.load("dev", root=project).settings.owns_account_alarms
    assert stackfile.load("prod", root=project).settings.owns_account_alarms
    # prod moved into dev's account and Region, still owning the alarms: both stacks are refused.
    dev_account = stackfile.config("dev", root=project)["aws:allowedAccountIds"][0]
    prod_account = stackfile.config("prod", root=project)["aws:allowedAccountIds"][0]
    prod.write_text(prod.read_text().replace(prod_account, dev_account))
    with pytest.raises(settings.SettingsError) as caught:
        stackfile.load("dev", root=project)
    assert "Pulumi.prod.yaml also owns the account-level alarms" in str(caught.value)
    assert dev_account in str(caught.value)
    with pytest.raises(settings.SettingsError):
        stackfile.load("prod", root=project)
    # Fixed as the runbook says: one owner per account and Region.
    prod.write_text(
        prod.read_text().replace("sensorflow:ownsAccountAlarms: true", "sensorflow:ownsAccountAlarms: false")
    )
    assert not stackfile.load("prod", root=project).settings.owns_account_alarms
    assert stackfile.load("dev", root=project).settings.owns_account_alarms
