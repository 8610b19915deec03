{#- Custom schemas are prefixed with the target schema (analytics_staging, analytics_marts), so
    two developers sharing a warehouse with different target schemas never collide. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set default_schema = target.schema -%}
    {%- if custom_schema_name is none -%}
        {{ default_schema }}
    {%- else -%}
        {{ default_schema }}_{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
