"""Per-reading analysis: validation, the three anomaly rules, the deterministic id and the JSON line.

Two paths produce the same bytes:

* ``Analyzer.analyse(item)`` is the reference: plain code that returns the analysis record as a dict
  (keys exactly ``schema.ANALYSIS_KEYS``, in order). It handles every kind of bad input.
* ``Analyzer.line(item)`` is the per-row hot path used by the handler: (line, anomaly types, whether the
  reading is invalid). For a valid reading it writes the
  JSON line from fragments prepared once per batch (keys, constants, thresholds), because the stdlib
  encoder alone costs more per record than the whole 5 µs budget of the 200,000 rows/s target on this
  machine. Anything unusual (a missing field, a string, an impossible value...) falls back to the
  reference path. A property test checks that both paths give byte-identical lines for arbitrary input,
  and that the line equals ``json.dumps(record, separators=(",", ":"))``.

Decisions (documented in docs/detector.md):

* The anomaly rules apply to every finite value of their field (every value ``coerce_number``
  accepts), even a physically impossible one: humidity 150 is a ``humidity_anomaly`` and also
  ``humidity:out_of_range``. A value that is missing, non-numeric or not finite breaks no rule (there is
  nothing to compare) and is null in ``metrics``; the other fields' rules still apply, so a reading with
  an unusable temperature and battery 10 is ``low_battery`` beside ``temperature:not_finite``.
  ``invalidreasons`` (data quality) and ``anomalies`` (the rules) are independent findings, side by side.
* ``healthstatus`` is one word for both, by precedence: ``anomalies_detected`` if the reading broke any
  rule, else ``invalid`` if it has any invalid reason, else ``healthy``. An anomaly is what an operator
  must act on, so it wins the single verdict; whether a reading is valid is ``invalidreasons`` being
  empty, never ``healthstatus <> 'invalid'``.
* A record too large for one Firehose record (``row:too_large``) keeps its anomalies: only long text
  fields are cut, and three anomaly entries always fit.
* ``recordid`` is the sha256 of the reading's canonical content: a versioned prefix, the device id, the
  timestamp as a UTC instant (its packed fields; naive timestamps are taken as UTC) and the five values
  after parsing (their IEEE 754 bytes), so a Parquet 21.5 and a CSV "21.5" give the same id, in every
  run. Unusable values enter tagged with ``!`` and their JSON text, so distinct bad readings still get
  distinct ids. The map item index is deliberately not part of it: the same reading is the same record.
* Reasons are stable codes ``<field>:<problem>`` (``humidity:out_of_range``) that group well in Athena.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from json.encoder import encode_basestring_ascii
from typing import Any, Final

from . import schema
from .config import DetectorConfig, InputFormat

# --- the five numeric fields, in the order of the metrics struct (schema.METRICS_TYPE)
NUMERIC_FIELDS: Final = ("temperature", "humidity", "batterylevel", "latitude", "longitude")
if not set(NUMERIC_FIELDS) <= set(schema.READING_FIELDS):  # pragma: no cover - guards a schema edit
    raise ImportError("schema.READING_FIELDS no longer holds the five numeric fields the detector reads")

# Physically possible values, inclusive. Temperature cannot be below absolute zero; the others are the
# ranges named by the contract (percentages and WGS84 coordinates).
PHYSICAL_RANGES: Final = {
    "temperature": (-273.15, sys.float_info.max),  # no upper bound but finiteness
    "humidity": (0.0, 100.0),
    "batterylevel": (0.0, 100.0),
    "latitude": (-90.0, 90.0),
    "longitude": (-180.0, 180.0),
}

(_T_MIN, _T_MAX), (_H_MIN, _H_MAX), (_B_MIN, _B_MAX), (_LA_MIN, _LA_MAX), (_LO_MIN, _LO_MAX) = (
    PHYSICAL_RANGES[name] for name in NUMERIC_FIELDS
)

# --- invalid reasons: "<field>:<problem>"
MISSING: Final = "missing"  # absent, null, or an empty string
NOT_A_NUMBER: Final = "not_a_number"  # a string (outside CSV), a boolean, an object, a non-numeric string
NOT_FINITE: Final = "not_finite"  # NaN or +/-Infinity (or an integer too large for a double)
OUT_OF_RANGE: Final = "out_of_range"  # physically impossible (PHYSICAL_RANGES)
NOT_A_STRING: Final = "not_a_string"  # device id or timestamp of another type
MALFORMED: Final = "malformed"  # a timestamp that is not ISO 8601 with a date and a time
TRUNCATED: Final = "truncated"  # the export cut the text to its bound (schema.TRUNCATED_FIELD names it)
REASON_NOT_AN_OBJECT: Final = "row:not_an_object"  # the item (or its "row") is not a JSON object
REASON_TOO_LARGE: Final = "row:too_large"  # the record would not fit in one Firehose record

# A Firehose record holds at most 1,000 KiB (PutRecordBatch API reference); one line plus its newline
# must fit in one record. Longer text fields are cut to this many characters on the rare oversized line.
MAX_LINE_CHARS: Final = 1_024_000 - 1
TRUNCATED_TEXT_CHARS: Final = 256

CANONICAL_PREFIX: Final = "sensorflow.reading.v1"  # versioned: a change of canonical form changes the prefix
_SEP: Final = "\x1f"  # ASCII unit separator: cannot be confused with the separators of ISO dates or numbers

# The per-reading values Analyzer.line fills in, in the order the schema places them.
_FAST_HOLES: Final = (
    "recordid", "deviceid", "analysisdate", "readingtimestamp", "readingtime", "metrics",
    "anomalies", "anomalycount", "healthstatus", "sourcefile", "sourceindex",
)  # fmt: skip

_QUOTED_HOLES: Final = frozenset({"recordid", "analysisdate", "readingtime", "healthstatus"})
# How UNLOAD's TEXTFILE (CSV) output writes SQL NULL (Hive's default serialization.null.format).
CSV_NULL: Final = "\\N"

_sha256 = hashlib.sha256
_pack_values = struct.Struct("<5d").pack
_PREFIX_BYTES: Final = (CANONICAL_PREFIX + _SEP).encode()

_TS_CACHE_MAX: Final = 16_384
# timestamp text -> (UTC date, the instant as it enters the id, the instant as ISO text), or None if
# malformed. Per process (the local runner's workers each have their own); bounded; readings share
# many timestamps.
_ts_cache: dict[str, tuple[str, bytes, str] | None] = {}
_TIMESTAMP_SHAPES: Final = frozenset({"--T", "-- "})
_fromisoformat = datetime.fromisoformat
_INSTANT_TAG: Final = b"\x1fT"  # separates the instant from the device id; unusable ones start "\x1f!"


def _takes_hour_24() -> bool:
    """Whether fromisoformat reads "T24:00:00" as the next day's midnight (Python 3.14+)."""
    try:
        _fromisoformat("2024-01-01T24:00:00")
    except ValueError:
        return False
    return True  # pragma: no cover - not a supported runtime (3.11 to 3.13)


# Athena's zone-less shape (_parse_timestamp): the characters at positions 4, 7, 10, 13, 16 and 19 (none
# beyond the text's end), and by length what pads it to YYYY-MM-DDTHH:MM:SS.ffffffZ. Where hour 24 parses
# (as the next day), the input's text is no longer the instant's: the shortcut is off, the general path
# decides.
_ATHENA_SHAPES: Final = frozenset() if _takes_hour_24() else frozenset({"-- ::.", "--T::.", "-- ::", "--T::"})
_ATHENA_PAD: Final = {19: ".000000Z"} | {size: "0" * (26 - size) + "Z" for size in range(21, 27)}


def format_number(value: float) -> str:
    """Format a threshold compactly, as the reference sample writes it: 35 -> "35", 35.5 -> "35.5"."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def parse_timestamp(text: str) -> tuple[str, bytes, str] | None:
    """Parse an ISO 8601 timestamp into (UTC date, the instant as it enters the id, the instant as
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ``), or None. The ISO text has one width whatever notation arrived, so
    it sorts as time does.

    Accepts a date and a time separated by ``T`` or a space (either case), optional fractional seconds
    and an optional zone (``Z`` or an offset), surrounding blanks; a timestamp without a zone is taken
    as UTC (Athena ``timestamp`` values cast to varchar carry none). Rejects anything else, including a
    date alone, week and ordinal dates. Results are cached per process (bounded), because a day's
    readings often share timestamps.
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
    # Athena's shape first: YYYY-MM-DD[T ]hh:mm:ss[.f...] without a zone, the separators checked by one
    # slice (positions 4, 7, 10, 13, 16 and 19) and the length by the pad lookup. Once fromisoformat
    # accepts such a text as naive, every other position is an ASCII digit where isoformat() would
    # write it, and the fraction (1 to 6 digits) ends the text: the fixed-width ISO text is the input
    # with "T" for the space, padded. isoformat() alone costs six times as much.
    if text[4:20:3] in _ATHENA_SHAPES:
        pad = _ATHENA_PAD.get(len(text))
        if pad is not None:
            try:
                parsed = _fromisoformat(text)
            except ValueError:
                pass  # the general path below decides (it also retries a lower-case zone letter)
            else:
                if parsed.tzinfo is None:
                    return text[:10], _INSTANT_TAG + parsed.__reduce__()[1][0], text.replace(" ", "T") + pad
    return _parse_timestamp_text(text)


def _parse_timestamp_text(text: str) -> tuple[str, bytes, str] | None:
    # The general path: the extended calendar form YYYY-MM-DD[T ]hh..., checked by one slice (positions
    # 4, 7 and 10). datetime.fromisoformat alone would also take week dates, ordinal dates and a bare
    # date, which are not reading timestamps.
    s = text
    if s[4:11:3] not in _TIMESTAMP_SHAPES:
        s = text.strip()
        s = s[:10] + s[10:11].upper() + s[11:-1] + s[-1:].upper() if len(s) > 11 else s
        if s[4:11:3] not in _TIMESTAMP_SHAPES:
            return None
    try:
        # Python 3.11+ parses most ISO 8601 forms, including fractional seconds beyond microseconds.
        parsed = _fromisoformat(s)
    except ValueError:
        # Surrounding blanks or a lower-case zone letter ("...z", RFC 3339 allows it): one retry.
        retry = s.strip()
        retry = retry[:-1] + retry[-1:].upper()
        if retry == s:
            return None
        s = retry
        try:
            parsed = _fromisoformat(s)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        day = s[:10]
    else:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # an offset that moves the instant outside years 1..9999
            return None
        day = parsed.date().isoformat()
    # The instant's fields as bytes: a naive datetime's pickle state, the 10 bytes year, month, day, hour,
    # minute, second, microsecond (a format fixed for pickle compatibility across Python versions). The
    # same instant gives the same bytes whatever text it arrived as; one C call, cheaper than packing.
    # isoformat() without timespec is twice as fast and omits a zero fraction; pad it to the fixed width.
    iso = parsed.isoformat()
    return day, _INSTANT_TAG + parsed.__reduce__()[1][0], (iso + ".000000Z" if len(iso) == 19 else iso + "Z")


def _timestamp_part(text: str) -> bytes:
    """The id bytes of an unusable timestamp: its text, in a form no packed instant can take."""
    return (_SEP + text + _SEP).encode("utf-8", "surrogatepass")


def normalise_source(source: Any) -> str | None:
    """The S3 URI of the item's file with the scheme lower-cased (the map's context writes ``S3://``)."""
    if type(source) is not str or not source:
        return None
    if source[:5].lower() == "s3://":
        return "s3://" + source[5:]
    return source


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


def record_id(deviceid_text: str, timestamp_part: bytes, values_part: bytes) -> str:
    """sha256 (hex) of the canonical content: prefix, device id, timestamp part, values part.

    The values part of a reading whose five values are finite floats is their IEEE 754 bytes
    (``struct`` ``<5d``): exactly "the values after parsing", whatever text they arrived as, and cheaper
    than any text form. ``surrogatepass`` keeps every JSON string (even a lone surrogate) hashable.
    """
    content = _PREFIX_BYTES + deviceid_text.encode("utf-8", "surrogatepass") + timestamp_part + values_part
    return _sha256(content).hexdigest()


@dataclass(frozen=True, slots=True)
class Analysis:
    """The reference result for one item: the record, and what the batch counters need."""

    record: dict[str, Any]
    anomaly_types: tuple[str, ...]  # the rules the reading broke, valid or not (empty when none)
    invalid: bool  # the reading has invalid reasons (counted apart from its anomalies)


@dataclass(frozen=True, slots=True)
class BatchContext:
    """Per-invocation values written into every record."""

    rundate: str | None  # YYYY-MM-DD or None
    runid: str | None
    processedat: str  # ISO 8601 UTC with "Z", millisecond precision
    fallback_date: str  # analysisdate of a reading whose timestamp is unusable


def _encode_record(record: dict[str, Any]) -> str:
    # The reference encoding: what the fast path must reproduce byte for byte. ensure_ascii keeps every
    # line pure ASCII (so its length is its size in bytes, and lone surrogates cannot break UTF-8).
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


class Analyzer:
    """Analyses the items of one batch; prepares every per-batch constant once."""

    def __init__(self, config: DetectorConfig, context: BatchContext) -> None:
        self.config = config
        self.context = context
        self._csv = config.input_format is InputFormat.CSV
        t = config.thresholds
        self._t_high, self._t_low = float(t.temperature_high), float(t.temperature_low)
        self._h_high, self._h_low = float(t.humidity_high), float(t.humidity_low)
        self._b_low = float(t.battery_low)
        # (type, threshold text) of each rule side, as in the reference sample: '>35°C', '<20%'.
        self._rule_text = {
            "t_high": (schema.TEMPERATURE_SPIKE, f">{format_number(t.temperature_high)}°C"),
            "t_low": (schema.TEMPERATURE_SPIKE, f"<{format_number(t.temperature_low)}°C"),
            "h_high": (schema.HUMIDITY_ANOMALY, f">{format_number(t.humidity_high)}%"),
            "h_low": (schema.HUMIDITY_ANOMALY, f"<{format_number(t.humidity_low)}%"),
            "b_low": (schema.LOW_BATTERY, f"<{format_number(t.battery_low)}%"),
        }
        # JSON fragments of one anomaly entry around its value: {"type":...,"value":<v>,"threshold":...}
        self._anomaly_fragments = {
            side: (
                '{"type":' + encode_basestring_ascii(kind) + ',"value":',
                ',"threshold":' + encode_basestring_ascii(text) + "}",
            )
            for side, (kind, text) in self._rule_text.items()
        }
        self._chunks = self._line_chunks()
        self._sources: dict[Any, tuple[str | None, str]] = {}
        self._source_json: dict[str, str] = {}
        self.invalid_reasons: Counter[str] = Counter()  # reason -> invalid readings (for the log line)
        # line(item) -> (JSON line without newline, anomaly types, invalid?). Equal, byte for byte, to
        # json.dumps of analyse(item).record; a closure (not a method) to save a call per row.
        self.line: LineFn = self._make_line()

    # ----------------------------------------------------------------------------------------- fast path
    def _line_chunks(self) -> tuple[str, ...]:
        """The constant text of a valid reading's line, between the per-reading values, in schema order.

        Generated from ``schema.ANALYSIS_KEYS``: per-batch constants are baked in as JSON; between two
        chunks goes one per-reading value, already JSON. Keys come from the schema, so the order cannot
        drift from the table; a guard refuses a schema whose per-reading values moved.
        """
        ctx = self.context
        baked = {
            "readingscount": "1",
            "invalidreasons": "[]",
            "rundate": json.dumps(ctx.rundate, ensure_ascii=True),
            "runid": json.dumps(ctx.runid, ensure_ascii=True),
            "processedat": json.dumps(ctx.processedat, ensure_ascii=True),
        }
        chunks: list[str] = []
        current = "{"
        holes: list[str] = []
        for position, key in enumerate(schema.ANALYSIS_KEYS):
            current += ("," if position else "") + encode_basestring_ascii(key) + ":"
            if key in baked:
                current += baked[key]
            elif key == "metrics":
                holes.append(key)
                for i, name in enumerate(NUMERIC_FIELDS):  # one value per metric field
                    current += ("," if i else "{") + encode_basestring_ascii(name) + ":"
                    chunks.append(current)
                    current = ""
                current += "}"
            else:
                holes.append(key)
                quote = '"' if key in _QUOTED_HOLES else ""  # hex id, ISO date, verdict: nothing to escape
                chunks.append(current + quote)
                current = quote
        chunks.append(current + "}")
        if tuple(holes) != _FAST_HOLES:
            raise RuntimeError(
                f"schema.ANALYSIS_KEYS changed the order of per-reading values to {holes}: update Analyzer.line"
            )
        return tuple(chunks)

    def _source(self, item: dict) -> tuple[str | None, str]:
        raw = item.get("source")
        try:
            return self._sources[raw]
        except KeyError:
            normalised = normalise_source(raw)
            encoded = encode_basestring_ascii(normalised) if normalised is not None else "null"
            self._sources[raw] = (normalised, encoded)
            if type(raw) is str:
                self._source_json[raw] = encoded
            return normalised, encoded
        except TypeError:  # an unhashable "source": not a URI
            return None, "null"

    def _make_line(self) -> LineFn:
        """Build the hot path as a closure: every per-batch constant is a local, not an attribute."""
        c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15 = self._chunks
        t_high, t_low, h_high, h_low, b_low = (
            self._t_high,
            self._t_low,
            self._h_high,
            self._h_low,
            self._b_low,
        )
        csv = self._csv
        slow = self._slow
        source_of = self._source
        sources = self._source_json  # raw "source" text -> its normalised URI as JSON
        anomalies_json = self._anomalies_json
        ts_cache, cache_max, cache_get, parse = _ts_cache, _TS_CACHE_MAX, _ts_cache.get, _parse_timestamp
        sha256 = _sha256
        pack = _pack_values
        prefix = _PREFIX_BYTES
        encode = encode_basestring_ascii
        t_min, t_max, h_min, h_max, b_min, b_max = _T_MIN, _T_MAX, _H_MIN, _H_MAX, _B_MIN, _B_MAX
        la_min, la_max, lo_min, lo_max = _LA_MIN, _LA_MAX, _LO_MIN, _LO_MAX
        healthy, anomalous = schema.HEALTHY, schema.ANOMALIES_DETECTED
        truncated_key = schema.TRUNCATED_FIELD
        no_types: tuple[str, ...] = ()

        def line(item: Any) -> tuple[str, tuple[str, ...], bool]:
            if type(item) is not dict:
                return slow(item)
            if "row" in item:
                row = item["row"]
                if type(row) is not dict:
                    return slow(item)
                source = item.get("source")
                source_json = sources.get(source) if type(source) is str else None
                if source_json is None:
                    source_json = source_of(item)[1]
                index = item.get("index")
                index = str(index) if type(index) is int else "null"
            else:
                row = item
                source_json = index = "null"
            get = row.get
            deviceid = get("deviceid")
            stamp = get("timestamp")
            if type(deviceid) is not str or type(stamp) is not str or not deviceid.strip():
                return slow(item)
            if csv and CSV_NULL in (deviceid, stamp):
                return slow(item)
            cut = get(truncated_key)
            if cut is not None and cut != CSV_NULL:  # the export cut a text: the reference path says so
                return slow(item)
            parsed = cache_get(stamp)
            if parsed is None:  # not seen yet, or malformed (cached as None: the slow path says why)
                parsed = parse(stamp)
                if parsed is None:
                    return slow(item)
                if len(ts_cache) >= cache_max:
                    ts_cache.clear()
                ts_cache[stamp] = parsed
            t, h, b = get("temperature"), get("humidity"), get("batterylevel")
            la, lo = get("latitude"), get("longitude")
            # Floats (the usual case) need no conversion: the range checks below also reject NaN and
            # the infinities, because every comparison with NaN is false and every range is finite.
            if (
                type(t) is float
                and type(h) is float
                and type(b) is float
                and type(la) is float
                and type(lo) is float
            ):
                pass
            elif (
                csv
                and type(t) is str
                and type(h) is str
                and type(b) is str
                and type(la) is str
                and type(lo) is str
            ):
                # CSV: float() takes what coerce_number takes (blanks around, exponents) except that it
                # also reads "1_000"; an empty string raises ValueError (missing) and goes the slow way.
                if "_" in t + h + b + la + lo:
                    return slow(item)
                try:
                    t, h, b, la, lo = float(t), float(h), float(b), float(la), float(lo)
                except ValueError:
                    return slow(item)
            else:
                t, problem_t = coerce_number(t, csv=csv)
                h, problem_h = coerce_number(h, csv=csv)
                b, problem_b = coerce_number(b, csv=csv)
                la, problem_la = coerce_number(la, csv=csv)
                lo, problem_lo = coerce_number(lo, csv=csv)
                if problem_t or problem_h or problem_b or problem_la or problem_lo:
                    return slow(item)
            if not (
                t_min <= t <= t_max
                and h_min <= h <= h_max
                and b_min <= b <= b_max
                and la_min <= la <= la_max
                and lo_min <= lo <= lo_max
            ):
                return slow(item)

            rid = sha256(
                prefix + deviceid.encode("utf-8", "surrogatepass") + parsed[1] + pack(t, h, b, la, lo)
            ).hexdigest()
            if t > t_high or t < t_low or h > h_high or h < h_low or b < b_low:
                types, anomalies = anomalies_json(t, h, b, repr(t), repr(h), repr(b))
                status, count = anomalous, str(len(types))
            else:
                types, anomalies, status, count = no_types, "[]", healthy, "0"
            # str.join over constant chunks: a third cheaper than %-formatting the same line.
            text = "".join((
                c0, rid, c1, encode(deviceid), c2, parsed[0], c3, encode(stamp), c4, parsed[2],
                c5, repr(t), c6, repr(h), c7, repr(b), c8, repr(la), c9, repr(lo),
                c10, anomalies, c11, count, c12, status, c13, source_json, c14, index, c15,
            ))  # fmt: skip
            if len(text) > MAX_LINE_CHARS:
                return slow(item)
            return text, types, False  # every value is usable and possible: no invalid reason

        return line

    def _anomalies_json(self, t: float, h: float, b: float, *texts: str) -> tuple[tuple[str, ...], str]:
        rt, rh, rb = texts
        sides: list[tuple[str, str]] = []
        if t > self._t_high:
            sides.append(("t_high", rt))
        elif t < self._t_low:
            sides.append(("t_low", rt))
        if h > self._h_high:
            sides.append(("h_high", rh))
        elif h < self._h_low:
            sides.append(("h_low", rh))
        if b < self._b_low:
            sides.append(("b_low", rb))
        frags = self._anomaly_fragments
        body = ",".join(frags[side][0] + text + frags[side][1] for side, text in sides)
        return tuple(self._rule_text[side][0] for side, _ in sides), "[" + body + "]"

    def _slow(self, item: Any) -> tuple[str, tuple[str, ...], bool]:
        result = self.analyse(item)
        if result.invalid:
            self.invalid_reasons.update(result.record["invalidreasons"])
        return _encode_record(result.record), result.anomaly_types, result.invalid

    # ------------------------------------------------------------------------------------ reference path
    def anomalies(self, t: float | None, h: float | None, b: float | None) -> list[dict[str, Any]]:
        """The rules, as data: strict inequalities, in the sample's order (temperature, humidity, battery).

        A value is a finite float (possible or not) or None (unusable: missing, not a number, not finite),
        which breaks no rule; the other values are still judged.
        """
        found = []
        for side, value, broken in (
            ("t_high", t, t is not None and t > self._t_high),
            ("t_low", t, t is not None and t < self._t_low),
            ("h_high", h, h is not None and h > self._h_high),
            ("h_low", h, h is not None and h < self._h_low),
            ("b_low", b, b is not None and b < self._b_low),
        ):
            if broken:
                kind, threshold = self._rule_text[side]
                found.append({"type": kind, "value": value, "threshold": threshold})
        return found

    def analyse(self, item: Any) -> Analysis:
        """The reference analysis of one item (any JSON value); never raises on the item's content."""
        source = index = None
        row = item
        if isinstance(item, dict) and "row" in item:
            row = item["row"]
            source = self._source(item)[0]
            index = item.get("index")
            if type(index) is not int:  # the map's item index; anything else is not one
                index = None
        if not isinstance(row, dict):
            rid = record_id(
                "!row", _timestamp_part(""), ("!" + as_text(row)).encode("utf-8", "surrogatepass")
            )
            return self._finish(
                rid=rid,
                deviceid=None,
                stamp=None,
                parsed=None,
                values=[None] * len(NUMERIC_FIELDS),
                reasons=[REASON_NOT_AN_OBJECT],
                source=source,
                index=index,
            )

        if self._csv:
            # UNLOAD's CSV writes SQL NULL as \N: the same missing value the other formats deliver as null.
            row = {key: None if value == CSV_NULL else value for key, value in row.items()}
        reasons: list[str] = []
        # The export names the text fields it cut to fit a map batch; what is left is still the value.
        cut = row.get(schema.TRUNCATED_FIELD)
        cut_fields = frozenset(cut.split(",")) if type(cut) is str else frozenset()
        deviceid = row.get("deviceid")
        deviceid_out: str | None
        if deviceid is None or (type(deviceid) is str and not deviceid.strip()):
            reasons.append("deviceid:" + MISSING)
            deviceid_out, deviceid_text = deviceid, ""
        elif type(deviceid) is str:
            deviceid_out = deviceid_text = deviceid
        elif type(deviceid) is int:  # a numeric device id is still an id; written as its decimal text
            deviceid_out = deviceid_text = str(deviceid)
        else:
            reasons.append("deviceid:" + NOT_A_STRING)
            deviceid_out, deviceid_text = None, "!" + as_text(deviceid)
        if "deviceid" in cut_fields:
            reasons.append("deviceid:" + TRUNCATED)

        stamp = row.get("timestamp")
        stamp_out: str | None
        parsed: tuple[str, bytes, str] | None = None
        if stamp is None or (type(stamp) is str and not stamp.strip()):
            reasons.append("timestamp:" + MISSING)
            stamp_out, timestamp_part = stamp, _timestamp_part("")
        elif type(stamp) is str:
            stamp_out = stamp
            parsed = parse_timestamp(stamp)
            if parsed is None:
                reasons.append("timestamp:" + MALFORMED)
                timestamp_part = _timestamp_part("!" + stamp)
            else:
                timestamp_part = parsed[1]
        else:
            reasons.append("timestamp:" + NOT_A_STRING)
            stamp_out = as_text(stamp)
            timestamp_part = _timestamp_part("!" + stamp_out)
        if "timestamp" in cut_fields:
            reasons.append("timestamp:" + TRUNCATED)

        values: list[float | None] = []
        texts: list[str] = []  # canonical text of unusable values: "" if missing, "!<json>" otherwise
        for name in NUMERIC_FIELDS:
            raw = row.get(name)
            number, problem = coerce_number(raw, csv=self._csv)
            if problem is not None:
                reasons.append(f"{name}:{problem}")
                texts.append("" if problem == MISSING else "!" + _unusable_text(raw, problem))
                values.append(None)
                continue
            low, high = PHYSICAL_RANGES[name]
            if not low <= number <= high:
                reasons.append(f"{name}:{OUT_OF_RANGE}")
            texts.append(repr(number))
            values.append(number)
        if None in values:
            values_part = ("!" + _SEP.join(texts)).encode("utf-8", "surrogatepass")
        else:
            values_part = _pack_values(*values)

        return self._finish(
            rid=record_id(deviceid_text, timestamp_part, values_part),
            deviceid=deviceid_out,
            stamp=stamp_out,
            parsed=parsed,
            values=values,
            reasons=reasons,
            source=source,
            index=index,
        )

    def _finish(
        self,
        *,
        rid: str,
        deviceid: str | None,
        stamp: str | None,
        parsed: tuple[str, bytes, str] | None,
        values: list[float | None],
        reasons: list[str],
        source: str | None,
        index: int | None,
    ) -> Analysis:
        ctx = self.context
        # Every rule on every finite value, whatever the reasons say (module docstring, "Decisions").
        anomalies = self.anomalies(values[0], values[1], values[2])
        status = schema.ANOMALIES_DETECTED if anomalies else schema.INVALID if reasons else schema.HEALTHY
        record = {
            "recordid": rid,
            "deviceid": deviceid,
            "analysisdate": parsed[0] if parsed is not None else ctx.fallback_date,
            "readingtimestamp": stamp,
            "readingtime": parsed[2] if parsed is not None else None,
            "readingscount": 1,
            "metrics": dict(zip(NUMERIC_FIELDS, values, strict=True)),
            "anomalies": anomalies,
            "anomalycount": len(anomalies),
            "healthstatus": status,
            "invalidreasons": reasons,
            "sourcefile": source,
            "sourceindex": index,
            "rundate": ctx.rundate,
            "runid": ctx.runid,
            "processedat": ctx.processedat,
        }
        if len(_encode_record(record)) > MAX_LINE_CHARS:
            record = _shrink(record)
        return Analysis(
            record=record,
            anomaly_types=tuple(a["type"] for a in record["anomalies"]),
            invalid=bool(record["invalidreasons"]),
        )


def _shrink(record: dict[str, Any]) -> dict[str, Any]:
    """An oversized record made deliverable: long texts cut, reason ``row:too_large`` added.

    Only a reading with enormous text fields gets here (a Step Functions child's input is at most
    256 KiB, but a bare-row invocation may be larger). The id still comes from the full content. The
    anomalies stay (at most three short entries, and the values they judge are not texts), so the
    verdict is ``anomalies_detected`` if there are any and ``invalid`` otherwise, as for any record.
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
    runid = batch.get("executionId")
    if runid is not None and type(runid) is not str:
        warnings.append("BatchInput.executionId is not a string: ignored")
        runid = None
    now_utc = now.astimezone(UTC)
    processedat = now_utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now_utc.microsecond // 1000:03d}Z"
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


LineFn = Callable[[Any], tuple[str, tuple[str, ...], bool]]
