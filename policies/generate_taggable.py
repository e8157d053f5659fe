"""Regenerate sensorflow_policy/taggable_types.json from the installed pulumi-aws SDK.

A resource type is taggable when its generated Python class accepts a ``tags`` argument. The pack's own
virtualenv does not install pulumi-aws (the pack reads type tokens, not SDK classes), so the list is data
committed next to the rule, and a test regenerates it to catch a pulumi-aws upgrade:

    .venv/bin/python policies/generate_taggable.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "sensorflow_policy" / "taggable_types.json"
_TOKEN = re.compile(r"super\(\w+, __self__\)\.__init__\(\s*'(aws:[^']+)'")
_TAGS_ARG = re.compile(r'__props__\.__dict__\["tags"\] = tags')


def taggable_types(sdk_root: Path) -> list[str]:
    """Sorted type tokens of every pulumi-aws resource class under ``sdk_root`` that takes ``tags``."""
    found = set()
    for path in sdk_root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if (m := _TOKEN.search(text)) and _TAGS_ARG.search(text):
            found.add(m.group(1))
    if not found:
        raise SystemExit(f"no taggable resource classes under {sdk_root}: is this the pulumi_aws package?")
    return sorted(found)


def render(types: list[str], version: str) -> str:
    return json.dumps({"pulumi-aws": version, "types": types}, indent=1) + "\n"


def main() -> int:
    from importlib.metadata import version

    import pulumi_aws

    types = taggable_types(Path(pulumi_aws.__file__).parent)
    OUTPUT.write_text(render(types, version("pulumi-aws")))
    print(f"{len(types)} taggable types written to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
