"""Where dbt's outputs are and which warehouse a target reaches: a custom `target-path`,
DBT_TARGET_PATH, a manifest written with `--target-path` elsewhere, `--target`; and the
project inside a git repository, as `tally diff` finds it."""

from __future__ import annotations

import shutil

import duckdb

from tally.project import read_project
from tally.settings import Settings
from tests.support.corpus import in_folder, rest

BODY = {"metrics": ["orders", "gross_amount"], "group_by": ["metric_time__month"],
        "order_by": ["metric_time__month"]}  # fmt: skip
MONTHLY = """select strftime(date_trunc('month', ordered_at), '%Y-%m-%d'), count(*), sum(amount)
             from raw_orders {where} group by 1 order by 1"""


def _rows(answer) -> list[tuple]:
    return [(r["metric_time__month"][:10], r["orders"], round(r["gross_amount"], 2))
            for r in answer["data"]]  # fmt: skip


def _hand(project, where: str = "") -> list[tuple]:
    return [(m, n, round(float(a), 2)) for m, n, a in project.hand(MONTHLY.format(where=where))]


def test_the_target_path_is_dbts(corpus, monkeypatch, tmp_path):
    project = corpus("target_paths")
    with in_folder(project.project_dir, monkeypatch):
        assert read_project(project.project_dir).target_path == project.project_dir / "out"
        monkeypatch.setenv("DBT_TARGET_PATH", "elsewhere")  # relative: to the project
        assert read_project(project.project_dir).target_path == project.project_dir / "elsewhere"
        monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "abs"))
        assert read_project(project.project_dir).target_path == tmp_path / "abs"


def test_a_manifest_written_with_target_path_elsewhere(corpus, tmp_path, monkeypatch):
    """`dbt parse --target-path X` writes where tally does not look, as dbt itself would not:
    the missing manifest is one line naming where tally looked; DBT_TARGET_PATH (which dbt reads
    too) or TALLY_MANIFEST_PATH finds it."""
    project = corpus("target_paths").copy_to(tmp_path / "copy")
    elsewhere = tmp_path / "elsewhere"
    parsed = project.dbt("parse", "--target-path", elsewhere)
    assert parsed.returncode == 0, parsed.stdout[-3000:]
    shutil.rmtree(project.project_dir / "out")
    missing = project.tally("list", "metrics")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    [line] = missing.stderr.strip().splitlines()
    assert str(project.project_dir / "out" / "semantic_manifest.json") in line
    assert "dbt parse" in line and "TALLY_MANIFEST_PATH" in line
    found = project.tally("query", "--metrics", "orders", "--format", "csv",
                          DBT_TARGET_PATH=str(elsewhere))  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines()[1:] == [str(len(project.hand("select 1 from raw_orders")))]
    manifest = elsewhere / "semantic_manifest.json"
    with in_folder(project.project_dir, monkeypatch, TALLY_MANIFEST_PATH=str(manifest)):
        assert Settings().resolved_manifest_path() == manifest


def test_target_chooses_the_warehouse(corpus, tmp_path, monkeypatch):
    """The profile's `copy` target is the same file in copies/, where the test deletes the
    returned orders: --target copy (and TALLY_TARGET) answers from it, the default target from
    the built one."""
    project = corpus("profile_env").copy_to(tmp_path)
    copy = project.project_dir / "copies" / "corpus.duckdb"
    copy.parent.mkdir()
    shutil.copyfile(project.project_dir / "corpus.duckdb", copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("delete from main.raw_orders where status = 'returned'")  # under the view
    cli = project.tally("query", "--metrics", "orders", "--target", "copy", "--format", "csv")
    assert cli.returncode == 0, cli.stderr
    kept = project.hand("select count(*) from raw_orders where status <> 'returned'")
    assert cli.stdout.splitlines()[1:] == [str(kept[0][0])]
    with in_folder(project.project_dir, monkeypatch, TALLY_TARGET="copy"):
        status, answer = rest(BODY)
    assert status == 200 and _rows(answer) == _hand(project, "where status <> 'returned'")
    with in_folder(project.project_dir, monkeypatch):
        status, answer = rest(BODY)
    assert status == 200 and _rows(answer) == _hand(project)


def test_diff_finds_the_project_in_a_sub_folder_of_its_repository(corpus, tmp_path):
    project = corpus("monorepo")
    assert (project.root / ".git").is_dir() and project.project_dir != project.root
    # HEAD (archived from the repository and parsed) against the folder: its dbt target path.
    run = project.tally("diff", "HEAD", ".", timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "HEAD: running dbt parse" in run.stderr
    assert "metrics: no change; dimensions: no change" in run.stdout
