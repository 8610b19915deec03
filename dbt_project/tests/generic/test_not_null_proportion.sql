{#- Fails when fewer than `at_least` of the rows have a value in the column. -#}
{% test not_null_proportion(model, column_name, at_least=0.95) %}
with validation as (
    select
        sum(case when {{ column_name }} is not null then 1 else 0 end) as not_null_count,
        count(*) as total_count
    from {{ model }}
)

select
    not_null_count,
    total_count,
    not_null_count * 1.0 / nullif(total_count, 0) as not_null_proportion
from validation
where total_count > 0
  and not_null_count * 1.0 / total_count < {{ at_least }}
{% endtest %}
