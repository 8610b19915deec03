"""`tally validate`'s dbt parse runs through dbt's programmatic API in tally's own process: it
prints nothing, leaves dbt's process-wide state as it found it, and reports exactly what the
same parse reports from a child process (the way of a second parse at the same time)."""

from __future__ import annotations

import threading

from tally.validate import parse
from tests.support.project_copies import FIXTURES, make_copy


def _dbt_state() -> tuple:
    from dbt import flags
    from dbt.contracts.graph.semantic_manifest import SemanticManifest
    from dbt_common.events.event_manager_client import get_event_manager

    manager = get_event_manager()
    return (list(manager.loggers), list(manager.callbacks), flags.get_flags(),
            SemanticManifest.validate)  # fmt: skip


def _report(outcome) -> tuple:
    return (outcome.success, outcome.semantic_ok, outcome.exception,
            sorted((e["level"], e["name"], e["msg"]) for e in outcome.events))  # fmt: skip


def _in_process_calls(monkeypatch) -> list[list[str]]:
    """The dbt argument lists that ran in this process (the real call, counted)."""
    calls: list[list[str]] = []
    real = parse.dbt_runner.parse_report

    def counted(args: list[str]) -> dict:
        calls.append(args)
        return real(args)

    monkeypatch.setattr(parse.dbt_runner, "parse_report", counted)
    return calls


def test_an_in_process_parse_is_silent_and_leaves_dbt_as_it_found_it(
    tmp_path, capfd, monkeypatch
):
    copy = make_copy(tmp_path / "clean")
    calls = _in_process_calls(monkeypatch)
    capfd.readouterr()
    before = _dbt_state()
    outcome = parse.run_parse(copy.project_dir, copy.project_dir, copy.target_dir)
    assert len(calls) == 1
    assert outcome.success and outcome.semantic_ok, outcome.exception
    assert (copy.target_dir / "semantic_manifest.json").exists()
    assert _dbt_state() == before
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert (copy.target_dir / "logs" / "dbt.log").stat().st_size > 0  # dbt's log kept, in file


def test_in_process_and_child_process_parses_report_the_same(tmp_path, monkeypatch):
    copy = make_copy(tmp_path / "bad_entity")
    FIXTURES["bad_entity"](copy)
    calls = _in_process_calls(monkeypatch)
    # The in-process slot taken, as by a parse running at the same time: a child process.
    with parse._in_process:
        child = parse.run_parse(copy.project_dir, copy.project_dir, tmp_path / "child")
    assert calls == []
    inside = parse.run_parse(copy.project_dir, copy.project_dir, tmp_path / "inside")
    assert len(calls) == 1
    # dbt's semantic validation failed, and the manifest was written for MetricFlow's own
    # validator to name the element: the hook works the same in both.
    assert inside.semantic_ok is False and inside.success
    assert (tmp_path / "inside" / "semantic_manifest.json").exists()
    assert _report(inside) == _report(child)
    assert not parse._in_process.locked()


def test_two_parses_at_the_same_time_both_finish_with_the_same_report(tmp_path, monkeypatch):
    copy = make_copy(tmp_path / "clean")
    FIXTURES["unknown_measure"](copy)
    calls = _in_process_calls(monkeypatch)
    outcomes: dict[int, object] = {}

    def run(i: int) -> None:
        outcomes[i] = parse.run_parse(copy.project_dir, copy.project_dir, tmp_path / f"t{i}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert set(outcomes) == {0, 1} and 1 <= len(calls) <= 2
    assert _report(outcomes[0]) == _report(outcomes[1])
    assert outcomes[0].success is False or outcomes[0].semantic_ok is False
