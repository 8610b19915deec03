{#- Fails on every row where the expression is not true (a null result fails too). -#}
{% test expression_is_true(model, expression, column_name=none, where=none) %}
select *
from {{ model }}
where
    not coalesce(({{ expression }}), false)
    {% if where %}and ({{ where }}){% endif %}
{% endtest %}
