"""The local run takes everything from make synth's rendering, written to build/ or rendered in-process."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tools.localrun import stack


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_written_and_the_in_process_rendering_load_alike(tmp_path: Path, stage: str) -> None:
    from tools import synth

    synth.synth(stage, out=tmp_path)
    built = stack.from_build(stage, tmp_path)
    in_process = stack.rendered(stage)
    assert built.source == str(tmp_path / stage)
    assert in_process.source == stack.IN_PROCESS
    assert len(built.tables) == 3
    assert built == dataclasses.replace(in_process, source=built.source)


def test_overrides_reach_the_rendering() -> None:
    local = stack.rendered("dev", {"unloadFormat": "CSV", "deliveryMaxAttempts": 2})
    assert local.settings["unload_format"] == "CSV"
    assert local.lambda_env["DELIVERY_MAX_ATTEMPTS"] == "2"
    assert '"InputType": "CSV"' in json.dumps(local.definition)


def test_missing_build_is_named(tmp_path: Path) -> None:
    with pytest.raises(stack.StackError, match=r"stage 'dev' is not rendered.*make synth"):
        stack.from_build("dev", tmp_path)
