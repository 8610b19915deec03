{#- Fails when the model and compare_model have different row counts (optionally each filtered).
    Written in the project because dbt_utils cannot be installed here. -#}
{% test equal_rowcount(model, compare_model, where=none, compare_where=none) %}
with a as (
    select count(*) as n from {{ model }} {% if where %}where {{ where }}{% endif %}
),

b as (
    select count(*) as n from {{ compare_model }} {% if compare_where %}where {{ compare_where }}{% endif %}
)

select a.n as model_rows, b.n as compare_rows
from a cross join b
where a.n <> b.n
{% endtest %}
