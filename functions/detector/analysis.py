"""Per-reading analysis: validation, the three anomaly rules, the record id and the analysis record.

One path: ``Analyzer.record(item)`` builds the analysis record of any item as a dict (keys
``schema.ANALYSIS_KEYS`` in order, the empty ``schema.OPTIONAL_KEYS`` left out) and
``Analyzer.line(item)`` serialises it with ``orjson``, the encoder the Powertools docs recommend for
speed (``Logger(json_serializer=orjson.dumps)``). Usual readings take the cheap type checks at the top of each step; unusual ones (a missing field, a string, an
impossible value...) go through the ``values.unusual_*`` helpers, which name the problem.

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
  it is not a usable timestamp (a usable one is ``readingtime``, exactly); otherwise the key is absent,
  not null (``schema.OPTIONAL_KEYS``): the table reads both as NULL. ``(runid, sourceindex)`` names the
  processed row: the map's item index is unique within a map run. The raw file an invalid reading came
  from is found by its device and the run's day (the ``raw-files-of-a-device`` named query).
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

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import orjson

from . import schema
from .config import DetectorConfig, InputFormat
from .values import (
    CSV_NULL,
    REASON_NOT_AN_OBJECT,
    REASON_TOO_LARGE,
    TEMPERATURE_MAX,
    TEMPERATURE_MIN,
    TRUNCATED,
    as_text,
    format_number,
    pack_values,
    parse_timestamp,
    record_id,
    run_name,
    unusable_timestamp_part,
    unusual_deviceid,
    unusual_numbers,
    unusual_timestamp,
)

# A Firehose record holds at most 1,000 KiB (PutRecordBatch API reference); one line plus its newline
# must fit in one record. Longer text fields are cut to this many characters on the rare oversized line.
MAX_LINE_BYTES: Final = 1_024_000 - 1
TRUNCATED_TEXT_CHARS: Final = 256

_SURROGATE: Final = re.compile("[\ud800-\udfff]")


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


def _row_fields(item: Any) -> tuple[Any, Any, bool]:
    """(the reading's eight values or None, its item index, whether it was a row object).

    A map item is ``{"r": [deviceid, timestamp, temperature, humidity, batterylevel, latitude,
    longitude, truncated], "i": <index>}`` (``schema.ITEM_KEYS``); the ItemSelector sends the JSON text
    of a row that is not an object as ``r``. A dict without ``r`` is a bare row (a manual invocation).
    """
    if type(item) is dict:
        if schema.ITEM_ROW in item:
            values = item[schema.ITEM_ROW]
            index = item.get(schema.ITEM_INDEX)
            if type(index) is not int or not 0 <= index < _MAX_BIGINT:  # not an item index (Glue bigint)
                index = None
            if isinstance(values, list) and len(values) == len(schema.ITEM_FIELDS):
                return values, index, True
            return values, index, False
        get = item.get
        return [get(name) for name in schema.ITEM_FIELDS], None, True
    return item, None, False


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
        values, index, is_row = _row_fields(item)
        reasons: list[str] = []
        if not is_row:
            reasons.append(REASON_NOT_AN_OBJECT)
            rid = record_id(
                "!row", unusable_timestamp_part(""), ("!" + as_text(values)).encode("utf-8", "surrogatepass")
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
                deviceid, deviceid_text = unusual_deviceid(deviceid, reasons)
            if "deviceid" in cut_fields:
                reasons.append("deviceid:" + TRUNCATED)
            # --- timestamp
            parsed = None
            if type(stamp) is str:
                parsed = parse_timestamp(stamp)
            if parsed is not None:
                timestamp_part = parsed[1]
            else:
                stamp, timestamp_part = unusual_timestamp(stamp, reasons)
            if "timestamp" in cut_fields:
                reasons.append("timestamp:" + TRUNCATED)
            if (
                csv and type(t) is str and type(h) is str and type(b) is str
                and type(la) is str and type(lo) is str and "_" not in t + h + b + la + lo
            ):  # fmt: skip
                # CSV: five numeric strings (float() takes blanks and exponents, as coerce_number does;
                # "1_000" it would take too, so such rows go to unusual_numbers). A ValueError leaves the
                # strings for unusual_numbers to name.
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
                and TEMPERATURE_MIN <= t <= TEMPERATURE_MAX and 0.0 <= h <= 100.0 and 0.0 <= b <= 100.0
                and -90.0 <= la <= 90.0 and -180.0 <= lo <= 180.0
            ):  # fmt: skip
                numbers = [t, h, b, la, lo]
                values_part = pack_values(t, h, b, la, lo)
            else:
                numbers, values_part = unusual_numbers([t, h, b, la, lo], csv, reasons)
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
            "sourceindex": index,
            "runid": ctx.runid,
            "processedatms": ctx.processedat,
        }
        # The raw timestamp is left out when readingtime holds it (schema.OPTIONAL_KEYS): an absent key
        # reads as NULL, as a null one does, and most records do not carry it (24 bytes each).
        if record["readingtimestamp"] is None:
            del record["readingtimestamp"]
        return record, types, bool(reasons)


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
    for key in ("deviceid", "readingtimestamp", "runid"):
        value = shrunk.get(key)
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
