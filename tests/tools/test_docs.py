"""The generated tables of docs/ are current, and the check notices one that is not."""

from __future__ import annotations

import dataclasses

from tools import docs


def test_every_generated_table_is_current():
    assert len(docs.BLOCKS) >= 3
    assert docs.stale() == [], "run .venv/bin/python -m tools.docs --write"
    assert docs.main([]) == 0


def test_a_stale_table_is_named(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text("before\n<!-- alarms:start -->\n| an old row |\n<!-- alarms:end -->\nafter\n")
    block = dataclasses.replace(docs.BLOCKS[1], page=str(page))
    assert block.path == page
    assert block.current() != block.render()
    block.write()
    assert block.current() == block.render()
    assert page.read_text().startswith("before\n<!-- alarms:start -->\n| Alarm |")


def test_the_alarm_table_lists_every_alarm_of_both_stacks_with_its_values():
    table = docs.alarm_table()
    assert "`sensorflow-<stage>-executions-failed`" in table
    assert "`sensorflow-account-open-map-runs-<owner stage>`" in table
    # dev has no schedule, so no heartbeat; prod has one.
    (heartbeat,) = [row for row in table.splitlines() if "no-recent-success" in row]
    assert "| not created | 1 |" in heartbeat


def test_the_readme_stays_a_five_minute_read():
    """The README keeps what a newcomer needs (the two commands first) and points to docs/ for the rest."""
    readme = (docs.ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 8 * 1024
    assert readme.index("make demo") < readme.index("## Architecture")
    assert readme.index("make test") < readme.index("## Architecture")
    for page in sorted((docs.ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, f"README does not point to docs/{page.name}"
