"""Stage settings: read once from the stack's configuration, validated all at once, then immutable.

Every setting is declared once in ``SPECS`` (key, type, default, range or choices, description). That one
table drives parsing, the per-key checks, the ``config:`` schema in ``Pulumi.yaml`` (a test keeps the two
equal) and the settings table in the README. Cross-field rules live in ``_cross_field_problems``.

A stack file with problems fails with one ``SettingsError`` that lists every problem, each naming the key,
the value and what is allowed, so an engineer fixes a stack file in one pass instead of one error per
``pulumi up``. Stage differences are values in ``Pulumi.<stage>.yaml``; no code branches on the stack name.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Self
from urllib.parse import urlsplit

from spec import detect_retry, map_items
from spec.naming import PROJECT

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy, retentionInDays).
LOG_RETENTION_DAYS: Final = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

# Step Functions: a distributed map runs at most 10,000 children at once; a child's input is at most
# 256 KiB (docs: input-output-itembatcher.html, state-map-distributed.html).
# Step Functions redrives an unsuccessful execution only within 14 days of its end (RedriveExecution API
# reference, docs.aws.amazon.com/step-functions/latest/apireference/API_RedriveExecution.html).
REDRIVE_WINDOW_DAYS: Final = 14
MAP_CONCURRENCY_LIMIT: Final = 10_000
# A child's whole input, {"Items": [...], "BatchInput": {...}}, is capped at 256 KiB (the state input
# quota, service-quotas.html). The ItemBatcher page does not say whether MaxInputBytesPerBatch counts the
# BatchInput envelope, so the limit leaves room for the largest envelope the definition can build: the
# batch fits either way (spec.map_items.max_batch_input_bytes).
CHILD_INPUT_LIMIT: Final = 262_144
MAX_INPUT_BYTES_PER_BATCH: Final = CHILD_INPUT_LIMIT - -(-map_items.max_batch_input_bytes() // 1024) * 1024
# A batch must hold the largest item one exported row can make, or the map fails (spec.map_items).
MIN_INPUT_BYTES_PER_BATCH: Final = map_items.min_input_bytes_per_batch()
# An Express child runs at most 5 minutes; the detector's timeout is bounded so that every attempt of its
# task, each running to the timeout, plus every retry wait, fits (spec.detect_retry).
MAX_LAMBDA_TIMEOUT_SECONDS: Final = detect_retry.max_lambda_timeout_seconds()

# Namespaces a stack file may use: the project's own settings and those of the plugins the program loads
# (pulumi-aws reads ``aws:*``; the engine itself reads ``pulumi:*``). Any other namespace is a typo that
# the engine would pass on and nothing would read.
NAMESPACES: Final = (PROJECT, "aws", "pulumi")

_STAGE_RE: Final = re.compile(r"^[a-z][a-z0-9-]{1,14}$")
_EMAIL_RE: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Spec:
    """One configuration key: how it is typed, defaulted, bounded and described."""

    key: str
    type: str  # "string" | "integer" | "boolean" | "array" (the Pulumi.yaml config types)
    default: Any
    description: str
    choices: tuple[Any, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None

    @property
    def attr(self) -> str:
        """The snake_case attribute name on ``Settings``."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.key).lower()

    def allowed(self) -> str:
        """A human description of the allowed values, for error messages and the README."""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.minimum is not None and self.maximum is not None:
            return f"an integer from {self.minimum:,} to {self.maximum:,}"
        if self.minimum is not None:
            return f"an integer >= {self.minimum:,}"
        return {"boolean": "true or false", "array": "a list of strings", "integer": "an integer"}.get(
            self.type, "a string"
        )


SPECS: Final[tuple[Spec, ...]] = (
    # --- identity and tags
    Spec("stage", "string", "", "Stage name used in resource names and tags (2-15 characters, fewer where bucket names would pass 63 in the stack's Region); empty means the stack name."),
    Spec("owner", "string", "iot-platform", "Team that owns the stage; tagged on every resource as `owner`."),
    # --- Distributed Map
    Spec("maxConcurrency", "integer", 10, "Distributed Map MaxConcurrency: child executions running at once.",
         minimum=1, maximum=MAP_CONCURRENCY_LIMIT),
    Spec("maxItemsPerBatch", "integer", 500, "ItemBatcher MaxItemsPerBatch: rows per child execution.",
         minimum=1, maximum=100_000),
    Spec("maxInputBytesPerBatch", "integer", MAX_INPUT_BYTES_PER_BATCH,
         "ItemBatcher MaxInputBytesPerBatch: bytes per child input (a child's input is capped at 262,144; "
         "the maximum leaves room for the BatchInput envelope, the minimum holds the largest row the export "
         "writes).",
         minimum=MIN_INPUT_BYTES_PER_BATCH, maximum=MAX_INPUT_BYTES_PER_BATCH),
    Spec("toleratedFailurePercentage", "integer", 0,
         "Distributed Map ToleratedFailurePercentage. 0: any failed batch fails the run, and a redrive "
         "re-runs the failed batches. Above 0: the run gives up at most this share of rows, succeeds and "
         "reports them as rowsFailed.",
         minimum=0, maximum=100),
    # --- detector Lambda
    Spec("lambdaReservedConcurrency", "integer", 10,
         "Reserved concurrency of the detector; MaxConcurrency may not exceed it.", minimum=1, maximum=10_000),
    Spec("lambdaMemoryMb", "integer", 512, "Detector memory in MB (CPU scales with it).",
         minimum=128, maximum=10_240),
    Spec("lambdaTimeoutSeconds", "integer", 45,
         "Detector timeout in seconds; every attempt of a batch at this timeout, plus the retry waits, must "
         "fit the 300 s an Express child may run.", minimum=3, maximum=MAX_LAMBDA_TIMEOUT_SECONDS),
    Spec("lambdaArchitecture", "string", "arm64", "Detector CPU architecture.", choices=("arm64", "x86_64")),
    Spec("lambdaRuntime", "string", "python3.12", "Detector runtime.", choices=("python3.12", "python3.13")),
    # Not WARNING or ERROR: Lambda's log-level filter reads a line without a "level" key as INFO
    # (monitoring-cloudwatchlogs-log-level.html), and the metric lines Powertools prints (EMF) have none,
    # so a WARN application level would drop every detector metric and silence the alarms built on them.
    Spec("lambdaLogLevel", "string", "INFO",
         "Detector log level. WARNING and ERROR are refused: Lambda's filter would also drop the "
         "detector's metrics (EMF lines carry no level).", choices=("DEBUG", "INFO")),
    Spec("deliveryMaxAttempts", "integer", 8,
         "Firehose PutRecordBatch attempts per batch before the detector fails the batch.",
         minimum=1, maximum=20),
    Spec("logRetentionDays", "integer", 14, "Retention of every log group the stage creates.",
         choices=LOG_RETENTION_DAYS),
    # --- anomaly thresholds (strict inequalities)
    Spec("temperatureHighC", "integer", 35, "temperature_spike above this (°C).", minimum=-100, maximum=200),
    Spec("temperatureLowC", "integer", -10, "temperature_spike below this (°C).", minimum=-100, maximum=200),
    Spec("humidityHighPct", "integer", 95, "humidity_anomaly above this (%).", minimum=0, maximum=100),
    Spec("humidityLowPct", "integer", 5, "humidity_anomaly below this (%).", minimum=0, maximum=100),
    Spec("batteryLowPct", "integer", 20, "low_battery below this (%).", minimum=0, maximum=100),
    # --- Firehose
    Spec("firehoseBufferIntervalSeconds", "integer", 300, "Firehose S3 buffer interval in seconds.",
         minimum=0, maximum=900),
    Spec("firehoseBufferSizeMb", "integer", 64, "Firehose S3 buffer size in MiB.", minimum=1, maximum=128),
    Spec("firehoseCompression", "string", "GZIP",
         "Compression of delivered objects (both are readable by Athena's JSON SerDe).",
         choices=("GZIP", "UNCOMPRESSED")),
    # --- Athena
    Spec("athenaBytesScannedCutoffMb", "integer", 10_240,
         "Workgroup per-query scan cutoff in MB (Athena's minimum is 10 MB).", minimum=10),
    Spec("unloadFormat", "string", "PARQUET", "File format the UNLOAD writes and the map reads.",
         choices=("PARQUET", "JSONL", "CSV")),
    Spec("unloadCompression", "string", "SNAPPY", "Compression of UNLOAD Parquet files.",
         choices=("SNAPPY", "ZSTD", "GZIP")),
    # --- storage
    Spec("protectDataStores", "boolean", False,
         "Protect buckets and tables from deletion and keep them when the stack is destroyed."),
    Spec("rawRetentionDays", "integer", 0, "Days raw readings are kept; 0 keeps them forever.", minimum=0),
    Spec("analyticsRetentionDays", "integer", 0, "Days analysis records and KPIs are kept; 0 keeps them forever.",
         minimum=0),
    # A failed execution can be redriven for 14 days (RedriveExecution API reference), and a redrive whose
    # map run never started starts it then, reading the UNLOAD manifest and files from staging: staging
    # must outlive the redrive window.
    Spec("stagingRetentionDays", "integer", REDRIVE_WINDOW_DAYS,
         "Days UNLOAD output and Athena results are kept; at least the 14 days a failed run can be redriven.",
         minimum=REDRIVE_WINDOW_DAYS),
    Spec("noncurrentVersionRetentionDays", "integer", 30,
         "Days overwritten or deleted object versions are kept in versioned buckets.", minimum=1),
    Spec("accessLogRetentionDays", "integer", 90,
         "Days S3 server access logs of the stage's buckets are kept in its access-log bucket.", minimum=1),
    # --- observability
    Spec("ownsAccountAlarms", "boolean", True,
         "This stack owns the account-wide map-run alarms (one stack per account and Region should)."),
    Spec("openMapRunThreshold", "integer", 900, "Alarm when ApproximateOpenMapRunCount reaches this (limit 1,000).",
         minimum=1, maximum=1_000),
    Spec("alarmEmails", "array", [], "Email addresses subscribed to the stage's alarm topic."),
    Spec("alarmHttpsEndpoints", "array", [], "HTTPS endpoints subscribed to the topic; each must confirm the subscription itself (PagerDuty, Opsgenie do)."),
    Spec("successWindowHours", "integer", 26,
         "With the schedule on, alarm when no run succeeded within this many hours.", minimum=1, maximum=168),
    Spec("deliveryFreshnessAlarmSeconds", "integer", 900,
         "Alarm when Firehose's oldest undelivered record is older than this.", minimum=60),
    Spec("scheduleEnabled", "boolean", False, "Start the pipeline daily for the previous day."),
    Spec("scheduleExpression", "string", "cron(30 2 * * ? *)", "EventBridge Scheduler expression (UTC)."),
    # --- reconciliation
    Spec("reconcileMaxAttempts", "integer", 5,
         "Reconciliation checks after the map before the run fails as incomplete.", minimum=1, maximum=50),
    # --- capacity planning
    Spec("targetWindowMinutes", "integer", 60, "Wall time a day's run should fit in (capacity planner).",
         minimum=1),
    Spec("accountLambdaConcurrency", "integer", 1_000, "The account's Lambda concurrency quota in the Region.",
         minimum=1),
    Spec("priceOverrides", "array", [], "Capacity-planner price or quota overrides, each `name=value`."),
)  # fmt: skip

SPECS_BY_KEY: Final = {spec.key: spec for spec in SPECS}


class SettingsSubset:
    """Base of a frozen dataclass holding some of a stage's settings, each field named as its setting,
    so a component or a spec takes only what it reads (``components.workflow.RunSettings``,
    ``spec.alarms.AlarmSettings``)."""

    @classmethod
    def of(cls, settings: Settings) -> Self:
        """These fields of a stage's settings."""
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


class SettingsError(ValueError):
    """Every problem found in a stack's configuration, one per line; ``source`` names the file."""

    def __init__(self, problems: list[str], *, source: str | None = None):
        self.problems = list(problems)
        self.source = source
        super().__init__(
            f"{len(self.problems)} problem(s) in {source or f'the {PROJECT} configuration'}:\n"
            + "\n".join(f"  - {p}" for p in self.problems)
        )


def did_you_mean(word: str, candidates: Any) -> str:
    """`` (did you mean X?)`` for a near miss among ``candidates``, else an empty string."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """A stage's settings; see ``SPECS`` for each field's meaning, default and range."""

    stage: str
    owner: str
    max_concurrency: int
    max_items_per_batch: int
    max_input_bytes_per_batch: int
    tolerated_failure_percentage: int
    lambda_reserved_concurrency: int
    lambda_memory_mb: int
    lambda_timeout_seconds: int
    lambda_architecture: str
    lambda_runtime: str
    lambda_log_level: str
    delivery_max_attempts: int
    log_retention_days: int
    temperature_high_c: int
    temperature_low_c: int
    humidity_high_pct: int
    humidity_low_pct: int
    battery_low_pct: int
    firehose_buffer_interval_seconds: int
    firehose_buffer_size_mb: int
    firehose_compression: str
    athena_bytes_scanned_cutoff_mb: int
    unload_format: str
    unload_compression: str
    protect_data_stores: bool
    raw_retention_days: int
    analytics_retention_days: int
    staging_retention_days: int
    noncurrent_version_retention_days: int
    access_log_retention_days: int
    owns_account_alarms: bool
    open_map_run_threshold: int
    alarm_emails: tuple[str, ...]
    alarm_https_endpoints: tuple[str, ...]
    success_window_hours: int
    delivery_freshness_alarm_seconds: int
    schedule_enabled: bool
    schedule_expression: str
    reconcile_max_attempts: int
    target_window_minutes: int
    account_lambda_concurrency: int
    price_overrides: tuple[str, ...]

    @property
    def tags(self) -> dict[str, str]:
        """Tags every taggable resource of the stage carries (the policy pack checks `stage` and `owner`)."""
        return {"project": PROJECT, "stage": self.stage, "owner": self.owner}

    @property
    def thresholds(self) -> dict[str, int]:
        """Anomaly thresholds as the detector's environment variables expect them."""
        return {
            "TEMPERATURE_HIGH": self.temperature_high_c,
            "TEMPERATURE_LOW": self.temperature_low_c,
            "HUMIDITY_HIGH": self.humidity_high_pct,
            "HUMIDITY_LOW": self.humidity_low_pct,
            "BATTERY_LOW": self.battery_low_pct,
        }


def _parse(spec: Spec, raw: Any) -> tuple[Any, str | None]:
    """Parse one raw config value (the engine hands every value over as a string) into its type."""
    value = raw
    if isinstance(raw, str) and spec.type != "string":
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            return None, f"{spec.key}={raw!r}: expected {spec.allowed()}"
    elif isinstance(raw, str) and raw[:1] in "[{":
        # The engine hands a YAML list or map over as JSON text, so a string setting given a list in the
        # stack file (``owner: [iot-platform]``) arrives as the string '["iot-platform"]'. No string
        # setting takes JSON, so JSON text that parses to a list or map is that type error.
        try:
            structured = json.loads(raw)
        except json.JSONDecodeError:
            structured = None
        if isinstance(structured, list | dict):
            kind = "a list" if isinstance(structured, list) else "a map"
            return None, f"{spec.key}={structured!r}: expected a string, got {kind}"
    if spec.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"{spec.key}={raw!r}: expected {spec.allowed()}"
        if spec.minimum is not None and value < spec.minimum:
            return None, f"{spec.key}={value}: below the minimum; allowed: {spec.allowed()}"
        if spec.maximum is not None and value > spec.maximum:
            return None, f"{spec.key}={value}: above the maximum; allowed: {spec.allowed()}"
    elif spec.type == "boolean":
        if not isinstance(value, bool):
            return None, f"{spec.key}={raw!r}: expected true or false"
    elif spec.type == "array":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None, f"{spec.key}={raw!r}: expected a list of strings"
        value = tuple(value)
    elif not isinstance(value, str):
        return None, f"{spec.key}={raw!r}: expected a string, got {_kind(value)}"
    if spec.choices is not None and value not in spec.choices:
        return None, f"{spec.key}={value!r}: not allowed; allowed: {spec.allowed()}"
    return value, None


def _kind(value: Any) -> str:
    return {list: "a list", dict: "a map", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _cross_field_problems(s: dict[str, Any]) -> list[str]:
    """Rules that involve more than one key; a rule is skipped when one of its keys is already invalid."""
    problems = []

    def have(*attrs: str) -> bool:
        return all(a in s for a in attrs)

    if have("stage") and not _STAGE_RE.match(s["stage"]):
        problems.append(
            f"stage={s['stage']!r}: must be 2-15 characters of a-z, 0-9 and '-', starting with a letter "
            "(it is part of bucket and state machine names)"
        )
    if have("max_concurrency", "lambda_reserved_concurrency") and (
        s["max_concurrency"] > s["lambda_reserved_concurrency"]
    ):
        problems.append(
            f"maxConcurrency={s['max_concurrency']}: above lambdaReservedConcurrency="
            f"{s['lambda_reserved_concurrency']}; the extra children would only be throttled. "
            f"Allowed: 1 to {s['lambda_reserved_concurrency']}"
        )
    if have("lambda_reserved_concurrency", "account_lambda_concurrency") and (
        s["lambda_reserved_concurrency"] > s["account_lambda_concurrency"]
    ):
        problems.append(
            f"lambdaReservedConcurrency={s['lambda_reserved_concurrency']}: above accountLambdaConcurrency="
            f"{s['account_lambda_concurrency']}"
        )
    for low, high in (("temperatureLowC", "temperatureHighC"), ("humidityLowPct", "humidityHighPct")):
        lo_attr, hi_attr = SPECS_BY_KEY[low].attr, SPECS_BY_KEY[high].attr
        if have(lo_attr, hi_attr) and s[lo_attr] >= s[hi_attr]:
            problems.append(f"{low}={s[lo_attr]}, {high}={s[hi_attr]}: {low} must be below {high}")
    for email in s.get("alarm_emails", ()):
        if not _EMAIL_RE.match(email):
            problems.append(f"alarmEmails: {email!r} is not an email address")
    for url in s.get("alarm_https_endpoints", ()):
        if not url.startswith("https://"):
            problems.append(f"alarmHttpsEndpoints: {url!r} must start with https://")
    for item in s.get("price_overrides", ()):
        name, sep, number = item.partition("=")
        try:
            ok = bool(sep and name) and float(number) >= 0
        except ValueError:
            ok = False
        if not ok:
            problems.append(f"priceOverrides: {item!r} must be name=<non-negative number>")
    if (
        have("schedule_enabled", "schedule_expression")
        and s["schedule_enabled"]
        and not re.match(r"^(cron|rate)\(.+\)$", s["schedule_expression"])
    ):
        problems.append(
            f"scheduleExpression={s['schedule_expression']!r}: must be cron(...) or rate(...) when scheduleEnabled"
        )
    return problems


def load(config: Mapping[str, Any], *, stack: str, source: str | None = None) -> Settings:
    """Build and validate a stage's settings from its config (keys with or without the project prefix).

    Raises ``SettingsError`` listing every problem: keys in a namespace no plugin reads, unknown keys
    (with a near miss and the allowed keys), bad values (with the allowed range or choices) and
    cross-field conflicts. ``source`` (the stack file) heads the message.
    """
    problems: list[str] = []
    raw: dict[str, Any] = {}
    for full_key, value in config.items():
        namespace, _, key = str(full_key).rpartition(":")
        if namespace not in ("", *NAMESPACES):
            close = difflib.get_close_matches(namespace, NAMESPACES, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}:{key}?)" if close else ""
            problems.append(
                f"{full_key}={value!r}: unknown namespace {namespace!r}{hint}; "
                f"a stack file may use {', '.join(n + ':' for n in NAMESPACES)}"
            )
            continue
        if namespace not in ("", PROJECT):
            continue  # provider settings such as aws:region belong to their providers
        if key not in SPECS_BY_KEY:
            problems.append(
                f"{PROJECT}:{key}: unknown setting{did_you_mean(key, SPECS_BY_KEY)} (value {value!r}); "
                f"allowed keys: {', '.join(sorted(SPECS_BY_KEY))}"
            )
            continue
        raw[key] = value

    values: dict[str, Any] = {}
    for spec in SPECS:
        if spec.key in raw:
            parsed, problem = _parse(spec, raw[spec.key])
            if problem:
                problems.append(problem)
                continue
            values[spec.attr] = parsed
        else:
            values[spec.attr] = tuple(spec.default) if spec.type == "array" else spec.default
    if values.get("stage") == "":
        values["stage"] = stack
    problems.extend(_cross_field_problems(values))
    region = config.get("aws:region")
    if isinstance(region, str) and "stage" in values and _STAGE_RE.match(values["stage"]):
        # Bucket names carry the Region, so their length is known only with it. Imported here because
        # naming imports this module for PROJECT.
        from spec.naming import bucket_name_problems

        problems.extend(bucket_name_problems(values["stage"], region))
    if problems:
        raise SettingsError(problems, source=source)
    return Settings(**values)


# Domains reserved for examples and tests (RFC 2606, RFC 6761): nobody receives mail or SNS confirmation
# requests there, so the committed stack files use them for subscribers that must be replaced.
_EXAMPLE_DOMAINS: Final = ("example.com", "example.net", "example.org")
_EXAMPLE_TOP_LEVEL: Final = ("example", "invalid", "localhost", "test")


def _is_example(host: str | None) -> bool:
    host = (host or "").lower().rstrip(".")
    return host.rpartition(".")[2] in _EXAMPLE_TOP_LEVEL or any(
        host == domain or host.endswith("." + domain) for domain in _EXAMPLE_DOMAINS
    )


def placeholder_subscribers(stage: Settings) -> list[str]:
    """One warning per alarm subscriber at a domain reserved for examples. Such an email address never
    confirms its subscription, so it receives no alarm; such an HTTPS endpoint never confirms either,
    and ``pulumi up`` fails once the subscription's confirmation timeout has passed."""
    found = [
        f"alarmEmails: {email!r} is a placeholder (a domain reserved for examples): it will never "
        "confirm its subscription and will receive no alarm; put the stage's real address in "
        f"Pulumi.{stage.stage}.yaml"
        for email in stage.alarm_emails
        if _is_example(email.rpartition("@")[2])
    ]
    found += [
        f"alarmHttpsEndpoints: {url!r} is a placeholder (a domain reserved for examples): SNS cannot "
        "confirm it, so `pulumi up` will fail when its subscription's confirmation times out; put the "
        f"stage's real paging or chat integration URL in Pulumi.{stage.stage}.yaml"
        for url in stage.alarm_https_endpoints
        if _is_example(urlsplit(url).hostname)
    ]
    return found


def from_pulumi() -> Settings:
    """Read the running stack's settings from the Pulumi configuration (the one place that does).

    Every key is read, not only the declared ones, so a misspelt key or namespace in a stack file is
    reported instead of silently ignored. The language host hands the program its config both as
    ``PULUMI_CONFIG`` and through ``set_all_config``; both are merged.
    """
    import pulumi
    from pulumi.runtime import config as runtime_config

    everything = {**pulumi.runtime.get_config_env(), **runtime_config.CONFIG.get()}
    return load(everything, stack=pulumi.get_stack(), source=f"Pulumi.{pulumi.get_stack()}.yaml")


def markdown_table() -> str:
    """The settings table the README shows (a test keeps the README's copy current)."""
    rows = ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    for spec in SPECS:
        default = json.dumps(list(spec.default)) if spec.type == "array" else json.dumps(spec.default)
        allowed = spec.allowed().replace("|", "\\|")
        rows.append(f"| `{spec.key}` | {spec.type} | `{default}` | {allowed} | {spec.description} |")
    return "\n".join(rows)
