"""Timestamps: every accepted notation gives the instant's one fixed-width UTC text; the rest is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.detector import values
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
    assert parsed[1] == iso
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
    assert datetime.fromisoformat(naive[1][:-1]) == when  # the text is the instant, exactly
    zone = timezone(timedelta(minutes=offset_minutes))
    local = (
        when.replace(tzinfo=UTC).astimezone(zone)
        if datetime(1, 1, 3) < when < datetime(9999, 12, 29)
        else None
    )
    if local is not None:
        assert parse_timestamp(local.isoformat(sep=sep)) == naive
    assert parse_timestamp(when.isoformat(sep=sep) + "Z") == naive


_PARTS = st.tuples(
    st.sampled_from(["2024", "1999", "0001", "9999"]),
    st.sampled_from(["01", "02", "06", "12", "13", "00"]),
    st.sampled_from(["01", "28", "29", "30", "31", "00", "32"]),
    st.sampled_from([" ", "T", "t", "X"]),
    st.sampled_from(["00", "13", "23", "24", "25", "0a"]),
    st.sampled_from(["00", "59", "60", "5"]),
    st.sampled_from(["00", "59", "60", "61", "5x", "\u0663\u0664"]),  # Arabic-Indic digits are not ASCII
    st.sampled_from(["", ".", ".1", ".123", ".123456", ".1234567", ".12a", ".\u0661", "Z", "+02:00"]),
)


@SETTINGS
@given(parts=_PARTS)
def test_the_common_form_gives_what_the_full_parser_gives(parts) -> None:
    """The zone-less form Athena writes is read by three lookups (a cached minute, the seconds, a cached
    fraction); for every text, whichever way it is read, the result is the full parser's (a valid minute,
    seconds 00-59, 1-6 ASCII fraction digits; anything else, hour 24 included, is left to the parser)."""
    year, month, day, sep, hour, minute, second, rest = parts
    text = f"{year}-{month}-{day}{sep}{hour}:{minute}:{second}{rest}"
    values.clear_timestamp_caches()
    assert parse_timestamp(text) == values._parse_timestamp(text), text
    assert parse_timestamp(text) == values._parse_timestamp(text), text  # and again, from the caches


def test_the_common_form_is_read_without_the_full_parser_and_can_be_wrong() -> None:
    values.clear_timestamp_caches()
    assert parse_timestamp("2024-06-01 12:34:56.789") == values._parse_timestamp("2024-06-01 12:34:56.789")
    assert parse_timestamp("2024-06-01T23:59:59") == ("2024-06-01", "2024-06-01T23:59:59.000000Z")
    assert values.timestamp_cache == {}  # the common form took the shortcut
    assert parse_timestamp("2024-02-30 12:34:56") is None  # an impossible date
    assert parse_timestamp("2024-06-01 12:34:56Z") is not None
    assert "2024-06-01 12:34:56Z" in values.timestamp_cache  # a zone: the full parser decided
    assert parse_timestamp("2024-06-01 12:34:56") != values._parse_timestamp("2024-06-01 12:34:57")
