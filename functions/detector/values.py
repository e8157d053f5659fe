"""Reading one field of a reading: timestamps, numbers and device ids as the detector accepts them, the
invalid-reason codes that name what is wrong, and the record id.

``analysis.Analyzer`` takes the usual reading through cheap inline checks and hands anything unusual
to the ``unusual_*`` helpers here, which name the problem. The decisions behind these rules are in
``analysis``'s module docstring and docs/detector.md.
"""

from __future__ import annotations

import binascii
import json
import re
import struct
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal

import xxhash

from . import schema

# --- the five numeric fields, in the order of the metrics struct (schema.METRICS_TYPE) and of the item
NUMERIC_FIELDS: Final = ("temperature", "humidity", "batterylevel", "latitude", "longitude")
if schema.ITEM_FIELDS[2:] != (*NUMERIC_FIELDS, schema.TRUNCATED_FIELD):  # pragma: no cover - a schema edit
    raise ImportError("schema.ITEM_FIELDS no longer holds the five numeric fields, then the truncated names")

# Physically possible values, inclusive. Temperature cannot be below absolute zero; the others are the
# ranges named by the contract (percentages and WGS84 coordinates).
PHYSICAL_RANGES: Final = {
    "temperature": (-273.15, sys.float_info.max),  # no upper bound but finiteness
    "humidity": (0.0, 100.0),
    "batterylevel": (0.0, 100.0),
    "latitude": (-90.0, 90.0),
    "longitude": (-180.0, 180.0),
}
_RANGES: Final = tuple(PHYSICAL_RANGES[name] for name in NUMERIC_FIELDS)
TEMPERATURE_MIN, TEMPERATURE_MAX = PHYSICAL_RANGES["temperature"]
if _RANGES[1:] != ((0.0, 100.0), (0.0, 100.0), (-90.0, 90.0), (-180.0, 180.0)):  # pragma: no cover
    raise ImportError("PHYSICAL_RANGES changed: update the inline range checks in Analyzer.lines")

# --- invalid reasons: "<field>:<problem>"
MISSING: Final = "missing"  # absent, null, or an empty string
NOT_A_NUMBER: Final = "not_a_number"  # a string (outside CSV), a boolean, an object, a non-numeric string
NOT_FINITE: Final = "not_finite"  # NaN or +/-Infinity (or an integer too large for a double)
OUT_OF_RANGE: Final = "out_of_range"  # physically impossible (PHYSICAL_RANGES)
NOT_A_STRING: Final = "not_a_string"  # device id or timestamp of another type
MALFORMED: Final = "malformed"  # a timestamp that is not ISO 8601 with a date and a time
TRUNCATED: Final = "truncated"  # the export cut the text to its bound (schema.TRUNCATED_FIELD names it)
REASON_NOT_AN_OBJECT: Final = "row:not_an_object"  # the row is not a JSON object
REASON_TOO_LARGE: Final = "row:too_large"  # the record would not fit in one Firehose record

CANONICAL_PREFIX: Final = "sensorflow.reading.v3"  # versioned: a change of canonical form changes the prefix
RECORD_ID_BYTES: Final = 12  # 96 bits: 16 base64 characters, no padding (collision bound: module docstring)
_SEP: Final = "\x1f"  # ASCII unit separator: cannot be confused with the separators of ISO dates or numbers
# How UNLOAD's TEXTFILE (CSV) output writes SQL NULL (Hive's default serialization.null.format).
CSV_NULL: Final = "\\N"

# XXH3-128 (the xxHash library's 128-bit hash), one call per reading. Not cryptographic: it has the
# collision rate of an ideal hash of its width on ordinary inputs (it passes SMHasher, and
# github.com/Cyan4973/xxHash/wiki/Collision-ratio-comparison counts XXH128's collisions at the expected
# rate), and it gives the same bytes on every platform (the xxHash README), so an x86_64 run and an
# arm64 Lambda agree. It replaced hashlib's sha256, whose call cost four times as much here
# (docs/detector.md, "Speed").
_xxh3_128 = xxhash.xxh3_128_digest
# base64.urlsafe_b64encode is b2a_base64 and this translation (Lib/base64.py); called directly, per row.
_b2a_base64 = binascii.b2a_base64
_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")
# The five values as the id's bytes (IEEE 754 doubles), and those bytes read back as floats.
_VALUES_STRUCT: Final = struct.Struct("<5d")
pack_values = _VALUES_STRUCT.pack
unpack_values = _VALUES_STRUCT.unpack
_PREFIX: Final = CANONICAL_PREFIX + _SEP
# Before a usable timestamp's ISO text in the id (unusable ones start "\x1f!" or are "\x1f\x1f").
INSTANT_TAG: Final = _SEP + "T"
_TIMESTAMP_SHAPES: Final = frozenset({"--T", "-- "})
_TS_CACHE_MAX: Final = 16_384
# timestamp text -> (UTC date, the instant as ISO text), or None if malformed, for the texts that are
# not in the common form. Per process (the local runner's workers each have their own); bounded.
timestamp_cache: dict[str, tuple[str, str] | None] = {}
# Athena's varchar of a timestamp: "YYYY-MM-DD HH:MM:SS" (or "T" for the blank) and 1 to 6 fraction
# digits or none, no zone; ASCII digits only, hours 00-23, minutes and seconds 00-59. Checked in three
# parts, each by a lookup: the minute (``_LOCAL_MINUTE``, checked once per minute and cached), the
# seconds, and the fraction (checked once and cached with what completes it to ".ffffffZ").
_LOCAL_MINUTE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]\Z").match
_LOCAL_SECONDS: Final = frozenset(f":{n:02d}" for n in range(60))
_FRACTION_CACHE_MAX: Final = 2_048  # every fraction of milliseconds (1,000) and shorter
# "" or "." and 1 to 6 ASCII digits -> the fraction as 6 digits, and "Z".
_fraction_cache: dict[str, str] = {}
_MINUTE_CACHE_MAX: Final = 4_096  # a day of readings spans 1,440 minutes
# "YYYY-MM-DD[T ]HH:MM" of the common form -> (UTC date, "YYYY-MM-DDTHH:MM"), or None if that minute is
# not a time of the calendar.
_minute_cache: dict[str, tuple[str, str] | None] = {}


def clear_timestamp_caches() -> None:
    """Forget every parsed timestamp (benchmarks start each repeat cold)."""
    timestamp_cache.clear()
    _minute_cache.clear()
    _fraction_cache.clear()


def parse_timestamp(text: str) -> tuple[str, str] | None:
    """Parse an ISO 8601 timestamp into (UTC date, the instant as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``), or
    None. The ISO text has one width whatever notation arrived, so it sorts as time does, and it is the
    instant's canonical form in the record id.

    Accepts a date and a time separated by ``T`` or a space (either case), optional fractional seconds
    and an optional zone (``Z`` or an offset), surrounding blanks; a timestamp without a zone is taken
    as UTC (Athena ``timestamp`` values cast to varchar carry none). Rejects anything else, including a
    date alone, week and ordinal dates.

    The common form, as Athena casts a ``timestamp`` to varchar, is read here by three lookups (minute,
    seconds, fraction); its minute is checked once by the full parser (``_parse_timestamp``) and cached,
    which gives exactly what the full parser gives for such a text. Other texts go to the full parser,
    and its results are cached per process (bounded).
    """
    if text[16:19] in _LOCAL_SECONDS:
        fraction = text[19:]
        tail = _fraction_cache.get(fraction) or _fraction_tail(fraction)
        if tail:
            minute = text[:16]
            known = _minute_cache.get(minute, False)
            if known is False:
                known = _common_minute(minute)
            if known is not False:
                return None if known is None else (known[0], known[1] + text[16:19] + tail)
    cached = timestamp_cache.get(text, False)
    if cached is not False:
        return cached
    result = _parse_timestamp(text)
    if len(timestamp_cache) >= _TS_CACHE_MAX:
        timestamp_cache.clear()
    timestamp_cache[text] = result
    return result


def _fraction_tail(fraction: str) -> str:
    """The fraction of the common form (none, or ``.`` and 1 to 6 ASCII digits) as ``.``, 6 digits and
    ``Z``, cached (bounded); "" if it is not of that form."""
    digits = fraction[1:]
    if fraction and not (
        fraction[0] == "." and 1 <= len(digits) <= 6 and digits.isdigit() and digits.isascii()
    ):
        return ""
    tail = "." + digits.ljust(6, "0") + "Z"
    if len(_fraction_cache) < _FRACTION_CACHE_MAX:
        _fraction_cache[fraction] = tail
    return tail


def _common_minute(minute: str) -> tuple[str, str] | Literal[False] | None:
    """(UTC date, "YYYY-MM-DDTHH:MM") of a minute of the common form, None if it is no time of the
    calendar, False if it is not of the common form; cached."""
    if _LOCAL_MINUTE(minute) is None:
        return False
    full = _parse_timestamp(minute + ":00")
    known = None if full is None else (full[0], full[1][:16])
    if len(_minute_cache) >= _MINUTE_CACHE_MAX:
        _minute_cache.clear()
    _minute_cache[minute] = known
    return known


def _parse_timestamp(text: str) -> tuple[str, str] | None:
    # The extended calendar form YYYY-MM-DD[T ]hh..., checked by one slice (positions 4, 7 and 10):
    # datetime.fromisoformat alone would also take week dates, ordinal dates and a bare date.
    s = text
    if s[4:11:3] not in _TIMESTAMP_SHAPES:
        s = text.strip()
        s = s[:10] + s[10:11].upper() + s[11:-1] + s[-1:].upper() if len(s) > 11 else s
        if s[4:11:3] not in _TIMESTAMP_SHAPES:
            return None
    try:
        # Python 3.11+ parses most ISO 8601 forms, including fractional seconds beyond microseconds.
        parsed = datetime.fromisoformat(s)
    except ValueError:
        # Surrounding blanks or a lower-case zone letter ("...z", RFC 3339 allows it): one retry.
        retry = s.strip()
        retry = retry[:-1] + retry[-1:].upper()
        if retry == s:
            return None
        try:
            parsed = datetime.fromisoformat(retry)
        except ValueError:
            return None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # an offset that moves the instant outside years 1..9999
            return None
    iso = parsed.isoformat(timespec="microseconds") + "Z"
    return iso[:10], iso


def unusable_timestamp_part(text: str) -> str:
    """The id text of an unusable timestamp: its text, in a form no instant can take."""
    return _SEP + text + _SEP


def run_name(value: Any) -> str | None:
    """The run's execution name; an execution ARN (``...:execution:<machine>:<name>``) is reduced to it."""
    if type(value) is not str or not value:
        return None
    if value.startswith("arn:") and ":execution:" in value:
        return value.rsplit(":", 1)[-1] or None
    return value


def as_text(value: Any) -> str:
    """A deterministic text of an arbitrary JSON-like value (for ids and for non-string fields)."""
    if type(value) is str:
        return value
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=repr)
    except (TypeError, ValueError):
        return repr(value)


def coerce_number(value: Any, *, csv: bool) -> tuple[float | None, str | None]:
    """A reading's value as a finite float, or (None, problem).

    Booleans are not numbers (JSON ``true`` is not a temperature). Strings are numbers only in CSV mode,
    where every value arrives as a string: an empty string there means missing. Python's ``float()`` also
    accepts ``1_000``, which no CSV writer produces, so underscores are refused.
    """
    kind = type(value)
    if kind is float:
        number = value
    elif kind is int:
        try:
            number = float(value)
        except OverflowError:
            return None, NOT_FINITE
    elif value is None:
        return None, MISSING
    elif csv and kind is str:
        text = value.strip()
        if not text:
            return None, MISSING
        if "_" in text:
            return None, NOT_A_NUMBER
        try:
            number = float(text)
        except ValueError:
            return None, NOT_A_NUMBER
    else:
        return None, NOT_A_NUMBER
    if number - number != 0.0:  # true only for NaN and the infinities
        return None, NOT_FINITE
    return number, None


def _unusable_text(raw: Any, problem: str) -> str:
    """The id text of an unusable value. A non-finite number is written as Python writes the float
    (``nan``, ``inf``, ``-inf``), so a Parquet NaN and a CSV "NaN" are the same reading."""
    if problem == NOT_FINITE:
        try:
            return "~" + repr(float(raw))
        except (OverflowError, TypeError, ValueError):
            pass
    return as_text(raw)


def format_number(value: float) -> str:
    """Format a threshold compactly, as the reference sample writes it: 35 -> "35", 35.5 -> "35.5"."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def record_id(deviceid_text: str, timestamp_part: str, values_part: bytes) -> str:
    """96 bits of the XXH3-128 of the canonical content (prefix, device id, timestamp part, values part),
    URL-safe base64. The timestamp part is ``INSTANT_TAG`` and the ISO text of a usable timestamp, else
    ``unusable_timestamp_part``. The values part of a reading whose five values are finite floats is
    their IEEE 754 bytes (``struct`` ``<5d``): exactly "the values after parsing", whatever text they
    arrived as. ``surrogatepass`` keeps every JSON string (even a lone surrogate) hashable."""
    content = f"{_PREFIX}{deviceid_text}{timestamp_part}".encode("utf-8", "surrogatepass") + values_part
    digest = _xxh3_128(content)[:RECORD_ID_BYTES]
    return _b2a_base64(digest, newline=False).translate(_URLSAFE).decode()


def unusual_numbers(raw: list[Any], csv: bool, reasons: list[str]) -> tuple[list[float | None], bytes]:
    """The five values (a finite float, or None with its reason) and their id bytes, for a reading
    whose values are not all possible floats: strings in CSV, integers, missing or unusable values."""
    numbers: list[float | None] = []
    for name, value, (low, high) in zip(NUMERIC_FIELDS, raw, _RANGES, strict=True):
        number, problem = coerce_number(value, csv=csv)
        if problem is not None:
            reasons.append(f"{name}:{problem}")
        elif not low <= number <= high:
            reasons.append(f"{name}:{OUT_OF_RANGE}")
        numbers.append(number)
    if None in numbers:
        return numbers, _unusable_values_part(raw, numbers, csv)
    return numbers, pack_values(*numbers)


def unusual_deviceid(deviceid: Any, reasons: list[str]) -> tuple[str | None, str]:
    """(the record's device id, its id text) of a device id that is not a non-blank string."""
    if deviceid is None or (type(deviceid) is str and not deviceid.strip()):
        reasons.append("deviceid:" + MISSING)
        return deviceid, ""
    if type(deviceid) is int:  # a numeric device id is still an id; written as its decimal text
        return str(deviceid), str(deviceid)
    reasons.append("deviceid:" + NOT_A_STRING)
    return None, "!" + as_text(deviceid)


def unusual_timestamp(stamp: Any, reasons: list[str]) -> tuple[str | None, str]:
    """(the text the record keeps, its id text) of a timestamp that did not parse."""
    if stamp is None or (type(stamp) is str and not stamp.strip()):
        reasons.append("timestamp:" + MISSING)
        return stamp, unusable_timestamp_part("")
    if type(stamp) is str:
        reasons.append("timestamp:" + MALFORMED)
        return stamp, unusable_timestamp_part("!" + stamp)
    reasons.append("timestamp:" + NOT_A_STRING)
    text = as_text(stamp)
    return text, unusable_timestamp_part("!" + text)


def _unusable_values_part(raw: list[Any], numbers: list[float | None], csv: bool) -> bytes:
    """The id bytes of five values of which at least one is unusable: each usable one as its repr,
    each unusable one as "" (missing) or "!" and its text."""
    texts = []
    for value, number in zip(raw, numbers, strict=True):
        if number is not None:
            texts.append(repr(number))
            continue
        _number, problem = coerce_number(None if csv and value == CSV_NULL else value, csv=csv)
        texts.append("" if problem == MISSING else "!" + _unusable_text(value, problem or NOT_A_NUMBER))
    return ("!" + _SEP.join(texts)).encode("utf-8", "surrogatepass")
