"""Physical names and ARNs: one place that knows how the stage's resources are named and addressed.

Names are explicit and deterministic (``sensorflow-<stage>-<role>``) where a name is part of a contract
(the state machine's ARN is needed inside its own role's policy, which may not reference the state
machine's output without a cycle) or must be globally unique (buckets carry the account and Region).
Everything else takes its ARN from the resource's own output, never from a retyped name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

PROJECT: Final = "sensorflow"

# Prefixes inside the stage's buckets (IAM statements and lifecycle rules use the same constants).
UNLOAD_PREFIX: Final = "unload/"
MAP_RESULTS_PREFIX: Final = "map-results/"
ATHENA_RESULTS_PREFIX: Final = "results/"
ANALYSIS_PREFIX: Final = "analysis/"
ERRORS_PREFIX: Final = "errors/"
KPI_PREFIX: Final = "kpis/"
RAW_PREFIX: Final = "daily-data/"


# Every bucket of a stage, by role (components/storage.py builds exactly these; a test keeps them equal).
BUCKET_ROLES: Final = ("raw", "unload", "athena", "analytics", "access-logs")
# S3 bucket names are 3 to 63 characters (AmazonS3/latest/userguide/bucketnamingrules.html).
MAX_BUCKET_NAME: Final = 63


def bucket_name(stage: str, role: str, account_id: str, region: str) -> str:
    return f"{PROJECT}-{stage}-{role}-{account_id}-{region}"


def bucket_name_problems(stage: str, region: str) -> list[str]:
    """The stage's bucket names that S3 would refuse in ``region`` (account ids are always 12 digits)."""
    too_long = [
        name
        for role in BUCKET_ROLES
        if len(name := bucket_name(stage, role, "0" * 12, region)) > MAX_BUCKET_NAME
    ]
    if not too_long:
        return []
    spare = MAX_BUCKET_NAME - max(len(n) for n in too_long) + len(stage)
    return [
        f"stage={stage!r}: in {region} the bucket name {too_long[0].replace('0' * 12, '<account>')!r} "
        f"would be {len(too_long[0])} characters, S3 allows {MAX_BUCKET_NAME}; "
        f"in this Region the stage may have at most {max(spare, 0)} characters"
    ]


@dataclass(frozen=True)
class Account:
    """Where the stage is deployed: partition-aware so the same code serves aws, aws-cn and aws-us-gov."""

    partition: str
    region: str
    account_id: str

    def arn(self, service: str, resource: str, *, regional: bool = True, with_account: bool = True) -> str:
        """``arn:<partition>:<service>:<region>:<account>:<resource>``; IAM/S3 ARNs omit region/account."""
        region = self.region if regional else ""
        account = self.account_id if with_account else ""
        return f"arn:{self.partition}:{service}:{region}:{account}:{resource}"

    def state_machine_arn(self, name: str) -> str:
        return self.arn("states", f"stateMachine:{name}")

    def execution_arn(self, state_machine_name: str, suffix: str) -> str:
        """Executions of a state machine: ``execution:<name>:<suffix>``; map children use ``<name>/<label>``."""
        return self.arn("states", f"execution:{state_machine_name}{suffix}")


def lookup_account() -> Account:
    """The account, Region and partition of the AWS provider the program runs with."""
    import pulumi_aws as aws

    return Account(
        partition=aws.get_partition().partition,
        region=aws.get_region().region,
        account_id=aws.get_caller_identity().account_id,
    )


@dataclass(frozen=True)
class Names:
    """Physical names of a stage's resources."""

    stage: str
    account: Account

    @property
    def prefix(self) -> str:
        return f"{PROJECT}-{self.stage}"

    def resource(self, role: str) -> str:
        """``sensorflow-<stage>-<role>``: functions, streams, roles, log groups' last part, alarms."""
        return f"{self.prefix}-{role}"

    def bucket(self, role: str) -> str:
        """Globally unique and at most 63 characters: ``sensorflow-<stage>-<role>-<account>-<region>``."""
        name = bucket_name(self.stage, role, self.account.account_id, self.account.region)
        if len(name) > MAX_BUCKET_NAME:
            raise ValueError(f"bucket name {name!r} is {len(name)} characters; S3 allows {MAX_BUCKET_NAME}")
        return name

    def glue(self, role: str) -> str:
        """Glue and Athena identifiers: lower case with underscores (hyphens need quoting in SQL)."""
        return f"{PROJECT}_{self.stage}_{role}".replace("-", "_")

    @property
    def state_machine(self) -> str:
        return self.resource("pipeline")
