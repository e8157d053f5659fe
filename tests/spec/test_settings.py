"""Settings: one table, validated all at once, consistent with Pulumi.yaml and both stack files."""

from __future__ import annotations

import pytest
import yaml

from spec import settings
from tools import docs, harness


def project_config() -> dict:
    return yaml.safe_load((harness.ROOT / "Pulumi.yaml").read_text())["config"]


def test_pulumi_yaml_declares_exactly_the_settings_table():
    declared = project_config()
    assert declared, "Pulumi.yaml declares no config"
    assert list(declared) == [spec.key for spec in settings.SPECS]
    for spec in settings.SPECS:
        entry = declared[spec.key]
        assert entry["type"] == spec.type, spec.key
        assert entry["default"] == spec.default, spec.key
        assert entry["description"] == spec.description, spec.key


def test_pulumi_yaml_runs_python_in_its_virtualenv():
    project = yaml.safe_load((harness.ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == settings.PROJECT
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_committed_stack_files_are_valid(stage):
    loaded = settings.load(harness.stack_config(stage), stack=stage)
    assert loaded.stage == stage
    assert loaded.max_concurrency <= loaded.lambda_reserved_concurrency


def test_stages_differ_where_it_matters(stage_settings):
    dev, prod = stage_settings["dev"], stage_settings["prod"]
    assert dev.max_concurrency < prod.max_concurrency
    assert dev.lambda_reserved_concurrency < prod.lambda_reserved_concurrency
    assert dev.log_retention_days < prod.log_retention_days
    assert not dev.protect_data_stores
    assert prod.protect_data_stores
    assert prod.owns_account_alarms


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_stack_files_refuse_other_accounts_and_tag_by_default(stage):
    config = yaml.safe_load((harness.ROOT / f"Pulumi.{stage}.yaml").read_text())["config"]
    accounts = config["aws:allowedAccountIds"]
    assert accounts
    assert all(len(a) == 12 and a.isdigit() for a in accounts)
    assert config["aws:defaultTags"]["tags"]["stage"] == stage


def test_a_bad_stack_file_reports_every_problem_by_key():
    with pytest.raises(settings.SettingsError) as caught:
        settings.load(
            {
                "sensorflow:maxConcurrency": "0",
                "sensorflow:maxInputBytesPerBatch": "300000",
                "sensorflow:maxConcurency": "5",
                "sensorflow:toleratedFailurePercentage": "101",
                "sensorflow:lambdaArchitecture": "sparc",
                "aws:region": "eu-west-1",
            },
            stack="dev",
        )
    problems = caught.value.problems
    assert len(problems) == 5, problems
    text = str(caught.value)
    assert "maxConcurrency=0" in text
    assert "1 to 10,000" in text
    assert "maxInputBytesPerBatch=300000" in text
    assert "260,096" in text
    assert "sensorflow:maxConcurency: unknown setting" in text
    assert "maxItemsPerBatch" in text  # the unknown key's message lists the allowed keys
    assert "toleratedFailurePercentage=101" in text
    assert "sparc" in text
    assert "arm64, x86_64" in text


@pytest.mark.parametrize("level", ["WARNING", "ERROR"])
def test_a_log_level_that_would_drop_the_metric_lines_is_refused(level):
    """Lambda files a log line without a "level" key as INFO (monitoring-cloudwatchlogs-log-level.html),
    and the detector's metrics are such lines (EMF): a WARN filter would drop them all."""
    with pytest.raises(settings.SettingsError) as caught:
        settings.load({"sensorflow:lambdaLogLevel": level}, stack="dev")
    assert f"lambdaLogLevel={level!r}" in str(caught.value)
    assert "one of DEBUG, INFO" in str(caught.value)


def test_placeholder_subscribers_are_named_and_real_ones_are_not():
    committed = settings.load(
        yaml.safe_load((harness.ROOT / "Pulumi.prod.yaml").read_text())["config"], stack="prod"
    )
    warnings = settings.placeholder_subscribers(committed)
    assert len(warnings) == len(committed.alarm_emails) + len(committed.alarm_https_endpoints) == 2
    assert warnings[0].startswith("alarmEmails: 'iot-platform-oncall@example.com' is a placeholder")
    assert warnings[1].startswith("alarmHttpsEndpoints: 'https://events.pagerduty.example.com/")
    real = settings.load(
        {
            "sensorflow:alarmEmails": ["oncall@sensors.example-corp.io", "ops@mail.test.io"],
            "sensorflow:alarmHttpsEndpoints": ["https://events.pagerduty.com/integration/abc/enqueue"],
        },
        stack="prod",
    )
    assert settings.placeholder_subscribers(real) == []
    fake = settings.load(
        {
            "sensorflow:alarmEmails": ["a@team.invalid"],
            "sensorflow:alarmHttpsEndpoints": ["https://hook.test:8443/x"],
        },
        stack="dev",
    )
    assert len(settings.placeholder_subscribers(fake)) == 2


def test_the_program_warns_of_placeholder_subscribers_before_creating_anything(caplog):
    with caplog.at_level("WARNING"):
        harness.run(stack="prod")
    assert sum("is a placeholder" in r.getMessage() for r in caplog.records) == 2


def test_cross_field_rules():
    with pytest.raises(settings.SettingsError) as caught:
        settings.load(
            {
                "maxConcurrency": "50",
                "lambdaReservedConcurrency": "20",
                "temperatureLowC": "40",
                "temperatureHighC": "35",
                "humidityLowPct": "95",
                "humidityHighPct": "95",
                "alarmEmails": '["not-an-address"]',
                "alarmHttpsEndpoints": '["http://plain.example.com"]',
                "priceOverrides": '["lambda=abc"]',
            },
            stack="dev",
        )
    text = str(caught.value)
    assert "maxConcurrency=50: above lambdaReservedConcurrency=20" in text
    assert "temperatureLowC=40, temperatureHighC=35" in text
    assert "humidityLowPct=95, humidityHighPct=95" in text
    assert "not an email address" in text
    assert "must start with https://" in text
    assert "priceOverrides" in text
    assert len(caught.value.problems) == 6


def test_values_arrive_as_strings_from_the_engine_and_are_typed():
    loaded = settings.load(
        {"maxConcurrency": "3", "protectDataStores": "true", "alarmEmails": '["ops@example.com"]'}, stack="qa"
    )
    assert loaded.max_concurrency == 3
    assert loaded.protect_data_stores is True
    assert loaded.alarm_emails == ("ops@example.com",)
    assert loaded.stage == "qa"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("maxConcurrency", "ten"),
        ("protectDataStores", "yes"),
        ("maxItemsPerBatch", "true"),
        ("alarmEmails", "a@b.c"),
    ],
)
def test_wrongly_typed_values_are_named(key, value):
    with pytest.raises(settings.SettingsError, match=key):
        settings.load({key: value}, stack="dev")


def test_program_refuses_a_bad_stack_file_before_creating_anything():
    with pytest.raises(settings.SettingsError) as caught:
        harness.run(stack="dev", overrides={"maxConcurrency": 0, "maxInputBytesPerBatch": 300000, "typo": 1})
    assert len(caught.value.problems) == 3


def test_the_settings_page_table_is_current():
    (block,) = [b for b in docs.BLOCKS if b.name == "settings"]
    assert block.page == "docs/settings.md"
    assert block.current() == settings.markdown_table(), (
        "docs/settings.md is stale: python -m tools.docs --write"
    )


def test_staging_retention_below_the_redrive_window_is_refused_with_the_minimum():
    with pytest.raises(settings.SettingsError) as caught:
        settings.load({"sensorflow:stagingRetentionDays": 3}, stack="dev")
    message = str(caught.value)
    assert "stagingRetentionDays" in message
    assert ">= 14" in message
    assert settings.load({"sensorflow:stagingRetentionDays": 14}, stack="dev").staging_retention_days == 14


def test_a_stage_whose_bucket_names_exceed_63_characters_in_its_region_is_refused():
    long_stage = "a" + "b" * 14  # the longest stage the name rule allows
    assert settings.load({"sensorflow:stage": long_stage, "aws:region": "eu-west-1"}, stack="x")
    with pytest.raises(settings.SettingsError) as caught:
        settings.load({"sensorflow:stage": long_stage, "aws:region": "ap-southeast-1"}, stack="x")
    message = str(caught.value)
    assert "ap-southeast-1" in message
    assert "at most 12 characters" in message  # 63 - len("sensorflow--access-logs-<12>-ap-southeast-1")
    # Without a Region (unit tests, tools that do not name one) nothing is guessed.
    assert settings.load({"sensorflow:stage": long_stage}, stack="x")


def test_the_bucket_roles_the_length_check_uses_are_the_buckets_storage_builds():
    from components import storage
    from spec import naming

    args = storage.StorageArgs(
        names=naming.Names("dev", naming.Account("aws", "eu-west-1", "123456789012")),
        tags={},
        protect=False,
        raw_retention_days=0,
        analytics_retention_days=0,
        staging_retention_days=14,
        noncurrent_version_retention_days=30,
        access_log_retention_days=90,
    )
    built = [spec.role for spec in storage.bucket_specs(args)] + [storage.access_log_spec(args).role]
    assert sorted(built) == sorted(naming.BUCKET_ROLES)
