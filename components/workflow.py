"""Workflow: the pipeline's state machine, its role and its log group.

The definition is ``spec.definition.build_definition`` (pure data) fed with this stage's run settings
(``RunSettings``) and the names and ARNs of the other components, serialised with ``Output.json_dumps``. The role's policy is
``state_machine_policy``: each statement exists because a state of the definition needs it, with exact
ARNs. The state machine's own ARN appears in its role's policy (the Distributed Map starts child
executions of it), so it is built from the explicit name rather than read from the resource (a cycle).
Docs: step-functions/latest/dg/iam-policies-eg-dist-map.html, connect-athena.html.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import logs, roles
from components.catalog import Catalog
from components.storage import Storage
from spec import definition, iam, naming
from spec.definition import DefinitionParams
from spec.naming import Account, Names
from spec.queries import TableNames
from spec.settings import SettingsSubset

# Firehose flushes within its buffer interval; give it a minute more before counting.
DELIVERY_MARGIN_SECONDS = 60

# The pages the state machine role's grants come from (each statement names its own).
DIST_MAP_IAM = iam.DOCS + "step-functions/latest/dg/iam-policies-eg-dist-map.html"
ATHENA_IAM = iam.DOCS + "step-functions/latest/dg/athena-iam.html"


@dataclass(frozen=True, kw_only=True)
class PolicyInputs:
    """The ARNs and names the state machine's role is scoped to."""

    account: Account
    state_machine_name: str
    function_arn: iam.Arn
    workgroup_arn: iam.Arn
    catalog: TableNames
    raw_bucket_arn: iam.Arn
    unload_bucket_arn: iam.Arn
    athena_bucket_arn: iam.Arn
    analytics_bucket_arn: iam.Arn
    label: str = definition.MAP_LABEL


def state_machine_policy(p: PolicyInputs) -> dict:
    """Least privilege for every state of the definition (plus logging and tracing)."""
    a = p.account
    # The executions a Distributed Map run watches and stops: the form the least-privilege example for
    # running a Distributed Map names (execution:<name>:*, iam-policies-eg-dist-map.html), and this map's
    # labelled children. The Service Authorization Reference (list_awsstepfunctions.html) names a
    # STANDARD child "labelled execution" (execution:<name>/<label>:<id>) and an EXPRESS child "labelled
    # express" (express:<name>/<label>:<id>:<express id>), which DescribeExecution accepts and
    # StopExecution does not (StopExecution API reference: not supported by EXPRESS state machines).
    executions = [
        a.execution_arn(p.state_machine_name, ":*"),
        a.execution_arn(p.state_machine_name, f"/{p.label}:*"),
    ]
    express_children = a.arn("states", f"express:{p.state_machine_name}/{p.label}:*")
    objects = iam.join
    # The tables a query of the definition reads: the day's UNLOAD reads raw readings; reconciliation and
    # the KPI UNLOAD read analysis records. The KPI table is only written (as UNLOAD output objects, no
    # Glue call) and read by operators, so the state machine has no Glue right on it.
    glue_resources = [
        a.arn("glue", "catalog"),
        a.arn("glue", f"database/{p.catalog.database}"),
        *(
            a.arn("glue", f"table/{p.catalog.database}/{table}")
            for table in (p.catalog.raw_table, p.catalog.analysis_table)
        ),
    ]
    write_actions = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"]
    return iam.document(
        [
            iam.statement(
                "InvokeDetector",
                ["lambda:InvokeFunction"],
                [p.function_arn],
                source=iam.DOCS + "step-functions/latest/dg/lambda-iam.html",
            ),
            iam.statement(
                "StartMapChildren",
                ["states:StartExecution"],
                [a.state_machine_arn(p.state_machine_name)],
                source=DIST_MAP_IAM,
            ),
            # The map run watches and stops its children. A redriven map run re-runs EXPRESS children with
            # StartExecution (RedriveExecution API reference; iam-policies-eg-dist-map.html lists
            # RedriveExecution for STANDARD children only), so no RedriveExecution on them.
            iam.statement(
                "ManageMapChildren",
                ["states:DescribeExecution", "states:StopExecution"],
                executions,
                source=DIST_MAP_IAM,
            ),
            iam.statement(
                "DescribeExpressMapChildren",
                ["states:DescribeExecution"],
                [express_children],
                source=iam.DOCS + "service-authorization/latest/reference/list_awsstepfunctions.html",
            ),
            iam.statement(
                "ReadMapRunCounts",
                ["states:DescribeMapRun"],
                [a.arn("states", f"mapRun:{p.state_machine_name}/{p.label}:*")],
                # ReadMapRunCounts calls DescribeMapRun through the AWS SDK integration; the action's
                # resource type is mapRun (Service Authorization Reference for Step Functions).
                source=iam.DOCS + "service-authorization/latest/reference/list_awsstepfunctions.html",
            ),
            iam.statement(
                "RunAthenaQueries",
                [
                    "athena:GetQueryExecution",
                    "athena:GetQueryResults",
                    "athena:GetWorkGroup",
                    "athena:StartQueryExecution",
                    "athena:StopQueryExecution",
                ],
                [p.workgroup_arn],
                source=ATHENA_IAM,
            ),
            iam.statement(
                "ReadDataCatalog",
                ["athena:GetDataCatalog"],
                [a.arn("athena", "datacatalog/AwsDataCatalog")],
                source=ATHENA_IAM,
            ),
            # No glue:GetPartition(s): every table uses partition projection, which "lets Athena avoid
            # calling GetPartitions because the partition projection configuration gives Athena all of
            # the necessary information to build the partitions itself" (athena/latest/ug/
            # partition-projection.html). GetDatabase and GetTable remain: the projection properties,
            # schema and location live on the Glue table (athena/latest/ug/
            # fine-grained-access-to-glue-resources.html: access is granted on catalog, database, table).
            iam.statement(
                "ReadTables",
                ["glue:GetDatabase", "glue:GetTable"],
                glue_resources,
                source=iam.DOCS + "athena/latest/ug/fine-grained-access-to-glue-resources.html",
            ),
            # s3:ListBucketMultipartUploads lets a caller list a bucket's in-progress multipart uploads
            # (S3 User Guide, mpuoverview.html, "Multipart upload API and permissions"): of use only to a
            # writer that uploads in parts and cleans up (UNLOAD output, query results, KPIs). The raw
            # bucket is only read.
            iam.statement(
                "ListRawBucket",
                ["s3:GetBucketLocation", "s3:ListBucket"],
                [p.raw_bucket_arn],
                source=ATHENA_IAM,
            ),
            iam.statement(
                "ListWrittenBuckets",
                ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                [p.unload_bucket_arn, p.athena_bucket_arn, p.analytics_bucket_arn],
                source=ATHENA_IAM,
            ),
            iam.statement(
                "ReadRawReadings",
                ["s3:GetObject"],
                [objects(p.raw_bucket_arn, f"/{naming.RAW_PREFIX}*")],
                source=ATHENA_IAM,
            ),
            iam.statement(
                "WriteUnloadAndMapResults",
                write_actions,
                [
                    objects(p.unload_bucket_arn, f"/{naming.UNLOAD_PREFIX}*"),
                    objects(p.unload_bucket_arn, f"/{naming.MAP_RESULTS_PREFIX}*"),
                ],
                # UNLOAD writes its Parquet files and manifest here, the map's ItemReader reads them
                # (s3:GetObject) and its ResultWriter writes the map-run results (s3:PutObject, multipart).
                source=iam.DOCS + "step-functions/latest/dg/input-output-resultwriter.html",
            ),
            iam.statement(
                "WriteQueryResults",
                write_actions,
                [objects(p.athena_bucket_arn, f"/{naming.ATHENA_RESULTS_PREFIX}*")],
                source=ATHENA_IAM,
            ),
            iam.statement(
                "ReadAnalysisRecords",
                ["s3:GetObject"],
                [objects(p.analytics_bucket_arn, f"/{naming.ANALYSIS_PREFIX}*")],
                source=ATHENA_IAM,
            ),
            iam.statement(
                "ReplaceDailyKpis",
                [*write_actions, "s3:DeleteObject"],
                [objects(p.analytics_bucket_arn, f"/{naming.KPI_PREFIX}*")],
                # UNLOAD refuses a destination that holds objects (athena/latest/ug/unload.html), so a
                # re-run of a day deletes that day's KPI objects first.
                source=iam.DOCS + "athena/latest/ug/unload.html",
            ),
            # Allowlisted: these actions accept only Resource "*" (spec.iam.RESOURCE_STAR_ACTIONS).
            iam.statement(
                "DeliverExecutionLogs",
                [
                    "logs:CreateLogDelivery",
                    "logs:DeleteLogDelivery",
                    "logs:DescribeLogGroups",
                    "logs:DescribeResourcePolicies",
                    "logs:GetLogDelivery",
                    "logs:ListLogDeliveries",
                    "logs:PutResourcePolicy",
                    "logs:UpdateLogDelivery",
                ],
                ["*"],
                source=iam.DOCS + "step-functions/latest/dg/cw-logs.html#cloudwatch-iam-policy",
            ),
            iam.statement(
                "SendTraces",
                [
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                    "xray:PutTelemetryRecords",
                    "xray:PutTraceSegments",
                ],
                ["*"],
                source=iam.DOCS + "step-functions/latest/dg/xray-iam.html",
            ),
        ]
    )


@dataclass(frozen=True, kw_only=True)
class RunSettings(SettingsSubset):
    """The stage settings the definition is built from, each the stack setting of that name
    (``spec.settings.SPECS``)."""

    max_concurrency: int
    max_items_per_batch: int
    max_input_bytes_per_batch: int
    tolerated_failure_percentage: int
    unload_format: str
    unload_compression: str
    lambda_timeout_seconds: int
    firehose_buffer_interval_seconds: int
    reconcile_max_attempts: int


def definition_params(
    run: RunSettings,
    *,
    partition: str,
    catalog: TableNames,
    function_arn: str,
    workgroup: str,
    unload_bucket: str,
    analytics_bucket: str,
) -> DefinitionParams:
    """The definition's parameters for a stage, from its run settings and its resources' names."""
    return DefinitionParams(
        partition=partition,
        function_arn=function_arn,
        workgroup=workgroup,
        catalog=catalog,
        unload_bucket=unload_bucket,
        analytics_bucket=analytics_bucket,
        max_concurrency=run.max_concurrency,
        max_items_per_batch=run.max_items_per_batch,
        max_input_bytes_per_batch=run.max_input_bytes_per_batch,
        tolerated_failure_percentage=run.tolerated_failure_percentage,
        unload_format=run.unload_format,
        unload_compression=run.unload_compression,
        lambda_timeout_seconds=run.lambda_timeout_seconds,
        delivery_wait_seconds=run.firehose_buffer_interval_seconds + DELIVERY_MARGIN_SECONDS,
        reconcile_interval_seconds=max(60, run.firehose_buffer_interval_seconds),
        reconcile_max_attempts=run.reconcile_max_attempts,
    )


@dataclass(frozen=True, kw_only=True)
class WorkflowArgs:
    """Inputs of ``Workflow``."""

    names: Names
    """The state machine's and role's names and the account (ARNs in the role's policy and trust)."""
    tags: Mapping[str, str]
    """Tags of the state machine, its role and its log group."""
    storage: Storage
    """The stage's buckets: the definition writes to ``unload`` and ``analytics``; the role is scoped to
    ``raw``, ``unload``, ``athena`` and ``analytics``."""
    catalog: Catalog
    """The tables (``ids``) the queries name and the role may read; the ``workgroup`` they run in."""
    function_arn: pulumi.Input[str]
    """The detector the map's children invoke."""
    log_retention_days: int
    """``logRetentionDays``: the state machine's log group."""
    run: RunSettings
    """How the definition runs a day (batching, concurrency, formats, waits)."""


def state_machine_source_arns(state_machine_arn: str) -> list[str]:
    """The ``aws:SourceArn`` values the workflow role's trust admits: the state machine and its map runs'
    child executions, which run as ``stateMachine:<name>/<map label>`` (mapRun ARNs are
    ``stateMachine:<name>/<label>:<id>``; state-map-distributed.html). Step Functions documents the
    confused-deputy guard for its roles as ``ArnLike`` on ``aws:SourceArn`` with wildcards for the unknown
    part plus ``aws:SourceAccount`` (step-functions/latest/dg/procedure-create-iam-role.html, "Prevent
    cross-service confused deputy issue"); the wildcard here covers only this state machine's children,
    not every state machine of the account as the page's example does."""
    return [state_machine_arn, state_machine_arn + "/*"]


class Workflow(pulumi.ComponentResource):
    """The state machine.

    Outputs: ``state_machine`` (``arn``, ``name``), ``state_machine_name`` (plain str), ``role``,
    ``log_group``.
    """

    def __init__(self, name: str, args: WorkflowArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sensorflow:workflow:Workflow", name, None, opts)
        names, storage, catalog = args.names, args.storage, args.catalog
        self.state_machine_name = names.state_machine

        # The /aws/vendedlogs/ prefix keeps CloudWatch Logs' resource policy small (docs: cw-logs.html).
        self.log_group = logs.log_group(
            name,
            name=f"/aws/vendedlogs/states/{self.state_machine_name}",
            retention_days=args.log_retention_days,
            tags=args.tags,
            parent=self,
        )
        self.role, policy = roles.service_role(
            name,
            parent=self,
            name=names.resource("pipeline"),
            service="states.amazonaws.com",
            source_account=names.account.account_id,
            source_arn=state_machine_source_arns(names.account.state_machine_arn(self.state_machine_name)),
            description="The pipeline state machine",
            policy=state_machine_policy(
                PolicyInputs(
                    account=names.account,
                    state_machine_name=self.state_machine_name,
                    function_arn=pulumi.Output.from_input(args.function_arn),
                    workgroup_arn=catalog.workgroup.arn,
                    catalog=catalog.ids,
                    raw_bucket_arn=storage.raw.arn,
                    unload_bucket_arn=storage.unload.arn,
                    athena_bucket_arn=storage.athena.arn,
                    analytics_bucket_arn=storage.analytics.arn,
                )
            ),
            tags=args.tags,
        )
        rendered = pulumi.Output.all(
            function_arn=args.function_arn,
            workgroup=catalog.workgroup.name,
            unload_bucket=storage.unload.bucket,
            analytics_bucket=storage.analytics.bucket,
        ).apply(
            lambda v: definition.build_definition(
                definition_params(args.run, partition=names.account.partition, catalog=catalog.ids, **v)
            )
        )
        self.state_machine = aws.sfn.StateMachine(
            f"{name}-state-machine",
            name=self.state_machine_name,
            type="STANDARD",
            role_arn=self.role.arn,
            definition=pulumi.Output.json_dumps(rendered),
            logging_configuration=aws.sfn.StateMachineLoggingConfigurationArgs(
                level="ERROR",
                include_execution_data=False,
                log_destination=pulumi.Output.concat(self.log_group.arn, ":*"),
            ),
            tracing_configuration=aws.sfn.StateMachineTracingConfigurationArgs(enabled=True),
            tags=args.tags,
            # Step Functions validates the role's permissions when the state machine is created.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        self.register_outputs(
            {"stateMachineArn": self.state_machine.arn, "stateMachineName": self.state_machine.name}
        )
