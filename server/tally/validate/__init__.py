"""`tally validate` and `tally diff`: the semantic layer's checks for CI.

validate: dbt parse -> MetricFlow's semantic validations -> tally's own rules -> warehouse checks,
each problem a Finding (rule id, severity, message, fix hint, file:line, element), rendered as
text, GitHub annotations, JSON or JUnit. diff: metrics and dimensions added, removed and changed
between two semantic manifests, with breaking changes flagged and, optionally, the numbers that
move.
"""
