{#- Fails when the newest value of the column is older than max_age_hours before as_of_date's
    end of day (the brief compared every row with current_timestamp, which fails any table with
    history and drifts with the wall clock). -#}
{% test freshness(model, column_name, max_age_hours=24) %}
with latest as (
    select max(cast({{ column_name }} as timestamp)) as latest_at
    from {{ model }}
)

select latest_at
from latest
where latest_at is null
   or latest_at < cast({{ as_of_date() }} as timestamp)
        + interval '1 day' - interval '{{ max_age_hours }} hours'
{% endtest %}
