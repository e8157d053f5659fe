"""Catalog: the Glue database and tables, the stage's Athena workgroup and the operators' named queries.

Tables are partitioned by day through partition projection (no crawler, no MSCK REPAIR, nothing that
hard-codes a year): the raw table on the arrival-day folder, the analysis table on the Firehose prefix
``analysis/dt=<day>/``, the KPI table on ``kpis/dt=<day>/``. Docs: athena/latest/ug/partition-projection.html.

The analysis table's columns come from ``functions/detector/schema.py``, the module the detector builds
its records from, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws

from functions.detector import schema
from spec import naming, queries
from spec.naming import Names

# Projection ranges relative to now: a day outside the range simply has no partition.
PROJECTION_RANGE: Final = "NOW-10YEARS,NOW+1DAYS"
CSV_SERDE: Final = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
# The Hive JSON SerDe, not the OpenX one: Athena documents that with the OpenX JSON SerDe "the number of
# results and their values can be non-deterministic" (more rows, fewer rows, or unexpected nulls) and
# says to use the Hive JSON SerDe instead (docs: athena/latest/ug/openx-json-serde.html). Reconciliation
# counts this table's rows, so a reader that may drop one would fail a good run or pass a bad one.
JSON_SERDE: Final = "org.apache.hive.hcatalog.data.JsonSerDe"
PARQUET_SERDE: Final = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
TEXT_INPUT: Final = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT: Final = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
PARQUET_INPUT: Final = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT: Final = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"


def catalog_names(names: Names) -> queries.TableNames:
    """The stage's Glue identifiers (lower case, underscores: no quoting surprises in SQL)."""
    return queries.TableNames(
        database=names.glue("db"),
        raw_table="raw_readings",
        analysis_table="analysis_records",
        kpi_table="device_kpis",
    )


def projection(location_template: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """Table parameters for a `dt` date partition projected onto ``location_template``."""
    return {
        "projection.enabled": "true",
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy-MM-dd",
        "projection.dt.range": PROJECTION_RANGE,
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS",
        "storage.location.template": location_template,
    }


@dataclass(frozen=True, kw_only=True)
class CatalogArgs:
    """Inputs of ``Catalog``."""

    names: Names
    """Glue identifiers (``catalog_names``), the workgroup's name and the stage named in descriptions."""
    tags: Mapping[str, str]
    """Tags of the database and the workgroup."""
    protect: bool
    """``protectDataStores``: protect the database and tables and keep them when the stack is destroyed."""
    bytes_scanned_cutoff_mb: int
    """``athenaBytesScannedCutoffMb``: the workgroup's enforced per-query scan cutoff."""
    raw_bucket: pulumi.Input[str]
    """The raw bucket's name (the raw table's location)."""
    analytics_bucket: pulumi.Input[str]
    """The analytics bucket's name (the analysis and KPI tables' locations)."""
    athena_bucket: pulumi.Input[str]
    """The Athena bucket's name (the workgroup's query results)."""


class Catalog(pulumi.ComponentResource):
    """Glue database and tables, Athena workgroup, named queries.

    Outputs: ``ids`` (the ``queries.TableNames`` identifiers), ``database``, ``raw_table``,
    ``analysis_table``, ``kpi_table``, ``workgroup``, ``named_queries``.
    """

    def __init__(self, name: str, args: CatalogArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sensorflow:catalog:Catalog", name, None, opts)
        stage = args.names.stage
        protect = args.protect
        child = pulumi.ResourceOptions(parent=self)
        kept = pulumi.ResourceOptions(parent=self, protect=protect, retain_on_delete=protect)
        self.ids = catalog_names(args.names)

        self.database = aws.glue.CatalogDatabase(
            f"{name}-database",
            name=self.ids.database,
            description=f"sensorflow {stage}: raw readings, analysis records and daily KPIs",
            tags=args.tags,
            opts=kept,
        )

        def s3(bucket: pulumi.Input[str], prefix: str) -> pulumi.Output[str]:
            return pulumi.Output.concat("s3://", bucket, "/", prefix)

        def table(
            role: str,
            *,
            table_name: str,
            description: str,
            bucket: pulumi.Input[str],
            prefix: str,
            partition_folder: str,
            classification: str,
            formats: tuple[str, str],
            serde: aws.glue.CatalogTableStorageDescriptorSerDeInfoArgs,
            columns: list[aws.glue.CatalogTableStorageDescriptorColumnArgs],
            parameters: dict[str, str] | None = None,
        ) -> aws.glue.CatalogTable:
            """An external table over ``s3://bucket/prefix``, partitioned by day through projection."""
            location = s3(bucket, prefix)
            return aws.glue.CatalogTable(
                f"{name}-{role}",
                name=table_name,
                database_name=self.database.name,
                description=description,
                table_type="EXTERNAL_TABLE",
                parameters={
                    "classification": classification,
                    **(parameters or {}),
                    **projection(pulumi.Output.concat(location, partition_folder)),
                },
                partition_keys=[aws.glue.CatalogTablePartitionKeyArgs(name="dt", type="string")],
                storage_descriptor=aws.glue.CatalogTableStorageDescriptorArgs(
                    location=location,
                    input_format=formats[0],
                    output_format=formats[1],
                    ser_de_info=serde,
                    columns=columns,
                ),
                opts=kept,
            )

        def column(
            name: str, type_: str, comment: str | None = None
        ) -> aws.glue.CatalogTableStorageDescriptorColumnArgs:
            return aws.glue.CatalogTableStorageDescriptorColumnArgs(name=name, type=type_, comment=comment)

        self.raw_table = table(
            "raw-readings",
            table_name=self.ids.raw_table,
            description="Raw readings as delivered: CSV with a header, one folder per arrival day.",
            bucket=args.raw_bucket,
            prefix=naming.RAW_PREFIX,
            partition_folder="${dt}/",
            classification="csv",
            parameters={"skip.header.line.count": "1"},
            formats=(TEXT_INPUT, TEXT_OUTPUT),
            serde=aws.glue.CatalogTableStorageDescriptorSerDeInfoArgs(
                serialization_library=CSV_SERDE, parameters={"field.delim": ",", "serialization.format": ","}
            ),
            columns=[column(n, t) for n, t in queries.RAW_COLUMNS],
        )
        self.analysis_table = table(
            "analysis-records",
            table_name=self.ids.analysis_table,
            description="One analysis record per reading, as Firehose delivered them (JSON lines).",
            bucket=args.analytics_bucket,
            prefix=naming.ANALYSIS_PREFIX,
            partition_folder="dt=${dt}/",
            classification="json",
            formats=(TEXT_INPUT, TEXT_OUTPUT),
            serde=aws.glue.CatalogTableStorageDescriptorSerDeInfoArgs(serialization_library=JSON_SERDE),
            columns=[column(*c) for c in schema.ANALYSIS_COLUMNS],
        )
        self.kpi_table = table(
            "device-kpis",
            table_name=self.ids.kpi_table,
            description="Daily KPIs per device plus one fleet-wide row (deviceid '*'); a rerun replaces its day.",
            bucket=args.analytics_bucket,
            prefix=naming.KPI_PREFIX,
            partition_folder="dt=${dt}/",
            classification="parquet",
            formats=(PARQUET_INPUT, PARQUET_OUTPUT),
            serde=aws.glue.CatalogTableStorageDescriptorSerDeInfoArgs(serialization_library=PARQUET_SERDE),
            columns=[column(*c) for c in queries.KPI_COLUMNS],
        )

        self.workgroup = aws.athena.Workgroup(
            f"{name}-workgroup",
            name=args.names.resource("analytics"),
            description=f"sensorflow {stage}: pipeline and operator queries",
            state="ENABLED",
            force_destroy=not protect,
            configuration=aws.athena.WorkgroupConfigurationArgs(
                # Enforced: a client cannot redirect results elsewhere or lift the scan cutoff.
                enforce_workgroup_configuration=True,
                publish_cloudwatch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=args.bytes_scanned_cutoff_mb * 1024 * 1024,
                engine_version=aws.athena.WorkgroupConfigurationEngineVersionArgs(
                    selected_engine_version="Athena engine version 3"
                ),
                result_configuration=aws.athena.WorkgroupConfigurationResultConfigurationArgs(
                    output_location=s3(args.athena_bucket, naming.ATHENA_RESULTS_PREFIX),
                    encryption_configuration=aws.athena.WorkgroupConfigurationResultConfigurationEncryptionConfigurationArgs(
                        encryption_option="SSE_S3"
                    ),
                ),
            ),
            tags=args.tags,
            opts=child,
        )

        self.named_queries = {
            key: aws.athena.NamedQuery(
                f"{name}-{key}",
                name=f"{stage}: {key}",
                description=description,
                database=self.database.name,
                workgroup=self.workgroup.name,
                query=sql,
                opts=child,
            )
            for key, (description, sql) in queries.named_queries(self.ids).items()
        }
        self.register_outputs(
            {
                "database": self.database.name,
                "rawTable": self.raw_table.name,
                "analysisTable": self.analysis_table.name,
                "kpiTable": self.kpi_table.name,
                "workgroup": self.workgroup.name,
            }
        )
