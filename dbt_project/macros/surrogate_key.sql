{#- A stable surrogate key from one or more columns: md5 of the '-'-joined values, nulls spelled
    out so ('a', null) and (null, 'a') differ. Written here because dbt_utils cannot be installed
    (dbt deps reaches no package hub). -#}
{% macro surrogate_key(field_list) -%}
    {%- set fields = [] -%}
    {%- for field in field_list -%}
        {%- do fields.append(
            "coalesce(cast(" ~ field ~ " as " ~ dbt.type_string() ~ "), '_tally_null_')"
        ) -%}
        {%- if not loop.last %}{%- do fields.append("'-'") -%}{%- endif -%}
    {%- endfor -%}
    {{ dbt.hash(dbt.concat(fields)) }}
{%- endmacro %}
