"""Timestamps: every accepted notation gives the instant's one fixed-width UTC text; the rest is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.detector.values import parse_timestamp

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2024-06-01 12:34:56.789", "2024-06-01T12:34:56.789000Z"),
        ("2024-06-01T12:34:56", "2024-06-01T12:34:56.000000Z"),
        ("2024-06-01 12:34:56.1", "2024-06-01T12:34:56.100000Z"),
        ("2024-06-01 12:34:56.123456", "2024-06-01T12:34:56.123456Z"),
        ("2024-06-01 12:34:56.1234567", "2024-06-01T12:34:56.123456Z"),
        ("2024-06-01 12:34:56,5", "2024-06-01T12:34:56.500000Z"),
        ("2024-06-01 12:00:00.+23", "2024-05-31T13:00:00.000000Z"),  # fromisoformat reads an offset
        ("2024-06-01 12:00:00.12z", "2024-06-01T12:00:00.120000Z"),  # lower-case zone: the retry
        ("0001-01-01 00:00:00.000", "0001-01-01T00:00:00.000000Z"),
        ("9999-12-31T23:59:59.999", "9999-12-31T23:59:59.999000Z"),
    ],
)
def test_accepted_notations_give_the_fixed_width_utc_text(text: str, iso: str) -> None:
    parsed = parse_timestamp(text)
    assert parsed is not None
    assert parsed[2] == iso
    assert parsed[0] == iso[:10]


@pytest.mark.parametrize(
    "text",
    ["2024-02-30 12:00:00.000", "2024-06-01 12:00:00.", "2024-06-01 12:00:00.1x", "2024-06-01",
     "2024-06-01 1２:00:00.123", "2024-06-01 12:00:00.1_3", "2024-06-01 12:00:0", "2024-W22-6T10:00"],
)  # fmt: skip
def test_malformed_texts_are_refused(text: str) -> None:
    assert parse_timestamp(text) is None


@SETTINGS
@given(
    when=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offset_minutes=st.integers(min_value=-12 * 60, max_value=14 * 60),
    sep=st.sampled_from([" ", "T"]),
)
def test_one_instant_in_any_notation_gives_the_same_text_and_id_bytes(
    when: datetime, offset_minutes: int, sep: str
) -> None:
    naive = parse_timestamp(when.isoformat(sep=sep))
    assert naive is not None
    assert datetime.fromisoformat(naive[2][:-1]) == when  # the text is the instant, exactly
    zone = timezone(timedelta(minutes=offset_minutes))
    local = (
        when.replace(tzinfo=UTC).astimezone(zone)
        if datetime(1, 1, 3) < when < datetime(9999, 12, 29)
        else None
    )
    if local is not None:
        assert parse_timestamp(local.isoformat(sep=sep)) == naive
    assert parse_timestamp(when.isoformat(sep=sep) + "Z") == naive
