"""The GraphQL types of the dbt Semantic Layer's API, named and shaped as its clients expect:
the type names matter (the Python SDK sends fragments `on Metric`, `on Dimension`,
`on WhereFilter`...), so do field names, enum values and which fields may be null."""

from __future__ import annotations

from enum import Enum
from typing import NewType

import strawberry
from strawberry.scalars import JSON

from tally.errors import InvalidRequest, shorten


def _big_int(value: object) -> int:
    """dbt's environment ids travel as numbers or as strings of digits."""
    if isinstance(value, bool):
        raise InvalidRequest(f"environmentId must be a whole number, got {shorten(value)}.")
    try:
        return int(str(value).strip())
    except ValueError:
        raise InvalidRequest(
            f"environmentId must be a whole number, got {shorten(value)}."
        ) from None


BigInt = NewType("BigInt", int)
SCALARS = {
    BigInt: strawberry.scalar(
        name="BigInt",
        serialize=int,
        parse_value=_big_int,
        description="A whole number of any size (dbt's environment ids).",
    )
}


@strawberry.enum
class TimeGranularity(Enum):
    NANOSECOND = "NANOSECOND"
    MICROSECOND = "MICROSECOND"
    MILLISECOND = "MILLISECOND"
    SECOND = "SECOND"
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    QUARTER = "QUARTER"
    YEAR = "YEAR"


@strawberry.enum
class DatePart(Enum):
    YEAR = "YEAR"
    QUARTER = "QUARTER"
    MONTH = "MONTH"
    DAY = "DAY"
    DOW = "DOW"
    DOY = "DOY"


@strawberry.enum
class MetricType(Enum):
    SIMPLE = "SIMPLE"
    RATIO = "RATIO"
    CUMULATIVE = "CUMULATIVE"
    DERIVED = "DERIVED"
    CONVERSION = "CONVERSION"


@strawberry.enum
class DimensionType(Enum):
    CATEGORICAL = "CATEGORICAL"
    TIME = "TIME"


@strawberry.enum
class EntityType(Enum):
    FOREIGN = "FOREIGN"
    NATURAL = "NATURAL"
    PRIMARY = "PRIMARY"
    UNIQUE = "UNIQUE"


@strawberry.enum
class AggregationType(Enum):
    SUM = "SUM"
    MIN = "MIN"
    MAX = "MAX"
    COUNT_DISTINCT = "COUNT_DISTINCT"
    SUM_BOOLEAN = "SUM_BOOLEAN"
    AVERAGE = "AVERAGE"
    PERCENTILE = "PERCENTILE"
    MEDIAN = "MEDIAN"
    COUNT = "COUNT"


@strawberry.enum
class QueryStatus(Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPILED = "COMPILED"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"


@strawberry.enum
class PandasJsonOrient(Enum):
    SPLIT = "SPLIT"
    RECORDS = "RECORDS"
    INDEX = "INDEX"
    COLUMNS = "COLUMNS"
    VALUES = "VALUES"
    TABLE = "TABLE"


@strawberry.enum
class SqlEngine(Enum):
    BIGQUERY = "BIGQUERY"
    DUCKDB = "DUCKDB"
    REDSHIFT = "REDSHIFT"
    POSTGRES = "POSTGRES"
    SNOWFLAKE = "SNOWFLAKE"
    DATABRICKS = "DATABRICKS"
    TRINO = "TRINO"
    UNKNOWN = "UNKNOWN"


@strawberry.enum
class ExportDestinationType(Enum):
    TABLE = "TABLE"
    VIEW = "VIEW"


# Inputs -------------------------------------------------------------------------------


@strawberry.input
class MetricInput:
    name: str
    alias: str | None = None


@strawberry.input
class GroupByInput:
    name: str
    grain: TimeGranularity | None = None
    time_granularity: str | None = None
    date_part: DatePart | None = None


@strawberry.input
class WhereInput:
    sql: str


@strawberry.input(description="Give one of metric or groupBy.")
class OrderByInput:
    metric: MetricInput | None = None
    group_by: GroupByInput | None = None
    descending: bool = False


# Catalog ------------------------------------------------------------------------------


@strawberry.type
class Config:
    meta: JSON | None = None


@strawberry.type
class WhereFilter:
    where_sql_template: str


@strawberry.type
class Dimension:
    name: str = strawberry.field(description="The group-by name, e.g. customer__country.")
    qualified_name: str
    description: str | None
    type: DimensionType
    label: str | None
    is_partition: bool
    expr: str | None
    queryable_granularities: list[TimeGranularity]
    queryable_time_granularities: list[str]
    config: Config | None = None


@strawberry.type
class Entity:
    name: str
    description: str | None
    type: EntityType
    role: str
    expr: str
    label: str | None = None


@strawberry.type
class EntityDimension:
    """A group-by: a dimension (CATEGORICAL, TIME) or an entity (ENTITY)."""

    name: str
    qualified_name: str
    description: str | None
    type: str
    label: str | None
    queryable_granularities: list[TimeGranularity]
    queryable_time_granularities: list[str]


@strawberry.type
class Measure:
    name: str
    agg_time_dimension: str | None
    agg: AggregationType
    expr: str


@strawberry.type
class MetricReference:
    name: str


@strawberry.type
class MetricTypeParams:
    measure: MetricReference | None
    input_measures: list[MetricReference]
    metrics: list[MetricReference] | None
    expr: str | None = None


@strawberry.type
class EnvironmentInfo:
    sql_dialect: str
    has_metrics_defined: bool
    dialect: SqlEngine
    dialect_supported_by_slg: bool


@strawberry.type
class SavedQueryMetricParam:
    name: str


@strawberry.type
class SavedQueryGroupByParam:
    name: str
    grain: TimeGranularity | None
    time_granularity: str | None
    date_part: DatePart | None


@strawberry.type
class SavedQueryQueryParams:
    metrics: list[SavedQueryMetricParam]
    group_by: list[SavedQueryGroupByParam]
    where: WhereFilter | None
    order_by: list[str]
    limit: int | None


@strawberry.type
class ExportConfig:
    alias: str | None
    schema: str | None
    export_as: ExportDestinationType


@strawberry.type
class Export:
    name: str
    config: ExportConfig


@strawberry.type
class SavedQuery:
    name: str
    description: str | None
    label: str | None
    query_params: SavedQueryQueryParams
    exports: list[Export]


# Queries ------------------------------------------------------------------------------


@strawberry.type
class CreateQueryResult:
    query_id: str


@strawberry.type
class CreateDimensionValuesQueryResult:
    query_id: str


@strawberry.type
class CancelQueryResult:
    query_id: str


@strawberry.type
class CompileSqlResult:
    sql: str
