{#- Audit columns for marts. The build time comes from dbt's run_started_at (one value per
    build) rather than current_timestamp, so every row of one build agrees. -#}
{% macro audit_columns() %}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as dbt_loaded_at,
    '{{ invocation_id }}' as dbt_invocation_id,
    '{{ this.identifier }}' as source_table
{% endmacro %}
