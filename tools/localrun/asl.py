"""A local interpreter for the JSONata state machine definitions this project renders.

It runs exactly the states and fields ``spec/definition.py`` uses (see ``SUPPORTED``): Pass,
Choice, Wait, Task, Map (DISTRIBUTED), Succeed and Fail, with Retry (ErrorEquals, IntervalSeconds,
MaxAttempts, BackoffRate, JitterStrategy), Catch (ErrorEquals, Next, Output, Assign), Assign and Output.
``load`` checks the whole definition first: a field it does not know, a state type, a Resource, a
``Next`` that names no state, or a JSONata expression that does not compile stops the run before it
starts, with an error naming the state and the field.

Semantics followed (docs.aws.amazon.com/step-functions/latest/dg/):
* transforming-data.html, workflow-variables.html: ``$states.input`` is the state's input,
  ``$states.result`` the task's result, ``$states.errorOutput`` in a Catch; ``Assign`` and ``Output`` are
  evaluated against the variables as they were when the state started, then the assignments apply.
  Without ``Output`` a Task's output is its result, other states pass their input through.
* concepts-error-handling.html: the first retrier whose ErrorEquals matches applies; delay =
  IntervalSeconds * BackoffRate^(retries so far), FULL jitter draws uniformly in [0, delay); MaxAttempts
  defaults to 3; ``States.ALL`` matches any error, ``States.TaskFailed`` any error but ``States.Timeout``.
  When retries are exhausted the first matching catcher chooses the next state.
* Every state entered, and every retry, is a state transition (concepts-transitions.html).
* redrive-executions.html: ``redrive`` continues a FAILED execution from the unsuccessful step with that
  step's input and the variables as they were, the same execution ARN and start time, and
  ``$states.context.Execution.RedriveCount`` one higher; a SUCCEEDED execution, or one that exceeded its
  ``TimeoutSeconds``, cannot be redriven. A Distributed Map that failed redrives its map run (the map
  runner re-runs only the failed children). An execution that ended in a Fail state re-fails there.

Time is simulated: Wait states and retry delays advance the run's clock instantly; listeners (the
Firehose stand-in's delivery) act on each advance.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tools.localrun.expressions import EvaluationError, Expression, ExpressionError, Template

INTEGRATION_PREFIX = "arn:{partition}:states:::"

# Fields each state type may carry (plus "Type", "Comment", "QueryLanguage"); anything else is refused.
SUPPORTED: dict[str, set[str]] = {
    "Pass": {"Next", "End", "Assign", "Output"},
    "Choice": {"Choices", "Default"},
    "Wait": {"Seconds", "Next", "End"},
    "Task": {"Resource", "Arguments", "Output", "Assign", "Next", "End", "Retry", "Catch", "TimeoutSeconds"},
    "Map": {
        "ItemReader", "ItemSelector", "ItemBatcher", "MaxConcurrency", "ToleratedFailurePercentage", "Label",
        "ItemProcessor", "ResultWriter", "Assign", "Output", "Next", "End", "Retry", "Catch",
    },
    "Succeed": {"Output"},
    "Fail": {"Error", "Cause"},
}  # fmt: skip
COMMON_FIELDS = {"Type", "Comment", "QueryLanguage"}
TOP_LEVEL_FIELDS = {"Comment", "QueryLanguage", "TimeoutSeconds", "StartAt", "States"}
PROCESSOR_FIELDS = {"ProcessorConfig", "StartAt", "States"}
CHOICE_RULE_FIELDS = {"Condition", "Next"}
RETRY_FIELDS = {"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "JitterStrategy"}
CATCH_FIELDS = {"ErrorEquals", "Next", "Output", "Assign"}
ITEM_READER_FIELDS = {"Resource", "ReaderConfig", "Arguments"}
READER_CONFIG_FIELDS = {"InputType", "ManifestType", "CSVHeaderLocation", "CSVHeaders"}
ITEM_BATCHER_FIELDS = {"MaxItemsPerBatch", "MaxInputBytesPerBatch", "BatchInput"}
RESULT_WRITER_FIELDS = {"Resource", "Arguments", "WriterConfig"}
WRITER_CONFIG_FIELDS = {"Transformation", "OutputType"}

# Task resources the local run provides (after ``arn:<partition>:states:::``).
TASK_RESOURCES = {
    "athena:startQueryExecution.sync",
    "athena:getQueryResults",
    "lambda:invoke",
    "aws-sdk:sfn:describeMapRun",
    "aws-sdk:s3:listObjectsV2",
    "aws-sdk:s3:deleteObjects",
}


class DefinitionError(ValueError):
    """The definition uses something the local executor does not support, or is malformed."""


class RedriveError(ValueError):
    """RedriveExecution refused: the execution is not redrivable (the reason is the message)."""


class StatesError(Exception):
    """A run-time error inside a state (catchable by Retry/Catch), e.g. ``States.TaskFailed``."""

    def __init__(self, error: str, cause: str = ""):
        self.error = error
        self.cause = cause
        super().__init__(f"{error}: {cause}")


class ExecutionFailed(RuntimeError):
    """The execution ended in failure: a Fail state or an error no Catch handled."""

    def __init__(self, execution_id: str, state: str, error: str, cause: str):
        self.execution_id = execution_id
        self.state = state
        self.error = error
        self.cause = cause
        super().__init__(f"execution {execution_id} failed in state {state!r}: {error}: {cause}")


class Clock:
    """The run's simulated UTC clock; ``advance`` notifies listeners (e.g. Firehose delivery)."""

    def __init__(self, start: datetime):
        self.now = start.astimezone(UTC)
        self.listeners: list[Callable[[datetime], None]] = []

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        for listener in self.listeners:
            listener(self.now)

    def iso(self) -> str:
        return iso(self.now)


def iso(when: datetime) -> str:
    """ISO 8601 with milliseconds and ``Z``, as ``$states.context`` carries times."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass
class Counters:
    """What an execution did (a map run adds its children's counts)."""

    transitions: int = 0
    retries: int = 0
    lambda_invocations: int = 0
    history: list[tuple[str, str, str]] = field(default_factory=list)  # (time, state, event)

    def add(self, other: Counters) -> None:
        self.transitions += other.transitions
        self.retries += other.retries
        self.lambda_invocations += other.lambda_invocations


# ---------------------------------------------------------------------------------------------- loading
@dataclass
class CompiledState:
    name: str
    type: str
    raw: dict[str, Any]
    assign: Template | None
    output: Template | None
    arguments: Template | None
    retry: list[dict[str, Any]]
    catch: list[dict[str, Any]]  # with compiled "Output"/"Assign"
    choices: list[tuple[Expression, str]]
    extra: dict[str, Any]


@dataclass
class Machine:
    """A checked, compiled definition (or a Map's ItemProcessor)."""

    start_at: str
    states: dict[str, CompiledState]
    timeout_seconds: int | None
    partition: str
    processors: dict[str, Machine]  # Map state name -> its ItemProcessor


def _check_fields(where: str, value: Any, allowed: set[str]) -> None:
    if not isinstance(value, dict):
        raise DefinitionError(f"{where}: expected an object, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise DefinitionError(
            f"{where}: field {unknown[0]!r} is not supported by the local executor "
            f"(supported here: {', '.join(sorted(allowed))})"
        )


def load(definition: dict[str, Any], *, partition: str = "aws", where: str = "definition") -> Machine:
    """Check and compile a definition; raises ``DefinitionError`` naming the state and field."""
    _check_fields(where, definition, TOP_LEVEL_FIELDS if where == "definition" else PROCESSOR_FIELDS)
    language = definition.get("QueryLanguage", "JSONata" if where != "definition" else None)
    if where == "definition" and language != "JSONata":
        raise DefinitionError(
            f"{where}: field 'QueryLanguage' is {language!r}; the local executor runs JSONata only"
        )
    states = definition.get("States")
    if not isinstance(states, dict) or not states:
        raise DefinitionError(f"{where}: field 'States' must be a non-empty object")
    start = definition.get("StartAt")
    if start not in states:
        raise DefinitionError(f"{where}: field 'StartAt' names {start!r}, which is not a state")
    compiled: dict[str, CompiledState] = {}
    processors: dict[str, Machine] = {}
    for name, raw in states.items():
        at = f"state {name!r}"
        if not isinstance(raw, dict):
            raise DefinitionError(f"{at}: expected an object")
        kind = raw.get("Type")
        if kind not in SUPPORTED:
            raise DefinitionError(f"{at}: field 'Type' is {kind!r}; supported: {', '.join(SUPPORTED)}")
        _check_fields(f"{at} ({kind})", raw, SUPPORTED[kind] | COMMON_FIELDS)
        if raw.get("QueryLanguage", "JSONata") != "JSONata":
            raise DefinitionError(
                f"{at}: field 'QueryLanguage' is {raw['QueryLanguage']!r}; only JSONata runs locally"
            )
        for target_field in ("Next", "Default"):
            if target_field in raw and raw[target_field] not in states:
                raise DefinitionError(
                    f"{at}: field {target_field!r} names {raw[target_field]!r}, which is not a state"
                )
        if kind not in ("Choice", "Succeed", "Fail") and not (raw.get("End") is True or "Next" in raw):
            raise DefinitionError(f"{at}: needs field 'Next' or 'End'")
        try:
            state = _compile_state(name, kind, raw, states, partition)
        except ExpressionError as exc:
            raise DefinitionError(str(exc)) from None
        if kind == "Map":
            processors[name] = load(raw["ItemProcessor"], partition=partition, where=f"{at}.ItemProcessor")
        compiled[name] = state
    timeout = definition.get("TimeoutSeconds")
    if timeout is not None and (not isinstance(timeout, int) or timeout < 1):
        raise DefinitionError(f"{where}: field 'TimeoutSeconds' must be a positive integer, got {timeout!r}")
    return Machine(start, compiled, timeout, partition, processors)


def _compile_state(
    name: str, kind: str, raw: dict[str, Any], states: dict[str, Any], partition: str
) -> CompiledState:
    at = f"state {name!r}"

    def template(key: str) -> Template | None:
        return Template(raw[key], f"{at}, field {key!r}") if key in raw else None

    retry = []
    for i, rule in enumerate(raw.get("Retry", [])):
        _check_fields(f"{at}, field 'Retry[{i}]'", rule, RETRY_FIELDS)
        if not rule.get("ErrorEquals"):
            raise DefinitionError(f"{at}, field 'Retry[{i}].ErrorEquals' must list at least one error")
        jitter = rule.get("JitterStrategy", "NONE")
        if jitter not in ("FULL", "NONE"):
            raise DefinitionError(f"{at}, field 'Retry[{i}].JitterStrategy' is {jitter!r}; FULL or NONE")
        retry.append(rule)
    catch = []
    for i, rule in enumerate(raw.get("Catch", [])):
        _check_fields(f"{at}, field 'Catch[{i}]'", rule, CATCH_FIELDS)
        if rule.get("Next") not in states:
            raise DefinitionError(
                f"{at}, field 'Catch[{i}].Next' names {rule.get('Next')!r}, which is not a state"
            )
        catch.append(
            {
                "ErrorEquals": list(rule.get("ErrorEquals") or []),
                "Next": rule["Next"],
                "Output": Template(rule["Output"], f"{at}, field 'Catch[{i}].Output'")
                if "Output" in rule
                else None,
                "Assign": Template(rule["Assign"], f"{at}, field 'Catch[{i}].Assign'")
                if "Assign" in rule
                else None,
            }
        )
    choices = []
    for i, rule in enumerate(raw.get("Choices", [])):
        _check_fields(f"{at}, field 'Choices[{i}]'", rule, CHOICE_RULE_FIELDS)
        if rule.get("Next") not in states:
            raise DefinitionError(
                f"{at}, field 'Choices[{i}].Next' names {rule.get('Next')!r}, which is not a state"
            )
        cond = rule.get("Condition")
        if not isinstance(cond, str) or not cond.startswith("{%"):
            raise DefinitionError(f"{at}, field 'Choices[{i}].Condition' must be a JSONata expression")
        choices.append((Expression(cond, f"{at}, field 'Choices[{i}].Condition'"), rule["Next"]))
    if kind == "Choice" and not choices:
        raise DefinitionError(f"{at}: field 'Choices' must hold at least one rule")
    extra: dict[str, Any] = {}
    if kind == "Task":
        prefix = INTEGRATION_PREFIX.format(partition=partition)
        resource = raw.get("Resource", "")
        if (
            not isinstance(resource, str)
            or not resource.startswith(prefix)
            or resource[len(prefix) :] not in TASK_RESOURCES
        ):
            raise DefinitionError(
                f"{at}, field 'Resource': {resource!r} is not supported locally; supported: "
                + ", ".join(prefix + r for r in sorted(TASK_RESOURCES))
            )
        extra["integration"] = resource[len(prefix) :]
        timeout = raw.get("TimeoutSeconds")
        if timeout is not None and (not isinstance(timeout, int) or timeout < 1):
            raise DefinitionError(f"{at}, field 'TimeoutSeconds' must be a positive integer")
    if kind == "Wait":
        seconds = raw.get("Seconds")
        if isinstance(seconds, str):
            extra["seconds"] = Expression(seconds, f"{at}, field 'Seconds'")
        elif isinstance(seconds, int) and seconds >= 0:
            extra["seconds"] = seconds
        else:
            raise DefinitionError(
                f"{at}, field 'Seconds' must be a non-negative integer or a JSONata expression"
            )
    if kind == "Fail":
        for key in ("Error", "Cause"):
            if key in raw:
                extra[key] = Template(raw[key], f"{at}, field {key!r}")
    if kind == "Map":
        from tools.localrun.distmap import compile_map

        extra["map"] = compile_map(name, raw, partition)
    return CompiledState(
        name=name,
        type=kind,
        raw=raw,
        assign=template("Assign"),
        output=template("Output"),
        arguments=template("Arguments"),
        retry=retry,
        catch=catch,
        choices=choices,
        extra=extra,
    )


# ---------------------------------------------------------------------------------------------- running
def error_matches(patterns: list[str], error: str) -> bool:
    for pattern in patterns:
        if pattern in (error, "States.ALL"):
            return True
        if pattern == "States.TaskFailed" and error != "States.Timeout":
            return True
    return False


@dataclass
class ExecutionResult:
    """How an execution ended."""

    execution_id: str
    name: str
    status: str  # SUCCEEDED | FAILED
    output: Any
    error: str | None
    cause: str | None
    failed_state: str | None
    start: datetime
    stop: datetime
    counters: Counters
    variables: dict[str, Any]
    failed_input: Any = None  # the failed state's input, which a redrive gives it again
    execution_input: Any = None
    redrive_count: int = 0
    redrivable: bool = True


TaskHandler = Callable[[str, dict[str, Any], dict[str, Any]], Any]
MapHandler = Callable[..., dict[str, Any]]


class Executor:
    """Runs a ``Machine``; task integrations and the Distributed Map are supplied by the caller."""

    def __init__(
        self,
        machine: Machine,
        *,
        tasks: dict[str, Callable[..., Any]],
        run_map: MapHandler | None = None,
        clock: Clock,
        state_machine_arn: str,
        rng: random.Random | None = None,
        fast: bool = True,
        verify: bool = False,
    ):
        self.machine = machine
        self.tasks = tasks
        self.run_map = run_map
        self.clock = clock
        self.state_machine_arn = state_machine_arn
        self.rng = rng or random.Random(0)
        self.fast = fast
        self.verify = verify

    def run(
        self, execution_input: Any, *, name: str, execution_id: str | None = None, record_history: bool = True
    ) -> ExecutionResult:
        """Run to the end; a failure is returned as ``status == "FAILED"`` (``raise_for_status`` raises)."""
        sm_name = self.state_machine_arn.rsplit(":", 1)[-1]
        arn_base = self.state_machine_arn.rsplit(":", 2)[0]
        execution_id = execution_id or f"{arn_base}:execution:{sm_name}:{name}"
        start = self.clock.now
        return self._loop(
            self.machine.start_at,
            execution_input,
            {},
            execution_id=execution_id,
            name=name,
            execution_input=execution_input,
            start=start,
            redrive_count=0,
            counters=Counters(),
            record_history=record_history,
        )

    def redrive(self, previous: ExecutionResult, *, record_history: bool = True) -> ExecutionResult:
        """RedriveExecution: continue ``previous`` from its unsuccessful step (raises ``RedriveError``)."""
        if previous.status != "FAILED":
            raise RedriveError(
                f"Execution is {previous.status} and cannot be redriven: {previous.execution_id}"
            )
        if not previous.redrivable:
            raise RedriveError(f"Execution has exceeded the max execution time: {previous.execution_id}")
        counters = Counters(history=list(previous.counters.history))
        return self._loop(
            previous.failed_state or self.machine.start_at,
            previous.failed_input,
            dict(previous.variables),
            execution_id=previous.execution_id,
            name=previous.name,
            execution_input=previous.execution_input,
            start=previous.start,
            redrive_count=previous.redrive_count + 1,
            counters=counters,
            record_history=record_history,
        )

    def _loop(
        self,
        current: str,
        data: Any,
        variables: dict[str, Any],
        *,
        execution_id: str,
        name: str,
        execution_input: Any,
        start: datetime,
        redrive_count: int,
        counters: Counters,
        record_history: bool,
    ) -> ExecutionResult:
        sm_name = self.state_machine_arn.rsplit(":", 1)[-1]
        context = {
            "Execution": {
                "Id": execution_id,
                "Name": name,
                "StartTime": iso(start),
                "Input": execution_input,
                "RoleArn": "",
                "RedriveCount": redrive_count,
            },
            "StateMachine": {"Id": self.state_machine_arn, "Name": sm_name},
        }

        def failed(state: str, error: str, cause: str, *, redrivable: bool = True) -> ExecutionResult:
            return ExecutionResult(
                execution_id, name, "FAILED", None, error, cause, state, start, self.clock.now, counters,
                variables, failed_input=data, execution_input=execution_input, redrive_count=redrive_count,
                redrivable=redrivable,
            )  # fmt: skip

        while True:
            state = self.machine.states[current]
            counters.transitions += 1
            if record_history:
                counters.history.append((self.clock.iso(), current, state.type))
            ctx = dict(context, State={"Name": current, "EnteredTime": self.clock.iso(), "RetryCount": 0})
            timeout = self.machine.timeout_seconds
            if timeout and (self.clock.now - start).total_seconds() > timeout:
                return failed(current, "States.Timeout", "execution timed out", redrivable=False)
            try:
                outcome = self._step(state, data, ctx, variables, counters)
            except StatesError as err:
                caught = self._catch(state, err, data, ctx, variables)
                if caught is None:
                    return failed(current, err.error, err.cause)
                current, data = caught
                continue
            except _Fail as fail:
                return failed(current, fail.error, fail.cause)
            kind, value = outcome
            if kind == "end":
                return ExecutionResult(
                    execution_id, name, "SUCCEEDED", value, None, None, None, start, self.clock.now, counters,
                    variables, execution_input=execution_input, redrive_count=redrive_count,
                )  # fmt: skip
            current, data = kind, value

    def _bindings(self, variables: dict[str, Any], states: dict[str, Any]) -> dict[str, Any]:
        bindings = dict(variables)
        bindings["states"] = states
        return bindings

    def _eval(self, template: Template | Expression, bindings: dict[str, Any]) -> Any:
        try:
            return template.evaluate(bindings, fast=self.fast, verify=self.verify)
        except EvaluationError as exc:
            raise StatesError("States.QueryEvaluationError", str(exc)) from None

    def _finish(
        self, state: CompiledState, data: Any, result: Any, ctx: dict, variables: dict, *, has_result: bool
    ):
        states = {"input": data, "context": ctx}
        if has_result:
            states["result"] = result
        bindings = self._bindings(variables, states)
        assigned = self._eval(state.assign, bindings) if state.assign else {}
        output = self._eval(state.output, bindings) if state.output else (result if has_result else data)
        variables.update(assigned)
        if state.raw.get("End") is True:
            return "end", output
        return state.raw["Next"], output

    def _step(self, state: CompiledState, data: Any, ctx: dict, variables: dict, counters: Counters):
        kind = state.type
        if kind == "Pass":
            return self._finish(state, data, None, ctx, variables, has_result=False)
        if kind == "Choice":
            bindings = self._bindings(variables, {"input": data, "context": ctx})
            for condition, target in state.choices:
                verdict = self._eval(condition, bindings)
                if not isinstance(verdict, bool):
                    raise StatesError(
                        "States.QueryEvaluationError",
                        f"{condition.where}: evaluated to {verdict!r}, not a boolean",
                    )
                if verdict:
                    return target, data
            if "Default" in state.raw:
                return state.raw["Default"], data
            raise StatesError("States.NoChoiceMatched", f"state {state.name!r}: no choice matched")
        if kind == "Wait":
            seconds = state.extra["seconds"]
            if isinstance(seconds, Expression):
                seconds = self._eval(seconds, self._bindings(variables, {"input": data, "context": ctx}))
            self.clock.advance(float(seconds))
            return state.raw.get("Next", "end") if not state.raw.get("End") else "end", data
        if kind == "Succeed":
            bindings = self._bindings(variables, {"input": data, "context": ctx})
            return "end", self._eval(state.output, bindings) if state.output else data
        if kind == "Fail":
            bindings = self._bindings(variables, {"input": data, "context": ctx})
            error = self._eval(state.extra["Error"], bindings) if "Error" in state.extra else None
            cause = self._eval(state.extra["Cause"], bindings) if "Cause" in state.extra else None
            raise _Fail(str(error), str(cause))
        if kind in ("Task", "Map"):
            result = self._with_retry(state, data, ctx, variables, counters)
            return self._finish(state, data, result, ctx, variables, has_result=True)
        raise DefinitionError(f"state {state.name!r}: type {kind!r} is not runnable")  # load() prevents this

    def _with_retry(
        self, state: CompiledState, data: Any, ctx: dict, variables: dict, counters: Counters
    ) -> Any:
        attempts = [0] * len(state.retry)
        while True:
            try:
                return self._invoke(state, data, ctx, variables, counters)
            except StatesError as err:
                index = next(
                    (i for i, r in enumerate(state.retry) if error_matches(r["ErrorEquals"], err.error)), None
                )
                if index is None:
                    raise
                rule = state.retry[index]
                if attempts[index] >= rule.get("MaxAttempts", 3):
                    raise
                delay = rule.get("IntervalSeconds", 1) * rule.get("BackoffRate", 2.0) ** attempts[index]
                if rule.get("JitterStrategy") == "FULL":
                    delay = self.rng.uniform(0, delay)
                attempts[index] += 1
                ctx["State"]["RetryCount"] = sum(attempts)
                counters.retries += 1
                counters.transitions += 1
                self.clock.advance(delay)

    def _invoke(self, state: CompiledState, data: Any, ctx: dict, variables: dict, counters: Counters) -> Any:
        bindings = self._bindings(variables, {"input": data, "context": ctx})
        if state.type == "Map":
            if self.run_map is None:
                raise StatesError("States.Runtime", f"state {state.name!r}: no Map runner in this executor")
            return self.run_map(state, data, ctx, variables, counters, self)
        arguments = self._eval(state.arguments, bindings) if state.arguments else {}
        integration = state.extra["integration"]
        handler = self.tasks.get(integration)
        if handler is None:
            raise StatesError(
                "States.Runtime", f"state {state.name!r}: integration {integration} is not wired"
            )
        if integration == "lambda:invoke":
            counters.lambda_invocations += 1
        return handler(state, arguments, ctx)

    def _catch(self, state: CompiledState, err: StatesError, data: Any, ctx: dict, variables: dict):
        for rule in state.catch:
            if error_matches(rule["ErrorEquals"], err.error):
                error_output = {"Error": err.error, "Cause": err.cause}
                bindings = self._bindings(
                    variables, {"input": data, "context": ctx, "errorOutput": error_output}
                )
                assigned = self._eval(rule["Assign"], bindings) if rule["Assign"] else {}
                output = self._eval(rule["Output"], bindings) if rule["Output"] else error_output
                variables.update(assigned)
                return rule["Next"], output
        return None


class _Fail(Exception):
    def __init__(self, error: str, cause: str):
        self.error = error
        self.cause = cause
