"""Reading resource properties the way the policy runtime hands them over, without tripping on unknowns.

The runtime wraps every property bag in ``unknown_checking_proxy`` (pulumi_policy/proxy.py): mappings and
sequences become ``_DictProxy``/``_ListProxy`` (``Mapping``/``Sequence``, not ``dict``/``list``), and reading a
value that is unknown at preview raises ``UnknownValueError``, which the runtime turns into an *advisory*
"can't run policy during preview" diagnostic. A rule that touches one unknown field (say the role name of a
``RolePolicy``) would therefore silently stop being mandatory for the fields it could have judged.

So rules read through these helpers: ``plain()`` unwraps the proxies into ``dict``/``list`` and keeps each
unknown as the engine's sentinel string, and ``is_unknown()`` lets a rule decide, per value, what an unknown
means (an unknown ARN is never the literal ``"*"``; an unknown action list is a different matter).
Numbers arrive as floats (protobuf ``Struct`` has only doubles), so ``as_int()`` accepts ``5.0``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

# The sentinels the engine puts in place of values unknown at preview (pulumi_policy/proxy.py).
UNKNOWN_SENTINELS: Final = frozenset(
    {
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
        "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
        "e48ece36-62e2-4504-bad9-02848725956a",  # archive
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
    }
)
UNKNOWN_STRING: Final = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


class Unparseable(ValueError):
    """A property that must hold a JSON document holds something else; the message says what and where."""


def is_unknown(value: Any) -> bool:
    """True for a value the engine cannot know until the update (one of the sentinel strings)."""
    return isinstance(value, str) and value in UNKNOWN_SENTINELS


def _raw_items(value: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    # A _DictProxy exposes its wrapped dict under the "__target" key; reading through it skips the
    # unknown check. A plain Mapping (in tests, or a future runtime) is read directly.
    target = _target(value)
    source = target if target is not None else value
    for key in source:
        yield key, source[key]


def _target(value: Any) -> Any:
    if type(value).__name__ in {"_DictProxy", "_ListProxy"}:
        return value["__target"]
    return None


def plain(value: Any) -> Any:
    """``value`` as plain ``dict``/``list``/scalars; unknowns stay as their sentinel strings."""
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in _raw_items(value)}
    if isinstance(value, Sequence):
        target = _target(value)
        source = target if target is not None else value
        return [plain(source[i]) for i in range(len(source))]
    return value


def get(props: Mapping[str, Any], *path: str | int, default: Any = None) -> Any:
    """The value at ``path`` (keys and list indexes), plain and unknown-preserving; ``default`` if absent."""
    current: Any = plain(props)
    for step in path:
        if not _has(current, step):
            return default
        current = current[step]
    return current


def _has(container: Any, step: str | int) -> bool:
    if isinstance(step, int):
        return isinstance(container, list) and -len(container) <= step < len(container)
    return isinstance(container, dict) and step in container


def as_list(value: Any) -> list[Any]:
    """IAM and alarm fields accept one value or a list: always a list (``None`` is empty)."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def as_int(value: Any) -> int | None:
    """An integer property as ``int``: ``5``, ``5.0`` and ``"5"`` are 5; anything else (unknown too) is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def json_document(value: Any, where: str) -> Any:
    """A JSON document property (IAM policy, ASL definition) as data; a mapping is taken as already parsed.

    Raises ``Unparseable`` naming ``where`` when the string is not JSON, so a rule reports it instead of
    crashing the analyzer.
    """
    value = plain(value)
    if isinstance(value, dict | list):
        return value
    if not isinstance(value, str):
        raise Unparseable(f"{where} should be a JSON document, got {type(value).__name__}")
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise Unparseable(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def tags_of(props: Mapping[str, Any]) -> dict[str, Any]:
    """The resource's ``tags`` input as a plain dict (empty when absent, unknown or not a map)."""
    tags = get(props, "tags")
    return tags if isinstance(tags, dict) else {}
