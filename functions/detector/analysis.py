"""Per-reading analysis: validation, the three anomaly rules, the record id and the analysis record.

One path: ``Analyzer.lines(items, sink)`` builds the analysis record of each item as a dict (keys
``schema.ANALYSIS_KEYS`` in order, the empty ``schema.OPTIONAL_KEYS`` left out) and serialises it with
``orjson``, the encoder the Powertools docs recommend for speed (``Logger(json_serializer=orjson.dumps)``);
``Analyzer.line(item)`` is one item through it, ``Analyzer.record(item)`` that line read back. Usual
readings take the cheap checks at the top of each step; unusual ones (a missing field, a string, an
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
* ``recordid`` is 96 bits of the XXH3-128 (xxHash) of the reading's canonical content (a versioned
  prefix, the device id, the instant as fixed-width UTC text, the five values after parsing as IEEE 754
  bytes), in URL-safe base64 (16 characters). A Parquet 21.5 and a CSV "21.5" give the same id, in
  every run. Unusable values enter tagged with ``!`` and their JSON text, so distinct bad readings keep
  distinct ids. The item index is not part of it: the same reading is the same record.
  Collision safety: de-duplication compares ids within what one query selects (a run, or a day of
  records). For n ids the chance that any two collide is at most n²/2^97: for 10^8 readings a day (the
  planner's largest volume) about 6·10^-14 per day, below 3·10^-10 over ten years of days, as for any
  hash whose collisions come at an ideal hash's rate, which XXH3-128's do on ordinary inputs. It is a
  de-duplication key, not a seal: XXH3 is not cryptographic, so whoever can write raw readings could
  craft two with one id, but such a writer can as well write a duplicate or a wrong value outright.
* Reasons are stable codes ``<field>:<problem>`` (``humidity:out_of_range``) that group well in Athena.
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import orjson

from . import schema
from .config import DetectorConfig, InputFormat
from .values import (
    CSV_NULL,
    INSTANT_TAG,
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
    unpack_values,
    unusable_timestamp_part,
    unusual_deviceid,
    unusual_numbers,
    unusual_timestamp,
)

# A Firehose record holds at most 1,000 KiB (PutRecordBatch API reference); one line plus its newline
# must fit in one record. Longer text fields are cut to this many characters on the rare oversized line.
MAX_LINE_BYTES: Final = 1_024_000 - 1
TRUNCATED_TEXT_CHARS: Final = 256

_NO_ANOMALIES: Final[tuple[()]] = ()  # a usual reading's anomalies: shared, so never a list to mutate
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
_ROW: Final = schema.ITEM_ROW
_INDEX: Final = schema.ITEM_INDEX
_FIELDS: Final = schema.ITEM_FIELDS
_ROW_LENGTH: Final = len(_FIELDS)
# The types a usable value arrives as: Step Functions writes an integral double without its fraction
# (37.0 arrives as 37), and such an integer is that double (``pack_values`` converts it as ``float()``
# does). A bool is not a number.
_NUMBER_TYPES: Final = frozenset({float, int})


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
        # The usual reading is checked at once: temperature, humidity and battery inside both their
        # physical range and the band where no rule breaks (the rules are strict inequalities, so the
        # band's ends are normal values). (temperature low, high, humidity low, high, battery low); the
        # battery's high end is its physical one, 100.
        self._bands = (
            max(float(t.temperature_low), TEMPERATURE_MIN),
            min(float(t.temperature_high), TEMPERATURE_MAX),
            max(float(t.humidity_low), 0.0),
            min(float(t.humidity_high), 100.0),
            max(float(t.battery_low), 0.0),
        )
        # The counts of every item analysed (``lines``): the batch's summary, log line and metrics.
        self.invalid_rows = 0  # readings with invalid reasons, anomalous or not
        self.anomalous_rows = 0  # readings that broke at least one rule, valid or not
        self.anomaly_counts: dict[str, int] = dict.fromkeys(schema.ANOMALY_TYPES, 0)  # type -> anomalies
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
        record = self.record(item)
        types = tuple(anomaly["type"] for anomaly in record["anomalies"])
        return Analysis(record=record, anomaly_types=types, invalid=bool(record["invalidreasons"]))

    def record(self, item: Any) -> dict[str, Any]:
        """The analysis record of one item, as delivered."""
        return orjson.loads(self.line(item))

    def line(self, item: Any) -> bytes:
        """The analysis record of one item as one JSON line, without newline (``lines``)."""
        out: list[bytes] = []
        self.lines((item,), out.append)
        return out[0]

    def lines(self, items: Iterable[Any], sink: Callable[[bytes], None]) -> None:
        """Give ``sink`` the analysis record of each item as one JSON line without newline, in order, and
        count the rows (``invalid_rows``, ``anomalous_rows``, ``anomaly_counts``, ``invalid_reasons``).

        A map item is ``{"r": [deviceid, timestamp, temperature, humidity, batterylevel, latitude,
        longitude, truncated], "i": <index>}`` (``schema.ITEM_KEYS``); the ItemSelector sends the JSON
        text of a row that is not an object as ``r``. A dict without ``r`` is a bare row (a manual
        invocation). The loop is the whole batch's: what is the same for every item is read once.
        """
        csv = self._csv
        t_low, t_high, h_low, h_high, b_low = self._bands
        ctx = self.context
        fallback_date, runid, processedat = ctx.fallback_date, ctx.runid, ctx.processedat
        dumps = orjson.dumps
        for item in items:
            reasons: list[str] = []
            usual = False  # five possible values, no rule broken
            index = None
            values: Any = item
            if type(item) is dict:
                if _ROW in item:
                    values = item[_ROW]
                    index = item.get(_INDEX)
                    if type(index) is not int or not 0 <= index < _MAX_BIGINT:  # not an item index (bigint)
                        index = None
                else:
                    get = item.get
                    values = [get(name) for name in _FIELDS]
            if type(values) is not list or len(values) != _ROW_LENGTH:
                reasons.append(REASON_NOT_AN_OBJECT)
                rid = record_id(
                    "!row",
                    unusable_timestamp_part(""),
                    ("!" + as_text(values)).encode("utf-8", "surrogatepass"),
                )
                deviceid = stamp = instant = None
                day = fallback_date
                t = h = b = la = lo = None
            else:
                deviceid, stamp, t, h, b, la, lo, cut = values
                if csv:
                    # UNLOAD's CSV writes SQL NULL as \N: the same missing value other formats deliver as null.
                    deviceid, stamp, t, h, b, la, lo, cut = (None if v == CSV_NULL else v for v in values)
                # The export names the text fields it cut to fit a map batch; what is left is still the value.
                cut_fields = cut.split(",") if type(cut) is str else ()
                # --- device id (a non-blank string: ``not isspace()`` is ``strip()`` leaving something)
                if type(deviceid) is str and deviceid and not deviceid.isspace():
                    deviceid_text = deviceid
                else:
                    deviceid, deviceid_text = unusual_deviceid(deviceid, reasons)
                if "deviceid" in cut_fields:
                    reasons.append("deviceid:" + TRUNCATED)
                # --- timestamp
                parsed = parse_timestamp(stamp) if type(stamp) is str else None
                if parsed is not None:
                    day, instant = parsed
                    timestamp_part = INSTANT_TAG + instant
                else:
                    day, instant = fallback_date, None
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
                # --- the five values. Usually five numbers (``_NUMBER_TYPES``), packed as doubles (the id's
                # bytes) and read back as floats, all possible and breaking no rule (``_bands``): every
                # comparison with NaN is false and every range is finite, so the checks also refuse NaN and
                # the infinities.
                values_part = None
                if (
                    type(t) in _NUMBER_TYPES and type(h) in _NUMBER_TYPES and type(b) in _NUMBER_TYPES
                    and type(la) in _NUMBER_TYPES and type(lo) in _NUMBER_TYPES
                ):  # fmt: skip
                    try:
                        values_part = pack_values(t, h, b, la, lo)
                    except struct.error:  # an integer beyond any double: unusual_numbers names it
                        pass
                    else:
                        t, h, b, la, lo = unpack_values(values_part)
                        if (
                            t_low <= t <= t_high and h_low <= h <= h_high and b_low <= b <= 100.0
                            and abs(la) <= 90.0 and abs(lo) <= 180.0
                        ):  # fmt: skip
                            usual = True
                        elif not (
                            TEMPERATURE_MIN <= t <= TEMPERATURE_MAX and 0.0 <= h <= 100.0 and 0.0 <= b <= 100.0
                            and -90.0 <= la <= 90.0 and -180.0 <= lo <= 180.0
                        ):  # fmt: skip
                            values_part = None
                if values_part is None:
                    (t, h, b, la, lo), values_part = unusual_numbers([t, h, b, la, lo], csv, reasons)
                rid = record_id(deviceid_text, timestamp_part, values_part)

            anomalies: Sequence[dict[str, Any]] = _NO_ANOMALIES if usual else self.anomalies(t, h, b)
            if anomalies:
                # Independent counts: a reading can be invalid (data quality) and anomalous (a rule) at once.
                self.anomalous_rows += 1
                for anomaly in anomalies:
                    self.anomaly_counts[anomaly["type"]] += 1
            if reasons:
                self.invalid_rows += 1
                self.invalid_reasons.update(reasons)
                status = schema.ANOMALIES_DETECTED if anomalies else schema.INVALID
            else:
                status = schema.ANOMALIES_DETECTED if anomalies else schema.HEALTHY
            record = {
                "recordid": rid,
                "deviceid": deviceid,
                "analysisdate": day,
                "readingtime": instant,
                "metrics": {
                    "temperature": t,
                    "humidity": h,
                    "batterylevel": b,
                    "latitude": la,
                    "longitude": lo,
                },
                "anomalies": anomalies,
                "healthstatus": status,
                "invalidreasons": reasons,
                "sourceindex": index,
                "runid": runid,
                "processedatms": processedat,
            }
            if instant is None and stamp is not None:
                record = _with_raw_timestamp(record, stamp)
            try:
                text = dumps(record)
            except orjson.JSONEncodeError:  # a lone surrogate in a text field: not UTF-8, made so
                text = orjson.dumps(_utf8_safe(record))
            if len(text) > MAX_LINE_BYTES:
                if not reasons:
                    self.invalid_rows += 1
                self.invalid_reasons[REASON_TOO_LARGE] += 1
                text = orjson.dumps(_utf8_safe(_shrink(record)))
            sink(text)


def _with_raw_timestamp(record: dict[str, Any], stamp: str) -> dict[str, Any]:
    """The record with ``readingtimestamp`` (the text as it arrived) after ``readingtime``: only a record
    without a usable timestamp carries it (``schema.OPTIONAL_KEYS``). An absent key reads as NULL, as a
    null one does, and most records do not carry it (24 bytes each)."""
    with_raw: dict[str, Any] = {}
    for key, value in record.items():
        with_raw[key] = value
        if key == "readingtime":
            with_raw["readingtimestamp"] = stamp
    return with_raw


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
