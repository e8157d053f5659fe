"""Shared helpers: build the Observability component alone under the recording mocks.

``observability_program`` constructs the component with plain-string inputs, exactly the shapes the
other components will hand it (state machine ARN, detector name, stream name), so the component's tests
do not depend on the rest of the stack being written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from components.observability import Observability, ObservabilityArgs
from spec import settings as settings_module
from spec.alarms import AlarmSettings
from spec.naming import Account, Names, lookup_account
from tools import harness

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
KEY = "aws:kms/key:Key"
ALIAS = "aws:kms/alias:Alias"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
SCHEDULE = "aws:scheduler/schedule:Schedule"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
COMPONENT = "sensorflow:observability:Observability"

MOCK_ACCOUNT = Account(partition="aws", region=harness.DEFAULT_REGION, account_id=harness.ACCOUNT_ID)


def load_settings(stack: str, overrides: Mapping[str, Any] | None = None) -> settings_module.Settings:
    return settings_module.load(harness.stack_config(stack, overrides), stack=stack)


def observability_args(settings: settings_module.Settings, names: Names, **inputs: Any) -> ObservabilityArgs:
    """The component's args for a stage's settings, as ``__main__.py`` builds them, with ``inputs`` (the
    identities of the other components and ``state_machine_name``)."""
    return ObservabilityArgs(
        names=names,
        tags=settings.tags,
        alarms=AlarmSettings.of(settings),
        alarm_emails=settings.alarm_emails,
        alarm_https_endpoints=settings.alarm_https_endpoints,
        schedule_expression=settings.schedule_expression,
        **inputs,
    )


def inputs_for(stage: str) -> dict[str, str]:
    """The plain-string identities the other components will pass in."""
    names = Names(stage, MOCK_ACCOUNT)
    return {
        "state_machine_arn": MOCK_ACCOUNT.state_machine_arn(names.state_machine),
        "function_name": names.resource("detector"),
        "delivery_stream_name": names.resource("analysis"),
    }


def observability_program(stack: str, overrides: Mapping[str, Any] | None = None) -> Callable[[], None]:
    def program() -> None:
        settings = load_settings(stack, overrides)
        names = Names(settings.stage, lookup_account())
        Observability(
            "observability",
            observability_args(
                settings, names, state_machine_name=names.state_machine, **inputs_for(settings.stage)
            ),
        )

    return program


def run_observability(stack: str, overrides: Mapping[str, Any] | None = None) -> harness.Run:
    return harness.run(observability_program(stack, overrides), stack=stack, overrides=overrides)


def policy(resource: harness.Resource, key: str = "policy") -> dict[str, Any]:
    """A JSON policy input, parsed."""
    value = resource.inputs[key]
    assert isinstance(value, str), f"{resource.name}.{key} is not serialised JSON: {value!r}"
    return json.loads(value)


def statement(document: dict[str, Any], sid: str) -> dict[str, Any]:
    found = [s for s in document["Statement"] if s.get("Sid") == sid]
    assert len(found) == 1, f"expected one statement {sid!r}, found {len(found)}"
    return found[0]
