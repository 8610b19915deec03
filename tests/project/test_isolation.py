"""Loading a project in a long-running server: dbt's process-wide state (its flags, its
invocation context, its adapter registry) is left as it was, nothing is printed, concurrent
loads agree, and a load is done again only when a file or the environment changed."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tally.project import loading, read_profile_target, read_project
from tests.support.corpus import in_folder

SHAPES = ("hooks_and_flags", "macro_vars", "profile_env", "target_paths", "local_package")


def _state() -> tuple:
    import dbt.flags
    from dbt.adapters.factory import FACTORY
    from dbt_common.context import try_get_invocation_context

    flags = dbt.flags.GLOBAL_FLAGS
    return (flags, dict(vars(flags)), try_get_invocation_context(), dict(FACTORY.plugins),
            dict(FACTORY.adapters))  # fmt: skip


def test_loading_leaves_dbts_state_alone_and_prints_nothing(corpus, tmp_path, monkeypatch,
                                                           capfd):
    projects = [corpus(name).project_dir for name in SHAPES]
    # A profile without `target:` (dbt logs an event for it) and a deprecated key.
    (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: p\ntarget-path: out\n")
    (tmp_path / "profiles.yml").write_text(
        "p:\n  outputs:\n    default: {type: duckdb, path: p.duckdb}\n")
    read_project(projects[0])  # dbt imported (its flags exist from then on)
    loading._cache.clear()
    capfd.readouterr()
    before = _state()
    with in_folder(tmp_path, monkeypatch):
        for project_dir in [*projects, tmp_path]:
            read_project(project_dir)
            read_profile_target(project_dir)
    after = _state()
    assert after[0] is before[0] and after[1] == before[1]  # dbt's global flags
    assert after[2] is before[2]  # the caller's invocation context
    assert after[3:] == before[3:]  # no adapter registered in dbt's factory
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_concurrent_loads_agree(corpus, monkeypatch):
    projects = [corpus(name).project_dir for name in SHAPES]
    loading._cache.clear()
    alone = {p: (read_project(p), read_profile_target(p)) for p in projects}
    loading._cache.clear()
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda p: (p, read_project(p), read_profile_target(p)),
                                 projects * 4))  # fmt: skip
    for p, project, output in together:
        assert project == alone[p][0] and project.raw == alone[p][0].raw
        assert output == alone[p][1]


def test_a_load_is_reused_until_a_file_or_the_environment_changes(tmp_path, monkeypatch):
    from tally.project import dbt_calls

    calls: list[Path] = []
    real = dbt_calls.read_partial

    def counted(project_dir: Path):
        calls.append(project_dir)
        return real(project_dir)

    monkeypatch.setattr(dbt_calls, "read_partial", counted)
    (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: p\ntarget-path: aa\n")
    (tmp_path / "profiles.yml").write_text(
        "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: \"{{ env_var('P_DB', 'p.duckdb') }}\"\n")
    with in_folder(tmp_path, monkeypatch):
        assert read_project(tmp_path).target_path == tmp_path / "aa"
        started = time.perf_counter()
        for _ in range(100):
            read_profile_target(tmp_path)
        assert len(calls) == 1 and time.perf_counter() - started < 1.0
        # The same size, written at once: read again all the same.
        (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: p\ntarget-path: bb\n")
        assert read_project(tmp_path).target_path == tmp_path / "bb" and len(calls) == 2
        monkeypatch.setenv("P_DB", "q.duckdb")
        assert read_profile_target(tmp_path)["path"] == "q.duckdb" and len(calls) == 3


@pytest.mark.parametrize("variable", ["TALLY_TARGET", "DBT_TARGET"])
def test_the_target_variables_choose_the_loaded_target(corpus, monkeypatch, variable):
    project = corpus("profile_env")
    with in_folder(project.project_dir, monkeypatch):
        assert read_profile_target(project.project_dir)["target_name"] == "dev"
        monkeypatch.setenv(variable, "copy")
        assert read_profile_target(project.project_dir)["target_name"] == "copy"
