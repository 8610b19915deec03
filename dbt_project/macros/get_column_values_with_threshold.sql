{#- The values of a column that make up at least `threshold` of the rows, most frequent first.
    Used to build pivots whose columns follow the data. At parse time (no warehouse yet) it
    returns `default`, so `dbt parse` works on a fresh clone. -#}
{% macro get_column_values_with_threshold(table, column, threshold=0.01, default=[]) %}
    {%- if not execute -%}
        {{ return(default) }}
    {%- endif -%}
    {%- call statement('get_column_values', fetch_result=True) -%}
        with value_counts as (
            select
                {{ column }} as value,
                count(*) as n,
                count(*) * 1.0 / sum(count(*)) over () as share
            from {{ table }}
            group by {{ column }}
        )
        select value
        from value_counts
        where share >= {{ threshold }} and value is not null
        order by n desc, value
    {%- endcall -%}
    {%- set results = load_result('get_column_values') -%}
    {%- set values = results['data'] | map(attribute=0) | list -%}
    {{ return(values) }}
{% endmacro %}
