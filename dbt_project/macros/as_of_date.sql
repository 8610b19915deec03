{#- The reference date of every relative rule (customer status, freshness). Never current_date. -#}
{% macro as_of_date() -%}
    cast('{{ var("as_of_date") }}' as date)
{%- endmacro %}
