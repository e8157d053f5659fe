"""The shortcut for Athena's zone-less timestamps gives exactly what the general parser gives.

``analysis._parse_timestamp`` first tries ``YYYY-MM-DD[T ]hh:mm:ss[.f...]`` without a zone and derives
the fixed-width ISO text by re-punctuating the input instead of calling ``isoformat()``. Every text must
get the same (date, id bytes, ISO text), or None, from the shortcut as from the general path alone.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.detector.analysis import _parse_timestamp, _parse_timestamp_text

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2024-06-01 12:34:56.789", "2024-06-01T12:34:56.789000Z"),
        ("2024-06-01T12:34:56", "2024-06-01T12:34:56.000000Z"),
        ("2024-06-01 12:34:56.1", "2024-06-01T12:34:56.100000Z"),
        ("2024-06-01 12:34:56.123456", "2024-06-01T12:34:56.123456Z"),
        ("2024-06-01 12:34:56.1234567", "2024-06-01T12:34:56.123456Z"),  # 7 digits: the general path
        ("2024-06-01 12:34:56,5", "2024-06-01T12:34:56.500000Z"),  # a decimal comma: the general path
        ("2024-06-01 12:00:00.+23", "2024-05-31T13:00:00.000000Z"),  # fromisoformat reads an offset
        ("2024-06-01 12:00:00.12z", "2024-06-01T12:00:00.120000Z"),  # lower-case zone: the retry
        ("0001-01-01 00:00:00.000", "0001-01-01T00:00:00.000000Z"),
        ("9999-12-31T23:59:59.999", "9999-12-31T23:59:59.999000Z"),
    ],
)
def test_shortcut_and_general_path_agree_on_examples(text: str, iso: str) -> None:
    parsed = _parse_timestamp(text)
    assert parsed == _parse_timestamp_text(text)
    assert parsed is not None
    assert parsed[2] == iso


@pytest.mark.parametrize(
    "text",
    ["2024-02-30 12:00:00.000", "2024-06-01 24:00:00.000", "2024-06-01 12:00:00.", "2024-06-01 12:00:00.1x",
     "2024-06-01 1２:00:00.123", "2024-06-01 12:00:00.1_3", "2024-06-01 12:00:0"],
)  # fmt: skip
def test_shortcut_refuses_what_the_general_path_refuses(text: str) -> None:
    assert _parse_timestamp(text) is None
    assert _parse_timestamp_text(text) is None


athena_like = st.builds(
    lambda when, sep, digits, zone: (
        when.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
        + ("." + f"{when.microsecond:06d}{when.microsecond:03d}"[:digits] if digits else "")
        + zone
    ),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.sampled_from([" ", "T", "t"]),
    st.integers(min_value=0, max_value=9),
    st.sampled_from(["", "", "", "Z", "z", "+02:00", "-05:30"]),
)
edit_chars = st.sampled_from(list("0123456789-:. Tt,Zz+_\u0661\uff12\n"))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """An Athena-like text with a few characters replaced, inserted or deleted."""
    chars = list(draw(athena_like))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(chars)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "insert" or at == len(chars):
            chars.insert(at, draw(edit_chars))
        elif action == "replace":
            chars[at] = draw(edit_chars)
        else:
            del chars[at]
    return "".join(chars)


@SETTINGS
@given(text=athena_like | mutated())
def test_shortcut_equals_the_general_path(text: str) -> None:
    assert _parse_timestamp(text) == _parse_timestamp_text(text)
