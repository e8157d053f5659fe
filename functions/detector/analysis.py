"""Per-reading analysis: validation, the three anomaly rules, the record id and the analysis record.

One path: ``Analyzer.record(item)`` builds the analysis record of any item as a dict (keys exactly
``schema.ANALYSIS_KEYS``, in order) and ``Analyzer.line(item)`` serialises it with ``orjson``, the
encoder the Powertools docs recommend for speed (``Logger(json_serializer=orjson.dumps)``). Usual
readings take the cheap type checks at the top of each step; unusual ones (a missing field, a string, an
impossible value...) go through the helpers that name the problem, in the same function.

Decisions (documented in docs/detector.md):

* The anomaly rules apply to every finite value of their field (every value ``coerce_number``
  accepts), even a physically impossible one: humidity 150 is a ``humidity_anomaly`` and also
  ``humidity:out_of_range``. A value that is missing, non-numeric or not finite breaks no rule (there is
  nothing to compare) and is null in ``metrics``; the other fields' rules still apply, so a reading with
  an unusable temperature and battery 10 is ``low_battery`` beside ``temperature:not_finite``.
  ``invalidreasons`` (data quality) and ``anomalies`` (the rules) are independent findings, side by side.
* ``healthstatus`` is one word for both, by precedence: ``anomalies_detected`` if the reading broke any
  rule, else ``invalid`` if it has any invalid reason, else ``healthy``. Whether a reading is valid is
  ``invalidreasons`` being empty, never ``healthstatus <> 'invalid'``.
* Evidence only where it is needed: ``readingtimestamp`` (the text as it arrived) is written only when
  it is not a usable timestamp (a usable one is ``readingtime``, exactly), and ``sourcefile`` (the UNLOAD
  file, relative to the run's folder) only for an invalid reading, the one an operator traces back.
  ``(runid, sourceindex)`` names the processed row: the map's item index is unique within a map run.
* A record too large for one Firehose record (``row:too_large``) keeps its anomalies: only long text
  fields are cut, and three anomaly entries always fit.
* ``recordid`` is 96 bits of the sha256 of the reading's canonical content (a versioned prefix, the
  device id, the instant as fixed-width UTC text, the five values after parsing as IEEE 754 bytes), in
  URL-safe base64 (16 characters). A Parquet 21.5 and a CSV "21.5" give the same id, in every run.
  Unusable values enter tagged with ``!`` and their JSON text, so distinct bad readings keep distinct
  ids. The item index is not part of it: the same reading is the same record.
  Collision safety: de-duplication compares ids within what one query selects (a run, or a day of
  records). For n ids the chance that any two collide is at most n²/2^97: for 10^8 readings a day (the
  planner's largest volume) about 6·10^-14 per day, below 3·10^-10 over ten years of days.
* Reasons are stable codes ``<field>:<problem>`` (``humidity:out_of_range``) that group well in Athena.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import orjson

from . import schema
from .config import DetectorConfig, InputFormat

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
_T_MIN, _T_MAX = PHYSICAL_RANGES["temperature"]
if _RANGES[1:] != ((0.0, 100.0), (0.0, 100.0), (-90.0, 90.0), (-180.0, 180.0)):  # pragma: no cover
    raise ImportError("PHYSICAL_RANGES changed: update the inline range checks in Analyzer.record")

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

# A Firehose record holds at most 1,000 KiB (PutRecordBatch API reference); one line plus its newline
# must fit in one record. Longer text fields are cut to this many characters on the rare oversized line.
MAX_LINE_BYTES: Final = 1_024_000 - 1
TRUNCATED_TEXT_CHARS: Final = 256

CANONICAL_PREFIX: Final = "sensorflow.reading.v2"  # versioned: a change of canonical form changes the prefix
RECORD_ID_BYTES: Final = 12  # 96 bits: 16 base64 characters, no padding (collision bound: module docstring)
_SEP: Final = "\x1f"  # ASCII unit separator: cannot be confused with the separators of ISO dates or numbers
# How UNLOAD's TEXTFILE (CSV) output writes SQL NULL (Hive's default serialization.null.format).
CSV_NULL: Final = "\\N"

_sha256 = hashlib.sha256
_b64 = base64.urlsafe_b64encode
_pack_values = struct.Struct("<5d").pack
_PREFIX_BYTES: Final = (CANONICAL_PREFIX + _SEP).encode()
_INSTANT_TAG: Final = b"\x1fT"  # separates the instant from the device id; unusable ones start "\x1f!"
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_TIMESTAMP_SHAPES: Final = frozenset({"--T", "-- "})
_TS_CACHE_MAX: Final = 16_384
# timestamp text -> (UTC date, the instant as it enters the id, the instant as ISO text), or None if
# malformed. Per process (the local runner's workers each have their own); bounded; readings share
# many timestamps.
_ts_cache: dict[str, tuple[str, bytes, str] | None] = {}


def parse_timestamp(text: str) -> tuple[str, bytes, str] | None:
    """Parse an ISO 8601 timestamp into (UTC date, the instant as it enters the id, the instant as
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ``), or None. The ISO text has one width whatever notation arrived, so
    it sorts as time does, and it is the instant's canonical form in the record id.

    Accepts a date and a time separated by ``T`` or a space (either case), optional fractional seconds
    and an optional zone (``Z`` or an offset), surrounding blanks; a timestamp without a zone is taken
    as UTC (Athena ``timestamp`` values cast to varchar carry none). Rejects anything else, including a
    date alone, week and ordinal dates. Results are cached per process (bounded).
    """
    cached = _ts_cache.get(text, False)
    if cached is not False:
        return cached
    result = _parse_timestamp(text)
    if len(_ts_cache) >= _TS_CACHE_MAX:
        _ts_cache.clear()
    _ts_cache[text] = result
    return result


def _parse_timestamp(text: str) -> tuple[str, bytes, str] | None:
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
    return iso[:10], _INSTANT_TAG + iso.encode(), iso


def _timestamp_part(text: str) -> bytes:
    """The id bytes of an unusable timestamp: its text, in a form no instant can take."""
    return (_SEP + text + _SEP).encode("utf-8", "surrogatepass")


def source_key(source: Any) -> str | None:
    """The item's file relative to the run's UNLOAD folder (the ItemSelector sends it so); an S3 URI
    (a hand-made item) is reduced the same way, to its last path segment."""
    if type(source) is not str or not source:
        return None
    if source[:5].lower() == "s3://":
        return source.rsplit("/", 1)[-1] or None
    return source


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


def record_id(deviceid_text: str, timestamp_part: bytes, values_part: bytes) -> str:
    """96 bits of the sha256 of the canonical content (prefix, device id, timestamp part, values part),
    URL-safe base64. The values part of a reading whose five values are finite floats is their IEEE 754
    bytes (``struct`` ``<5d``): exactly "the values after parsing", whatever text they arrived as.
    ``surrogatepass`` keeps every JSON string (even a lone surrogate) hashable."""
    content = _PREFIX_BYTES + deviceid_text.encode("utf-8", "surrogatepass") + timestamp_part + values_part
    return _b64(_sha256(content).digest()[:RECORD_ID_BYTES]).decode()


@dataclass(frozen=True, slots=True)
class Analysis:
    """The result for one item: the record, and what the batch counters need."""

    record: dict[str, Any]
    anomaly_types: tuple[str, ...]  # the rules the reading broke, valid or not (empty when none)
    invalid: bool  # the reading has invalid reasons (counted apart from its anomalies)


@dataclass(frozen=True, slots=True)
class BatchContext:
    """Per-invocation values written into every record."""

    rundate: str | None  # YYYY-MM-DD or None: the date of a reading whose timestamp is unusable
    runid: str | None  # the run's execution name
    processedat: int  # UTC milliseconds since the epoch
    fallback_date: str  # analysisdate of a reading whose timestamp is unusable


_MAX_BIGINT: Final = 2**63
_EXACT_INT: Final = 2**53


def _row_fields(item: Any) -> tuple[Any, Any, Any, bool]:
    """(the reading's eight values or None, its file, its item index, whether it was a row object).

    A map item is ``{"r": [deviceid, timestamp, temperature, humidity, batterylevel, latitude,
    longitude, truncated], "s": <file>, "i": <index>}`` (``schema.ITEM_KEYS``); the ItemSelector sends the JSON text
    of a row that is not an object as ``r``. A dict without ``r`` is a bare row (a manual invocation).
    """
    if type(item) is dict:
        if schema.ITEM_ROW in item:
            values = item[schema.ITEM_ROW]
            index = item.get(schema.ITEM_INDEX)
            if type(index) is not int or not 0 <= index < _MAX_BIGINT:  # not an item index (Glue bigint)
                index = None
            source = item.get(schema.ITEM_FILE)
            if isinstance(values, list) and len(values) == len(schema.ITEM_FIELDS):
                return values, source, index, True
            return values, source, index, False
        get = item.get
        return [get(name) for name in schema.ITEM_FIELDS], None, None, True
    return item, None, None, False


class Analyzer:
    """Analyses the items of one batch; prepares every per-batch constant once."""

    def __init__(self, config: DetectorConfig, context: BatchContext) -> None:
        self.config = config
        self.context = context
        self._csv = config.input_format is InputFormat.CSV
        t = config.thresholds
        # (value index, compare, threshold, type, threshold text), in the sample's order (temperature,
        # humidity, battery); strict inequalities. Threshold texts as in the reference sample: '>35°C'.
        self._rules = (
            (0, True, float(t.temperature_high), schema.TEMPERATURE_SPIKE, f">{format_number(t.temperature_high)}°C"),
            (0, False, float(t.temperature_low), schema.TEMPERATURE_SPIKE, f"<{format_number(t.temperature_low)}°C"),
            (1, True, float(t.humidity_high), schema.HUMIDITY_ANOMALY, f">{format_number(t.humidity_high)}%"),
            (1, False, float(t.humidity_low), schema.HUMIDITY_ANOMALY, f"<{format_number(t.humidity_low)}%"),
            (2, False, float(t.battery_low), schema.LOW_BATTERY, f"<{format_number(t.battery_low)}%"),
        )  # fmt: skip
        self._t_high, self._t_low = float(t.temperature_high), float(t.temperature_low)
        self._h_high, self._h_low = float(t.humidity_high), float(t.humidity_low)
        self._b_low = float(t.battery_low)
        self.invalid_reasons: Counter[str] = Counter()  # reason -> invalid readings (for the log line)

    def anomalies(self, t: float | None, h: float | None, b: float | None) -> list[dict[str, Any]]:
        """The rules, as data. A value is a finite float (possible or not) or None (unusable), which
        breaks no rule; the other values are still judged."""
        values = (t, h, b)
        found = []
        for position, above, threshold, kind, text in self._rules:
            value = values[position]
            if value is not None and (value > threshold if above else value < threshold):
                found.append({"type": kind, "value": value, "threshold": text})
        return found

    def analyse(self, item: Any) -> Analysis:
        """The analysis of one item (any JSON value); never raises on the item's content."""
        record, types, invalid = self.record(item)
        return Analysis(record=record, anomaly_types=types, invalid=invalid)

    def line(self, item: Any) -> tuple[bytes, tuple[str, ...], bool]:
        """(the record as one JSON line without newline, anomaly types, invalid?)."""
        record, types, invalid = self.record(item)
        try:
            text = orjson.dumps(record)
        except orjson.JSONEncodeError:  # a lone surrogate in a text field: not UTF-8, made so
            text = orjson.dumps(_utf8_safe(record))
        if len(text) > MAX_LINE_BYTES:
            record = _shrink(record)
            invalid = True
            self.invalid_reasons[REASON_TOO_LARGE] += 1
            text = orjson.dumps(_utf8_safe(record))
        return text, types, invalid

    def record(self, item: Any) -> tuple[dict[str, Any], tuple[str, ...], bool]:
        """(the analysis record, anomaly types, invalid?) of one item."""
        ctx = self.context
        values, source, index, is_row = _row_fields(item)
        reasons: list[str] = []
        if not is_row:
            reasons.append(REASON_NOT_AN_OBJECT)
            rid = record_id(
                "!row", _timestamp_part(""), ("!" + as_text(values)).encode("utf-8", "surrogatepass")
            )
            deviceid = stamp = parsed = None
            numbers: list[float | None] = [None] * 5
        else:
            csv = self._csv
            deviceid, stamp, t, h, b, la, lo, cut = values
            if csv:
                # UNLOAD's CSV writes SQL NULL as \N: the same missing value other formats deliver as null.
                deviceid, stamp, t, h, b, la, lo, cut = (None if v == CSV_NULL else v for v in values)
            # The export names the text fields it cut to fit a map batch; what is left is still the value.
            cut_fields = cut.split(",") if type(cut) is str else ()
            # --- device id
            if type(deviceid) is str and deviceid.strip():
                deviceid_text = deviceid
            else:
                deviceid, deviceid_text = _deviceid(deviceid, reasons)
            if "deviceid" in cut_fields:
                reasons.append("deviceid:" + TRUNCATED)
            # --- timestamp
            parsed = None
            if type(stamp) is str:
                parsed = _ts_cache.get(stamp) or parse_timestamp(stamp)
            if parsed is not None:
                timestamp_part = parsed[1]
            else:
                stamp, timestamp_part = _bad_timestamp(stamp, reasons)
            if "timestamp" in cut_fields:
                reasons.append("timestamp:" + TRUNCATED)
            if (
                csv and type(t) is str and type(h) is str and type(b) is str
                and type(la) is str and type(lo) is str and "_" not in t + h + b + la + lo
            ):  # fmt: skip
                # CSV: five numeric strings (float() takes blanks and exponents, as coerce_number does;
                # "1_000" it would take too, so such rows go to _numbers). A ValueError leaves the
                # strings for _numbers to name.
                try:  # noqa: SIM105 - per row: a try costs nothing when it does not raise, suppress() does
                    t, h, b, la, lo = float(t), float(h), float(b), float(la), float(lo)
                except ValueError:
                    pass
            # Step Functions writes an integral double without its fraction (37.0 arrives as 37): such an
            # integer is that double. Beyond 2^53 an integer has no exact double: coerce_number decides.
            if type(t) is int and -_EXACT_INT < t < _EXACT_INT:
                t = float(t)
            if type(h) is int and -_EXACT_INT < h < _EXACT_INT:
                h = float(h)
            if type(b) is int and -_EXACT_INT < b < _EXACT_INT:
                b = float(b)
            if type(la) is int and -_EXACT_INT < la < _EXACT_INT:
                la = float(la)
            if type(lo) is int and -_EXACT_INT < lo < _EXACT_INT:
                lo = float(lo)
            # --- the five values. Usually five floats, all possible: every comparison with NaN is false
            # and every range is finite, so the range checks also refuse NaN and the infinities.
            if (
                type(t) is float and type(h) is float and type(b) is float
                and type(la) is float and type(lo) is float
                and _T_MIN <= t <= _T_MAX and 0.0 <= h <= 100.0 and 0.0 <= b <= 100.0
                and -90.0 <= la <= 90.0 and -180.0 <= lo <= 180.0
            ):  # fmt: skip
                numbers = [t, h, b, la, lo]
                values_part = _pack_values(t, h, b, la, lo)
            else:
                numbers, values_part = _numbers([t, h, b, la, lo], csv, reasons)
            rid = record_id(deviceid_text, timestamp_part, values_part)

        t, h, b = numbers[0], numbers[1], numbers[2]
        if (
            t is not None and self._t_low <= t <= self._t_high
            and h is not None and self._h_low <= h <= self._h_high
            and b is not None and b >= self._b_low
        ):  # fmt: skip
            anomalies: list[dict[str, Any]] = []
            types: tuple[str, ...] = ()
        else:
            anomalies = self.anomalies(t, h, b)
            types = tuple(a["type"] for a in anomalies)
        if reasons:
            self.invalid_reasons.update(reasons)
            status = schema.ANOMALIES_DETECTED if anomalies else schema.INVALID
        else:
            status = schema.ANOMALIES_DETECTED if anomalies else schema.HEALTHY
        record = {
            "recordid": rid,
            "deviceid": deviceid,
            "analysisdate": parsed[0] if parsed is not None else ctx.fallback_date,
            "readingtime": parsed[2] if parsed is not None else None,
            "readingtimestamp": None if parsed is not None else stamp,
            "metrics": {
                "temperature": t,
                "humidity": h,
                "batterylevel": b,
                "latitude": numbers[3],
                "longitude": numbers[4],
            },
            "anomalies": anomalies,
            "healthstatus": status,
            "invalidreasons": reasons,
            "sourcefile": source_key(source) if reasons else None,
            "sourceindex": index,
            "runid": ctx.runid,
            "processedatms": ctx.processedat,
        }
        return record, types, bool(reasons)


def _numbers(raw: list[Any], csv: bool, reasons: list[str]) -> tuple[list[float | None], bytes]:
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
    return numbers, _pack_values(*numbers)


def _deviceid(deviceid: Any, reasons: list[str]) -> tuple[str | None, str]:
    """(the record's device id, its id text) of a device id that is not a non-blank string."""
    if deviceid is None or (type(deviceid) is str and not deviceid.strip()):
        reasons.append("deviceid:" + MISSING)
        return deviceid, ""
    if type(deviceid) is int:  # a numeric device id is still an id; written as its decimal text
        return str(deviceid), str(deviceid)
    reasons.append("deviceid:" + NOT_A_STRING)
    return None, "!" + as_text(deviceid)


def _bad_timestamp(stamp: Any, reasons: list[str]) -> tuple[str | None, bytes]:
    """(the text the record keeps, the id bytes) of a timestamp that did not parse."""
    if stamp is None or (type(stamp) is str and not stamp.strip()):
        reasons.append("timestamp:" + MISSING)
        return stamp, _timestamp_part("")
    if type(stamp) is str:
        reasons.append("timestamp:" + MALFORMED)
        return stamp, _timestamp_part("!" + stamp)
    reasons.append("timestamp:" + NOT_A_STRING)
    text = as_text(stamp)
    return text, _timestamp_part("!" + text)


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


def _utf8_safe(value: Any) -> Any:
    """A record with every text made valid UTF-8 (a lone surrogate becomes U+FFFD)."""
    if type(value) is str:
        return _SURROGATE.sub("\ufffd", value)
    if type(value) is dict:
        return {key: _utf8_safe(inner) for key, inner in value.items()}
    if type(value) is list:
        return [_utf8_safe(inner) for inner in value]
    return value


def _shrink(record: dict[str, Any]) -> dict[str, Any]:
    """An oversized record made deliverable: long texts cut, reason ``row:too_large`` added.

    Only a reading with enormous text fields gets here (a Step Functions child's input is at most
    256 KiB, but a bare-row invocation may be larger). The id still comes from the full content. The
    anomalies stay (at most three short entries), so the verdict is ``anomalies_detected`` if there are
    any and ``invalid`` otherwise, as for any record.
    """
    shrunk = dict(record)
    for key in ("deviceid", "readingtimestamp", "sourcefile", "runid"):
        value = shrunk[key]
        if type(value) is str and len(value) > TRUNCATED_TEXT_CHARS:
            shrunk[key] = value[:TRUNCATED_TEXT_CHARS]
    if not shrunk["anomalies"]:
        shrunk["healthstatus"] = schema.INVALID
    shrunk["invalidreasons"] = [*record["invalidreasons"], REASON_TOO_LARGE]
    return shrunk


def batch_context(batch_input: Any, *, now: datetime) -> tuple[BatchContext, list[str]]:
    """The per-invocation values from ``BatchInput`` (null-safe), and warnings about unusable ones."""
    warnings: list[str] = []
    batch = batch_input if isinstance(batch_input, dict) else {}
    if batch_input is not None and not isinstance(batch_input, dict):
        warnings.append(f"BatchInput is {type(batch_input).__name__}, not an object: ignored")
    rundate = batch.get("runDate")
    if rundate is not None and not _is_date(rundate):
        warnings.append(f"BatchInput.runDate={as_text(rundate)[:64]!r} is not YYYY-MM-DD: ignored")
        rundate = None
    raw_run = batch.get(schema.BATCH_RUN)
    runid = run_name(raw_run)
    if raw_run is not None and runid is None:
        warnings.append(f"BatchInput.{schema.BATCH_RUN} is not an execution name: ignored")
    now_utc = now.astimezone(UTC)
    processedat = int(now_utc.timestamp() * 1000)
    fallback = rundate if rundate is not None else now_utc.date().isoformat()
    return BatchContext(
        rundate=rundate, runid=runid, processedat=processedat, fallback_date=fallback
    ), warnings


def _is_date(value: Any) -> bool:
    if (
        type(value) is not str
        or len(value) != 10
        or not value.isascii()
        or value[4] != "-"
        or value[7] != "-"
    ):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True
