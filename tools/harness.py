"""Run the Pulumi program offline under recording mocks: the project's stand-in for the engine.

``run()`` executes the real ``__main__.py`` (or any program function) the way ``pulumi up`` would, but
against ``pulumi.runtime.set_mocks``: every registered resource is recorded with the inputs the engine
would receive (camelCase, fully resolved), the outputs the mocks invented for it (ARNs synthesised per
resource type, as AWS would shape them) and its parent; every provider call (``aws.get_caller_identity``
...) is answered and recorded. Each run gets a fresh event loop and a fresh root stack, so runs never leak
state into each other, and ``preview=False`` so values are known, as in an update.

The configuration is assembled as the engine assembles it (``tools.stackfile``): the ``config:`` defaults
declared in ``Pulumi.yaml``, then ``Pulumi.<stack>.yaml``, then the caller's overrides.

Used by the tests, ``make synth`` (tools/synth.py) and the offline policy gate (tools/policy_gate.py).
"""

from __future__ import annotations

import asyncio
import json
import runpy
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools import stackfile

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "sensorflow"
ACCOUNT_ID = "123456789012"  # used when the stack file names no allowed account
DEFAULT_REGION = "eu-west-1"


@dataclass
class Resource:
    """One registered resource as the engine would see it."""

    type: str
    name: str
    urn: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str | None
    custom: bool
    options: dict[str, Any] = field(default_factory=dict)  # protect, retainOnDelete, dependsOn

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.inputs.get("tags") or {})


@dataclass
class Run:
    """Everything one program run registered and exported."""

    stack: str
    config: dict[str, Any]
    account: str = ACCOUNT_ID
    resources: list[Resource] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Resource]:
        """Resources of one type token, e.g. ``aws:iam/role:Role``."""
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name_contains: str = "") -> Resource:
        """The single resource of a type (whose logical name contains ``name_contains``); fails otherwise."""
        found = [r for r in self.of_type(type_) if name_contains in r.name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise AssertionError(
                f"expected one {type_} matching {name_contains!r}, found {len(found)}: {names}"
            )
        return found[0]

    def by_urn(self, urn: str) -> Resource:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise KeyError(urn)

    def children(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn]


def account_of(config: Mapping[str, Any]) -> str:
    """The account a stack deploys to: the first of ``aws:allowedAccountIds``, else ``ACCOUNT_ID``."""
    allowed = config.get("aws:allowedAccountIds")
    if isinstance(allowed, str):
        allowed = json.loads(allowed)
    return str(allowed[0]) if allowed else ACCOUNT_ID


# --- ARNs as AWS shapes them, per resource type -------------------------------------------------------


def _arn(
    service: str, resource: str, region: str, account_id: str, *, regional: bool = True, account: bool = True
) -> str:
    return f"arn:aws:{service}:{region if regional else ''}:{account_id if account else ''}:{resource}"


def _physical_name(type_: str, name: str, inputs: Mapping[str, Any]) -> str:
    for key in ("bucket", "name", "functionName"):
        if isinstance(inputs.get(key), str) and inputs[key]:
            return inputs[key]
    return name  # stands in for the engine's auto-name


def _outputs_for(
    type_: str, name: str, inputs: dict[str, Any], region: str, account_id: str
) -> tuple[str, dict[str, Any]]:
    """Invent the id and outputs the AWS provider would return for a created resource."""
    physical = _physical_name(type_, name, inputs)
    out: dict[str, Any] = dict(inputs)
    rid = physical
    service = type_.split(":")[1].split("/", maxsplit=1)[0]
    if type_ == "aws:s3/bucket:Bucket":
        out |= {
            "bucket": physical,
            "arn": _arn("s3", physical, region, account_id, regional=False, account=False),
        }
        out["bucketRegionalDomainName"] = f"{physical}.s3.{region}.amazonaws.com"
    elif type_ == "aws:iam/role:Role":
        out |= {"name": physical, "arn": _arn("iam", f"role/{physical}", region, account_id, regional=False)}
        out["uniqueId"] = f"AROA{abs(hash(physical)) % 10**16:016d}"
    elif type_ == "aws:iam/policy:Policy":
        out |= {
            "name": physical,
            "arn": _arn("iam", f"policy/{physical}", region, account_id, regional=False),
        }
        rid = out["arn"]
    elif type_ == "aws:lambda/function:Function":
        arn = _arn("lambda", f"function:{physical}", region, account_id)
        out |= {"name": physical, "arn": arn, "qualifiedArn": f"{arn}:$LATEST", "version": "$LATEST"}
        out["invokeArn"] = f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations"
    elif type_ == "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream":
        out |= {"name": physical, "arn": _arn("firehose", f"deliverystream/{physical}", region, account_id)}
        rid = out["arn"]
    elif type_ == "aws:sfn/stateMachine:StateMachine":
        out |= {"name": physical, "arn": _arn("states", f"stateMachine:{physical}", region, account_id)}
        rid = out["arn"]
    elif type_ == "aws:sns/topic:Topic":
        out |= {"name": physical, "arn": _arn("sns", physical, region, account_id)}
        rid = out["arn"]
    elif type_ == "aws:kms/key:Key":
        # crc32, not hash(): str hashes change per process, and rendered stacks must be reproducible.
        rid = f"{zlib.crc32(name.encode()):012d}-mock-key"
        out |= {"keyId": rid, "arn": _arn("kms", f"key/{rid}", region, account_id)}
    elif type_ == "aws:kms/alias:Alias":
        out |= {"arn": _arn("kms", physical, region, account_id)}
    elif type_ == "aws:cloudwatch/logGroup:LogGroup":
        out |= {"name": physical, "arn": _arn("logs", f"log-group:{physical}", region, account_id)}
    elif type_ == "aws:glue/catalogDatabase:CatalogDatabase":
        out |= {"name": physical, "arn": _arn("glue", f"database/{physical}", region, account_id)}
        rid = f"{account_id}:{physical}"
    elif type_ == "aws:glue/catalogTable:CatalogTable":
        db = inputs.get("databaseName", "")
        out |= {"name": physical, "arn": _arn("glue", f"table/{db}/{physical}", region, account_id)}
        rid = f"{account_id}:{db}:{physical}"
    elif type_ == "aws:athena/workgroup:Workgroup":
        out |= {"name": physical, "arn": _arn("athena", f"workgroup/{physical}", region, account_id)}
    elif type_ == "aws:athena/namedQuery:NamedQuery":
        rid = f"{abs(hash(physical)) % 10**12:012d}-named-query"
    elif type_ == "aws:cloudwatch/metricAlarm:MetricAlarm":
        out |= {"arn": _arn("cloudwatch", f"alarm:{physical}", region, account_id)}
    elif type_ == "aws:cloudwatch/dashboard:Dashboard":
        out |= {
            "dashboardArn": _arn(
                "cloudwatch",
                f"dashboard/{inputs.get('dashboardName', physical)}",
                region,
                account_id,
                regional=False,
            )
        }
    elif type_ == "aws:scheduler/schedule:Schedule":
        group = inputs.get("groupName") or "default"
        out |= {"arn": _arn("scheduler", f"schedule/{group}/{physical}", region, account_id)}
    elif type_ == "aws:sns/topicSubscription:TopicSubscription":
        rid = f"{inputs.get('topic', '')}:{abs(hash(name)) % 10**8:08d}"
        out |= {"arn": rid}
    elif "arn" not in out:
        out["arn"] = _arn(service, physical, region, account_id)
    return rid, out


def _call_result(token: str, args: dict[str, Any], region: str, account_id: str) -> dict[str, Any]:
    if token == "aws:index/getCallerIdentity:getCallerIdentity":
        return {
            "accountId": account_id,
            "arn": f"arn:aws:iam::{account_id}:user/ci",
            "userId": "AIDAMOCK",
            "id": account_id,
        }
    if token == "aws:index/getPartition:getPartition":
        return {
            "partition": "aws",
            "dnsSuffix": "amazonaws.com",
            "reverseDnsPrefix": "com.amazonaws",
            "id": "aws",
        }
    if token == "aws:index/getRegion:getRegion":
        return {"name": region, "region": region, "id": region, "endpoint": f"ec2.{region}.amazonaws.com"}
    raise NotImplementedError(f"the recording mocks have no answer for provider call {token}")


# --- the run ------------------------------------------------------------------------------------------


def stack_config(stack: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The configuration the engine would hand the program (``tools.stackfile.config``: Pulumi.yaml
    defaults < ``Pulumi.<stack>.yaml`` < overrides); a stack without a stack file is refused."""
    return stackfile.config(stack, overrides)


def _engine_value(value: Any) -> str:
    # The engine passes every config value to the program as a string; structured values as JSON. Here a
    # list given to a string setting becomes a string: the program's settings.load recognises JSON text,
    # and tools.stackfile.load checks the YAML types before this point.
    return value if isinstance(value, str) else json.dumps(value)


def run(
    program: Callable[[], None] | None = None,
    *,
    stack: str = "dev",
    overrides: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Run:
    """Run ``program`` (default: the real ``__main__.py``) for ``stack`` under recording mocks.

    ``overrides`` changes single keys of the stack's configuration (``None`` removes a key); ``config``
    replaces the assembled configuration entirely. Exceptions raised by the program propagate.
    """
    import pulumi
    from pulumi.runtime import settings as runtime_settings
    from pulumi.runtime.stack import run_in_stack

    conf = dict(config) if config is not None else stack_config(stack, overrides)
    region = str(conf.get("aws:region", DEFAULT_REGION))
    account = account_of(conf)
    recording = Run(stack=stack, config=conf, account=account)

    class RecordingMocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            inputs = dict(args.inputs)
            if args.custom:
                rid, outputs = _outputs_for(args.typ, args.name, inputs, region, account)
            else:  # a component: the engine gives it no id and only the outputs it registers
                rid, outputs = "", {}
            recording.resources.append(
                Resource(args.typ, args.name, "", rid, inputs, outputs, parent=None, custom=bool(args.custom))
            )
            return rid, outputs

        def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
            recording.calls.append((args.token, dict(args.args)))
            return _call_result(args.token, dict(args.args), region, account)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    previous = runtime_settings.SETTINGS
    try:
        pulumi.runtime.set_all_config({k: _engine_value(v) for k, v in conf.items()})
        mocks = RecordingMocks()
        monitor = _recording_monitor(mocks, recording)
        runtime_settings.set_root_resource(None)
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
        runtime_settings.set_root_resource(None)  # set_mocks made a root stack; run_in_stack makes its own
        body = program or (lambda: runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__"))
        loop.run_until_complete(run_in_stack(body))
        recording.exports = monitor.exports
    finally:
        runtime_settings.configure(previous)
        runtime_settings.set_root_resource(None)
        pulumi.runtime.set_all_config({})
        asyncio.set_event_loop(None)
        loop.close()
    return recording


def _recording_monitor(mocks: Any, recording: Run) -> Any:
    """A mock monitor that also records each resource's URN and parent, and the stack's exports."""
    from pulumi.runtime import rpc
    from pulumi.runtime.mocks import MockMonitor

    class RecordingMonitor(MockMonitor):
        def __init__(self) -> None:
            super().__init__(mocks)
            self.exports: dict[str, Any] = {}

        def RegisterResource(self, request: Any) -> Any:
            # The SDK registers resources from several threads at once: find this request's record by its
            # (type, name), unique within a stack, never by position.
            response = super().RegisterResource(request)
            for resource in recording.resources:
                if resource.type == request.type and resource.name == request.name and not resource.urn:
                    resource.urn = response.urn
                    resource.parent = request.parent or None
                    resource.options = {
                        "protect": bool(request.protect),
                        "retainOnDelete": bool(request.retainOnDelete),
                        "dependsOn": list(request.dependencies),
                    }
                    break
            return response

        def RegisterResourceOutputs(self, request: Any) -> Any:
            outputs = dict(rpc.deserialize_properties(request.outputs))
            if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
                self.exports = outputs
            else:
                for r in recording.resources:
                    if r.urn == request.urn:
                        r.outputs = outputs
            return super().RegisterResourceOutputs(request)

    return RecordingMonitor()
