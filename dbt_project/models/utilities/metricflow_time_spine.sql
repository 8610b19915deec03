{{ config(materialized='table', tags=['utility']) }}

-- One row per day. MetricFlow joins cumulative metrics, offsets and empty periods to it.
with days as (
    {{ dbt.date_spine(
        'day',
        "cast('" ~ var('time_spine_start') ~ "' as date)",
        dbt.dateadd('day', 1, "cast('" ~ var('as_of_date') ~ "' as date)")
    ) }}
)

select cast(date_day as date) as date_day
from days
