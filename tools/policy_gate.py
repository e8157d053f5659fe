"""The offline policy gate: the CrossGuard pack judging a stack exactly as the engine would, without one.

``make policy STACK=<stage>`` (and ``make test``, for every stage) runs:

1. the real program under the recording mocks (tools/harness.py) with that stage's configuration;
2. the pack the way the engine boots a Python pack (pulumi/sdk/go/common/resource/plugin/
   analyzer_plugin.go, legacy ``pulumi-analyzer-policy-python`` path): ``<venv python> -u -m pulumi.policy
   <engine address> .`` with the pack directory as working directory and ``PULUMI_CONFIG``/
   ``PULUMI_PROJECT``/``PULUMI_STACK``/``PULUMI_DRY_RUN`` in the environment. ``PolicyPack(...)`` starts a
   gRPC server on 127.0.0.1, prints the port on stdout and serves until killed; it never dials the engine
   address, so a placeholder is passed;
3. the analyzer protocol (pulumi/runtime/proto/analyzer.proto): ``GetAnalyzerInfo``, ``Configure`` with
   every policy's enforcement level and properties resolved from the stage's policy config file as the
   CLI resolves ``--policy-pack-config`` (``all`` first, then per-policy entries), ``ConfigureStack``, one
   ``Analyze`` per custom resource with its *inputs*, and one ``AnalyzeStack`` with every resource's
   *outputs* (what the engine sends for stack policies);
4. prints each diagnostic with its enforcement level, stops the pack process (also on errors), and exits
   1 when any diagnostic is mandatory.

Properties travel as ``google.protobuf.Struct``, so integers arrive as floats, as they do from the engine;
assets and archives are encoded with the engine's signature keys.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACK_DIR = ROOT / "policies"
CONFIG_DIR = PACK_DIR / "config"
PROJECT = "sensorflow"
# The pack serves on its own port and never calls back into the engine; pulumi.policy requires an address.
ENGINE_PLACEHOLDER = "127.0.0.1:0"
START_TIMEOUT_S = 60.0
RPC_TIMEOUT_S = 120.0
LEVELS = ("advisory", "mandatory", "remediate", "disabled")

# Signature keys the engine uses to mark assets and archives inside property maps
# (sdk/go/common/resource/properties.go; pulumi_policy/deserialize.py).
_SIG = "4dabf18193072939515e22adb298388d"
_ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
_ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"


class GateError(RuntimeError):
    """The gate could not run (pack did not start, bad policy config file): not a policy verdict."""


@dataclass(frozen=True)
class Violation:
    """One diagnostic: which rule, on which resource, at which enforcement level."""

    policy: str
    level: str  # advisory | mandatory | remediate | disabled
    message: str
    urn: str  # "" for a stack-wide diagnostic
    resource: str  # logical name, or "(stack)"
    resource_type: str
    scope: str  # "resource" (Analyze) or "stack" (AnalyzeStack)
    severity: str = ""

    @property
    def mandatory(self) -> bool:
        return self.level in {"mandatory", "remediate"}

    def line(self) -> str:
        detail = self.message.split("\n", 1)[-1]  # the runtime prefixes the rule's description
        where = f"{self.resource} ({self.resource_type})" if self.urn else "(stack)"
        return f"[{self.level}] {self.policy}: {where}: {detail}"


@dataclass
class GateReport:
    """Everything one gate run found."""

    stage: str
    policies: dict[str, str]  # name -> effective enforcement level
    resources_analyzed: int
    violations: list[Violation] = field(default_factory=list)
    not_applicable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.mandatory]

    @property
    def passed(self) -> bool:
        return not self.mandatory

    def for_policy(self, name: str) -> list[Violation]:
        return [v for v in self.violations if v.policy == name]


# --- property encoding ------------------------------------------------------------------------------


def encode(value: Any) -> Any:
    """A resolved property value as the engine marshals it into a Struct (JSON types + signature maps)."""
    import pulumi

    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, pulumi.FileAsset):
        return {_SIG: _ASSET_SIG, "path": str(value.path)}
    if isinstance(value, pulumi.StringAsset):
        return {_SIG: _ASSET_SIG, "text": value.text}
    if isinstance(value, pulumi.RemoteAsset):
        return {_SIG: _ASSET_SIG, "uri": value.uri}
    if isinstance(value, pulumi.AssetArchive):
        return {_SIG: _ARCHIVE_SIG, "assets": {k: encode(v) for k, v in value.assets.items()}}
    if isinstance(value, pulumi.FileArchive):
        return {_SIG: _ARCHIVE_SIG, "path": str(value.path)}
    if isinstance(value, pulumi.RemoteArchive):
        return {_SIG: _ARCHIVE_SIG, "uri": value.uri}
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return str(value)


def to_struct(props: Mapping[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    struct = struct_pb2.Struct()
    struct.update(encode(props))
    return struct


# --- policy config, resolved as the CLI resolves --policy-pack-config ---------------------------------


def load_pack_config(path: Path | None) -> dict[str, Any]:
    """The JSON policy config file as a dict (empty without a file); clear errors for a bad file."""
    if path is None:
        return {}
    if not path.is_file():
        raise GateError(f"policy config file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise GateError(f"policy config file {path} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise GateError(f"policy config file {path} must hold a JSON object of policy name -> config")
    return data


def resolve_config(
    policies: Mapping[str, tuple[str, Mapping[str, Any]]],
    file_config: Mapping[str, Any],
    source: str = "config",
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Per policy: (enforcement level, properties). ``policies`` maps name -> (default level, schema props).

    A key may be ``all`` (a level for every policy) or a policy name mapped to a level or to an object of
    ``enforcementLevel`` plus properties declared in that policy's schema. Unknown names, properties and
    levels are errors naming the offending key, as the CLI rejects them.
    """
    problems: list[str] = []

    def level_of(key: str, value: Any) -> str | None:
        if value in LEVELS:
            return value
        problems.append(f"{source}: {key}: enforcement level {value!r} is not one of {', '.join(LEVELS)}")
        return None

    everyone = level_of("all", file_config["all"]) if "all" in file_config else None
    resolved: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, (default_level, schema) in policies.items():
        level, props = everyone or default_level, {}
        entry = file_config.get(name)
        if isinstance(entry, str):
            level = level_of(name, entry) or level
        elif isinstance(entry, Mapping):
            for key, value in entry.items():
                if key == "enforcementLevel":
                    level = level_of(name, value) or level
                elif key not in schema:
                    allowed = ", ".join(sorted(schema)) or "none"
                    problems.append(f"{source}: {name}: unknown property {key!r} (allowed: {allowed})")
                else:
                    props[key] = value
        elif entry is not None:
            problems.append(f"{source}: {name}: expected a level or an object, got {type(entry).__name__}")
        resolved[name] = (level, props)
    for key in file_config:
        if key != "all" and key not in policies:
            problems.append(f"{source}: {key!r} is not a policy of this pack")
    if problems:
        raise GateError("bad policy config:\n  " + "\n  ".join(problems))
    return resolved


# --- the pack process -------------------------------------------------------------------------------


def pack_python() -> str:
    """The pack's own virtualenv python (as PulumiPolicy.yaml's `virtualenv` option), else this one."""
    venv = PACK_DIR / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


class PackServer:
    """The pack running in a subprocess, as the engine runs it; a context manager that always stops it."""

    def __init__(
        self, *, stack: str = "dev", config: Mapping[str, Any] | None = None, python: str | None = None
    ):
        self.stack = stack
        self.config = dict(config or {})
        self.python = python or pack_python()
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        # Lives as long as the pack process (its stderr, shown when it fails to start); closed in stop().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._channel: Any = None
        self.stub: Any = None

    def __enter__(self) -> PackServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        import grpc
        from pulumi.runtime.proto import analyzer_pb2_grpc

        env = dict(os.environ)
        env |= {
            "PULUMI_CONFIG": json.dumps(
                {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.config.items()}
            ),
            "PULUMI_PROJECT": PROJECT,
            "PULUMI_STACK": self.stack,
            "PULUMI_DRY_RUN": "true",
            "PULUMI_ORGANIZATION": "organization",
        }
        self.process = subprocess.Popen(
            [self.python, "-u", "-m", "pulumi.policy", ENGINE_PLACEHOLDER, "."],
            cwd=PACK_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.port = self._read_port()
        self._channel = grpc.insecure_channel(
            f"127.0.0.1:{self.port}", options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)]
        )
        grpc.channel_ready_future(self._channel).result(timeout=START_TIMEOUT_S)
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)

    def _read_port(self) -> int:
        if self.process is None or self.process.stdout is None:
            raise GateError("the policy pack process was not started")
        deadline = time.monotonic() + START_TIMEOUT_S
        line = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(timeout=remaining):
                    raise GateError(
                        f"the policy pack printed no port within {START_TIMEOUT_S:.0f} s{self._tail()}"
                    )
                chunk = os.read(self.process.stdout.fileno(), 64)
                if not chunk:
                    code = self.process.wait(timeout=5)
                    raise GateError(f"the policy pack exited ({code}) before serving{self._tail()}")
                line += chunk
        text = line.decode().strip()
        if not text.isdigit():
            raise GateError(f"the policy pack printed {text!r} where its port was expected{self._tail()}")
        return int(text)

    def _tail(self) -> str:
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace").strip()
        return f":\n{err[-4000:]}" if err else ""

    def stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None
        self._stderr.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


# --- the check --------------------------------------------------------------------------------------

_LEVEL_NAMES = {0: "advisory", 1: "mandatory", 2: "disabled", 3: "remediate"}
_SEVERITY_NAMES = {0: "", 1: "low", 2: "medium", 3: "high", 4: "critical"}


def check(
    run: Any,
    *,
    stage: str,
    pack_config: Path | None = None,
    server: PackServer | None = None,
) -> GateReport:
    """Send ``run`` (a ``tools.harness.Run``) through the pack configured for ``stage``.

    ``pack_config`` is a ``--policy-pack-config`` file (None: the pack's defaults). ``server`` reuses a
    running pack (tests); without one a pack is started and stopped here.
    """
    if not run.resources:
        raise GateError(f"stack {stage}: the program registered no resources; nothing to check")
    file_config = load_pack_config(pack_config)
    if server is None:
        with PackServer(stack=stage, config=run.config) as own:
            return _check(run, stage, file_config, own, str(pack_config))
    return _check(run, stage, file_config, server, str(pack_config))


def _check(
    run: Any, stage: str, file_config: Mapping[str, Any], server: PackServer, source: str
) -> GateReport:
    from google.protobuf import empty_pb2, json_format
    from pulumi.runtime.proto import analyzer_pb2 as pb

    stub = server.stub
    info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=RPC_TIMEOUT_S)
    defaults = {
        p.name: (
            _LEVEL_NAMES[p.enforcementLevel],
            dict(json_format.MessageToDict(p.configSchema.properties)) if p.HasField("configSchema") else {},
        )
        for p in info.policies
    }
    resolved = resolve_config(defaults, file_config, source)
    request = pb.ConfigureAnalyzerRequest()
    for name, (level, props) in resolved.items():
        request.policyConfig[name].enforcementLevel = pb.EnforcementLevel.Value(level.upper())
        request.policyConfig[name].properties.update(encode(props))
    stub.Configure(request, timeout=RPC_TIMEOUT_S)
    stub.ConfigureStack(
        pb.AnalyzerStackConfigureRequest(
            stack=stage,
            project=PROJECT,
            organization="organization",
            dry_run=True,
            config={k: v if isinstance(v, str) else json.dumps(v) for k, v in run.config.items()},
            tags={"pulumi:project": PROJECT, "pulumi:runtime": "python"},
        ),
        timeout=RPC_TIMEOUT_S,
    )

    by_urn = {r.urn: r for r in run.resources}
    report = GateReport(
        stage=stage, policies={n: lvl for n, (lvl, _) in resolved.items()}, resources_analyzed=0
    )

    def collect(response: Any, scope: str, default_urn: str) -> None:
        for d in response.diagnostics:
            urn = d.urn or default_urn
            resource = by_urn.get(urn)
            report.violations.append(
                Violation(
                    policy=d.policyName,
                    level=_LEVEL_NAMES.get(d.enforcementLevel, str(d.enforcementLevel)),
                    message=d.message,
                    urn=urn,
                    resource=resource.name
                    if resource
                    else ("(stack)" if not urn else urn.rsplit("::", 1)[-1]),
                    resource_type=resource.type if resource else "",
                    scope=scope,
                    severity=_SEVERITY_NAMES.get(d.severity, ""),
                )
            )
        report.not_applicable.extend((n.policy_name, n.reason) for n in response.not_applicable)

    for r in run.resources:
        if not r.custom:
            continue
        response = stub.Analyze(
            pb.AnalyzeRequest(
                type=r.type,
                properties=to_struct(r.inputs),
                urn=r.urn,
                name=r.name,
                options=pb.AnalyzerResourceOptions(parent=r.parent or ""),
            ),
            timeout=RPC_TIMEOUT_S,
        )
        report.resources_analyzed += 1
        collect(response, "resource", r.urn)

    stack_request = pb.AnalyzeStackRequest(
        resources=[
            pb.AnalyzerResource(
                type=r.type,
                properties=to_struct(r.outputs if r.custom else r.inputs),
                urn=r.urn,
                name=r.name,
                options=pb.AnalyzerResourceOptions(parent=r.parent or ""),
                parent=r.parent or "",
            )
            for r in run.resources
        ]
    )
    collect(stub.AnalyzeStack(stack_request, timeout=RPC_TIMEOUT_S), "stack", "")
    return report


# --- CLI --------------------------------------------------------------------------------------------


def default_config(stage: str) -> Path | None:
    path = CONFIG_DIR / f"{stage}.json"
    return path if path.is_file() else None


def render(report: GateReport) -> Iterator[str]:
    yield (
        f"policy gate, stack {report.stage}: {len(report.policies)} policies, "
        f"{report.resources_analyzed} resources analysed"
    )
    for v in sorted(report.violations, key=lambda v: (not v.mandatory, v.policy, v.resource)):
        yield "  " + v.line()
    counts = f"{len(report.mandatory)} mandatory, {len(report.violations) - len(report.mandatory)} advisory"
    yield f"{'FAILED' if report.mandatory else 'passed'}: {counts}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.policy_gate", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="stage to render and check (dev, prod)")
    parser.add_argument(
        "--config", type=Path, help="policy config file (default: policies/config/<stack>.json)"
    )
    args = parser.parse_args(argv)

    from spec.settings import SettingsError
    from tools import harness, stackfile

    if not (ROOT / "__main__.py").exists():
        print(f"policy gate: {ROOT / '__main__.py'} does not exist; nothing to check", file=sys.stderr)
        return 2
    # The stack file first: a stack without one would otherwise be checked on defaults and pass, and a
    # broken one would fail inside the program with a traceback instead of the list of its problems.
    try:
        stackfile.load(args.stack)
    except SettingsError as exc:
        print(f"policy gate: {exc}", file=sys.stderr)
        return 2
    try:
        run = harness.run(stack=args.stack)
        report = check(run, stage=args.stack, pack_config=args.config or default_config(args.stack))
    except (GateError, SettingsError) as exc:
        print(f"policy gate: {exc}", file=sys.stderr)
        return 2
    for line in render(report):
        print(line)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
