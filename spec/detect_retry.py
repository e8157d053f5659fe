"""The Detect task's retry policy and the time it allows: every attempt and retry wait must fit an EXPRESS
child, which bounds the detector's Lambda timeout (``max_lambda_timeout_seconds``, enforced by the
settings).
"""

from __future__ import annotations

from typing import Final

from functions.detector import schema

DELIVERY_ERROR: Final = schema.DELIVERY_ERROR  # raised by the detector when Firehose keeps refusing records

# Transient Lambda service errors worth retrying (aws-facts: "Lambda task errors worth Retry"), and the
# 500 ClientExecutionTimeoutException the Step Functions guide lists first among them
# (step-functions/latest/dg/bp-lambda-serviceexception.html).
LAMBDA_TRANSIENT_ERRORS: Final = (
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
# An EXPRESS child runs at most five minutes (docs: step-functions/latest/dg/choosing-workflow-type.html,
# "Maximum duration: 5 minutes"); every attempt and every retry wait of the detector task counts. Each
# attempt is assumed to run to the task's timeout (the worst case CreateStateMachine does not check), so
# the retry policy is small and fixed, and the Lambda timeout has a maximum derived from it
# (``max_lambda_timeout_seconds``), which the settings enforce.
EXPRESS_MAX_SECONDS: Final = 300
DETECT_TIMEOUT_MARGIN_SECONDS: Final = 5  # Lambda ends the function first and reports its own timeout
DETECT_RETRY: Final = (
    # (errors, IntervalSeconds, MaxAttempts, BackoffRate)
    (LAMBDA_TRANSIENT_ERRORS, 1, 3, 2),
    ((DELIVERY_ERROR,), 5, 1, 2),
)


def detect_retry_waits_seconds() -> float:
    """The longest total of the detector task's retry waits (no jitter: FULL jitter only shortens them)."""
    return float(
        sum(
            interval * backoff**attempt
            for _errors, interval, attempts, backoff in DETECT_RETRY
            for attempt in range(attempts)
        )
    )


def detect_worst_case_seconds(lambda_timeout_seconds: int) -> float:
    """A child's worst case: every attempt (the first and every retry) runs to the task's timeout."""
    attempts = 1 + sum(attempts for _errors, _interval, attempts, _backoff in DETECT_RETRY)
    return attempts * (lambda_timeout_seconds + DETECT_TIMEOUT_MARGIN_SECONDS) + detect_retry_waits_seconds()


def max_lambda_timeout_seconds() -> int:
    """The longest detector timeout whose worst case still fits an EXPRESS child."""
    attempts = 1 + sum(attempts for _errors, _interval, attempts, _backoff in DETECT_RETRY)
    budget = EXPRESS_MAX_SECONDS - detect_retry_waits_seconds()
    return int(budget // attempts) - DETECT_TIMEOUT_MARGIN_SECONDS
