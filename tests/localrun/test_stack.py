"""The local run takes everything from make synth's output; the in-process render matches it exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.localrun import stack
from tools.localrun.stack import ROOT


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_synth_output_and_in_process_render_agree(tmp_path: Path, stage: str) -> None:
    if not (ROOT / "build" / "lambda" / ".packaged").is_file():
        pytest.skip("the Lambda package is not built (make package); synth needs it")
    from tools import synth

    synth.synth(stage, out=tmp_path)
    built = stack.from_build(stage, tmp_path)
    rendered = stack.from_settings(stage)
    assert built.source == str(tmp_path / stage)
    assert built.definition == rendered.definition
    assert built.tables == rendered.tables
    assert len(built.tables) == 3
    assert built.firehose == rendered.firehose
    assert built.lambda_env == rendered.lambda_env
    assert built.function_arn == rendered.function_arn
    assert built.results_location == rendered.results_location
    assert {k: built.exports[k] for k in stack.REQUIRED_EXPORTS} == {
        k: rendered.exports[k] for k in stack.REQUIRED_EXPORTS
    }


def test_missing_build_is_named(tmp_path: Path) -> None:
    with pytest.raises(stack.StackError, match=r"stage 'dev' is not rendered.*make synth"):
        stack.from_build("dev", tmp_path)
