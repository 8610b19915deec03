{#- A double-precision float on every adapter. dbt.type_float() is single precision on some
    (DuckDB's FLOAT), and dbt.type_numeric() is a decimal with 6 digits of scale on Spark, whose
    decimal division then rounds: ratios computed in the marts use this instead. -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double precision
{%- endmacro %}

{% macro spark__type_double() -%}
    double
{%- endmacro %}
