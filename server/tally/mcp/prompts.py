"""The one prompt: how an agent answers a business question with tally's governed metrics."""

from __future__ import annotations

ANSWER_PROMPT = "answer_business_question"

_STEPS = """Answer this business question with tally's governed metrics, never with guessed SQL:

{question}

1. Pick metrics: call list_metrics (with a `search` word from the question). Choose the metric
   whose definition matches the question; if unsure, call explain_metric and compare the
   definitions. Never compute a metric yourself from other metrics when one exists for it.
2. Check dimensions: call get_dimensions with the chosen metrics. Group and filter only by the
   names it returns; for a filter on a value, call get_dimension_values to spell the value
   exactly as the data does. Time goes through metric_time with a grain (day, week, month,
   quarter, year).
3. Query: call query_metrics with metrics, group_by ([{{"name", "type", "grain"}}]), where
   (e.g. "{{{{ Dimension('entity__dimension') }}}} = 'value'"), order_by and limit.
4. Read the answer as given: each metric column's `unit` (currency, percentage, count, ratio);
   if `truncated` is true, only `row_count` of `total_rows` rows are shown: say so, or narrow
   the question.
5. State your filters: repeat the `filters` and `time_range` the answer echoes back (including
   any applied by an access policy) next to the numbers, and name the metrics you used.
If a tool returns an error, read its `suggestions` and `valid_*` names and retry once with a
valid name; if none fits, say which metric or dimension is missing."""


def answer_prompt(question: str) -> str:
    return _STEPS.format(question=question.strip() or "(the user's question)")
