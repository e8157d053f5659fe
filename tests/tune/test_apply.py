"""``make tune ... ARGS=--apply``: the recommended values land in a copy of a stack file, every comment and
every other key kept; the volume the file states is what ``make tune`` plans by default."""

from __future__ import annotations

import difflib
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from spec.settings import SettingsError
from tools import stackfile
from tools.tune import advice, apply, plan_stack
from tools.tune.__main__ import main

ROOT = stackfile.ROOT


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's Pulumi.yaml and stack files; every tool reads the copy."""
    for file in ["Pulumi.yaml", *(f"Pulumi.{s}.yaml" for s in stackfile.stacks())]:
        shutil.copy(ROOT / file, tmp_path / file)
    monkeypatch.setattr(stackfile, "ROOT", tmp_path)
    return tmp_path


def comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("#") or " #" in line]


def changed_lines(old: str, new: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_the_committed_stack_files_state_their_volume():
    assert apply.stated_volume("prod") == 100_000_000
    assert apply.stated_volume("dev") == 1_000_000


def test_a_no_op_round_trip_keeps_the_file_byte_for_byte():
    for stack in stackfile.stacks():
        text = stackfile.path(stack).read_text()
        current = yaml.safe_load(text)["config"]
        values = {
            name: current[f"sensorflow:{name}"] for name in apply.APPLIED if f"sensorflow:{name}" in current
        }
        assert values, stack
        new, changes = apply.render(text, stack, values, apply.stated_volume(stack))
        assert (new, changes) == (text, [])


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_apply_writes_the_recommendations_and_keeps_comments_and_keys(project: Path, stack: str):
    file = project / f"Pulumi.{stack}.yaml"
    before = file.read_text()
    rows = 50_000_000  # not the stated volume, so the comment must change too
    plan = plan_stack(stack, rows, benchmark=None)
    wanted = apply.recommended_values(plan)
    assert set(wanted) >= {"maxConcurrency", "maxItemsPerBatch", "maxInputBytesPerBatch"}
    changes = apply.apply(plan)
    after = file.read_text()

    old, new = yaml.safe_load(before)["config"], yaml.safe_load(after)["config"]
    assert list(new)[: len(old)] == list(old), "key order kept"
    for key, value in old.items():
        name = key.removeprefix("sensorflow:")
        assert new[key] == wanted.get(name, value), key
    assert {c.setting for c in changes} == {n for n in wanted if old.get(f"sensorflow:{n}") != wanted[n]}
    assert changes, "the plan at 50M readings differs from the committed values"
    # Every comment survives; only the changed values and the volume comment differ.
    assert [c for c in comments(before) if "tuned for" not in c] == [
        c for c in comments(after) if "tuned for" not in c
    ]
    diff = changed_lines(before, after)
    assert len(diff) == 2 * (len(changes) + 1), diff
    assert (
        f"+  # Capacity settings tuned for 50,000,000 readings a day (make tune STACK={stack} ARGS=--apply)."
        in diff
    )
    assert apply.stated_volume(stack) == rows
    # The file still validates, and planning it again recommends what it now holds.
    stackfile.load(stack)
    again = plan_stack(stack, rows, benchmark=None)
    assert apply.apply(again) == []
    assert file.read_text() == after


def test_a_refused_value_leaves_the_file_untouched(project: Path):
    file = project / "Pulumi.prod.yaml"
    before = file.read_text()
    plan = plan_stack("prod", 100_000_000, benchmark=None)
    # A recommendation the program would refuse: more reserved concurrency than the account has.
    too_many = (
        advice.Recommendation("maxConcurrency", 2_000, "test"),
        advice.Recommendation("lambdaReservedConcurrency", 2_000, "test"),
    )
    with pytest.raises(SettingsError, match="lambdaReservedConcurrency=2000: above accountLambdaConcurrency"):
        apply.apply(replace(plan, recommendations=too_many))
    assert file.read_text() == before
    assert not list(project.glob(".Pulumi.*")), "no temporary file left behind"


def test_the_cli_applies_and_plans_the_stated_volume_by_default(project: Path, capsys):
    file = project / "Pulumi.dev.yaml"  # a copy: move it off the recommendation first
    text = file.read_text()
    file.write_text(re.sub(r"sensorflow:maxConcurrency: \d+", "sensorflow:maxConcurrency: 3", text))
    assert main(["--stack", "dev", "--apply", "--no-benchmark"]) == 0
    out, err = capsys.readouterr()
    assert "# Capacity plan: dev, 1,000,000 readings" in out
    assert "applied to Pulumi.dev.yaml (tuned for 1,000,000 readings a day): maxConcurrency" in err
    assert main(["--stack", "dev", "--apply", "--no-benchmark"]) == 0
    assert "already the recommended values" in capsys.readouterr().err


def test_the_cli_refuses_what_it_cannot_apply_or_plan(project: Path, capsys):
    with pytest.raises(SystemExit):
        main(["--stack", "dev", "--apply", "--set", "maxConcurrency=3"])
    assert "leave out --set and --price" in capsys.readouterr().err
    file = project / "Pulumi.dev.yaml"
    file.write_text("".join(line for line in file.read_text().splitlines(True) if "tuned for" not in line))
    assert main(["--stack", "dev"]) == 2
    assert "states no volume" in capsys.readouterr().err
