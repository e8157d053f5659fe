"""A local interpreter for the JSONata state machine definitions this project renders.

It runs a ``Machine`` that ``machine.load`` checked and compiled: Pass, Choice, Wait, Task, Map
(DISTRIBUTED, run by the caller's map runner: ``distmap``), Succeed and Fail, with Retry, Catch, Assign and
Output.

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

from tools.localrun.expressions import EvaluationError, Expression, Template
from tools.localrun.machine import CompiledState, DefinitionError, Machine


class RedriveError(ValueError):
    """RedriveExecution refused: the execution is not redrivable (the reason is the message)."""


class StatesError(Exception):
    """A run-time error inside a state (catchable by Retry/Catch), e.g. ``States.TaskFailed``."""

    def __init__(self, error: str, cause: str = ""):
        self.error = error
        self.cause = cause
        super().__init__(f"{error}: {cause}")


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
        """Run to the end; a failure is returned as ``status == "FAILED"``, not raised."""
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
