{#- One aggregated column per value: pivot('order_status', ['completed', 'cancelled']) ->
    sum(case when order_status = 'completed' then 1 else 0 end) as completed, ...
    Values are quoted with dbt's escape so a value with a quote cannot break the SQL; column names
    are made identifier-safe. -#}
{% macro pivot(column, values, agg='sum', then_value=1, else_value=0, prefix='', suffix='') %}
    {%- for value in values %}
        {{ agg }}(
            case when {{ column }} = '{{ dbt.escape_single_quotes(value | string) }}'
            then {{ then_value }}
            else {{ else_value }} end
        ) as {{ adapter.quote(prefix ~ (value | string | lower | replace(' ', '_')) ~ suffix) }}
        {%- if not loop.last %},{% endif -%}
    {%- endfor %}
{% endmacro %}
