"""`xstilts results --format csv|parquet` and its filters, read back with csv and pyarrow."""

import csv
import io
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clitools import cli
from xstilts.cli import main
from xstilts.errors import UserError
from xstilts.experiments.export import export_results, export_table, parse_axes
from xstilts.experiments.store import ErrorRow, ResultsStore
from xstilts.results import ResultRow

RUNS = {  # run: (study, node, axes, [(task, language, split, value)], failed language)
    "r1": ("grid", "run/0", {"arm": "nli", "seed": "0"}, [("x", "de", "test", 81.25), ("x", "fr", "test", 1 / 3)], None),
    "r2": ("grid", "run/1", {"arm": "qa", "seed": "0"}, [("x", "de", "test", 70.0), ("x", "de", "dev", 72.5)], "fr"),
    "r3": ("grid", "run/2", {"arm": "nli", "seed": "1"}, [("y", "de", "test", 0.1)], None),
    "r4": (None, None, None, [("x", "de", "test", 50.0)], None),
    "r5": ("other", "run/0", {"task": "x", "size": "1k"}, [("x", "de", "test", 60.0)], None),
}


@pytest.fixture
def store(tmp_path):
    store = ResultsStore(tmp_path / "store")
    for run, (study, node, axes, rows, failed) in RUNS.items():
        store.start_run(run, "exp", {}, study=study, node=node, axes=axes)
        errors = [ErrorRow(run, "target", "x", failed, "test", "bad file")] if failed else []
        rows = [ResultRow(run, "target", task, language, split, "accuracy", value) for task, language, split, value in rows]
        store.complete_run(run, rows, errors)
    return store


def record(run, arm, seed, task, language, split, value, status="completed"):
    study, node = RUNS[run][:2]
    return {"run": run, "study": study, "node": node, "arm": arm, "seed": seed, "phase": "target", "task": task,
            "language": language, "split": split, "metric": "accuracy", "value": value, "status": status}


GRID = [
    record("r1", "nli", "0", "x", "de", "test", 81.25), record("r1", "nli", "0", "x", "fr", "test", 1 / 3),
    record("r2", "qa", "0", "x", "de", "dev", 72.5, "partial"), record("r2", "qa", "0", "x", "de", "test", 70.0, "partial"),
    record("r3", "nli", "1", "y", "de", "test", 0.1),
]
COLUMNS = ["run", "study", "node", "arm", "seed", "phase", "task", "language", "split", "metric", "value", "status"]


def cli_error(monkeypatch, capsys, *args) -> str:
    """Run `xstilts ARGS`, expecting a user error: return its one line on stderr."""
    monkeypatch.setattr(sys, "argv", ["xstilts", *map(str, args)])
    with pytest.raises(SystemExit) as exit_:
        main()
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1, lines
    return lines[0]


def test_the_table_has_one_column_per_axis_of_the_exported_runs(store):
    assert export_table(store, study="grid") == (COLUMNS, GRID)
    columns, records = export_table(store, task="x", language="de", split="test")
    assert columns == ["run", "study", "node", "arm", "seed", "axis:task", "size", *COLUMNS[5:]]
    assert [(r["run"], r["arm"], r["axis:task"], r["size"], r["task"]) for r in records] == [
        ("r1", "nli", None, None, "x"), ("r2", "qa", None, None, "x"), ("r4", None, None, None, "x"), ("r5", None, "x", "1k", "x")]
    assert export_table(store, "r4") == (["run", "study", "node", *COLUMNS[5:]], [
        {"run": "r4", "study": None, "node": None, "phase": "target", "task": "x", "language": "de", "split": "test",
         "metric": "accuracy", "value": 50.0, "status": "completed"}])


def test_csv_round_trips_the_filtered_rows_exactly(monkeypatch, capsys, store, tmp_path):
    output = tmp_path / "out" / "grid.csv"
    cli(monkeypatch, capsys, "results", "--format", "csv", "--output", output, "--study", "grid", "--axis", "arm=nli",
        "--store", store.home)
    with output.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        rows = [{**row, "value": float(row["value"])} for row in reader]
    assert rows == [row for row in GRID if row["arm"] == "nli"]
    assert [path.name for path in output.parent.iterdir()] == ["grid.csv"]  # no temporary file left behind

    printed = cli(monkeypatch, capsys, "results", "--format", "csv", "--axis", "seed=0", "--split", "dev", "--store", store.home)
    assert list(csv.DictReader(io.StringIO(printed))) == [{key: str(value) for key, value in GRID[2].items()}]


def test_parquet_round_trips_the_filtered_rows_exactly(monkeypatch, capsys, store, tmp_path):
    output = tmp_path / "grid.parquet"
    cli(monkeypatch, capsys, "results", "--format", "parquet", "--output", output, "--study", "grid", "--store", store.home)
    table = pq.read_table(output)
    assert table.column_names == COLUMNS and table.schema.field("value").type == pa.float64()
    assert table.schema.field("seed").type == pa.string()
    assert table.to_pylist() == GRID
    export_results(store, "parquet", output, task="y", language="de")
    assert pq.read_table(output).to_pylist() == [GRID[-1]]


def test_filters_select_by_run_task_language_and_split(monkeypatch, capsys, store):
    rows = json.loads(cli(monkeypatch, capsys, "results", "--format", "json", "--language", "de", "--task", "x",
                          "--split", "test", "--store", store.home))
    assert [(row["run"], row["value"]) for row in rows] == [("r1", 81.25), ("r2", 70.0), ("r4", 50.0), ("r5", 60.0)]
    rows = json.loads(cli(monkeypatch, capsys, "results", "--format", "json", "--run", "r2", "--store", store.home))
    assert [row["split"] for row in rows] == ["dev", "test"]
    table = cli(monkeypatch, capsys, "results", "--study", "grid", "--axis", "arm=qa", "--store", store.home)
    assert "72.5" in table and "81.2" not in table and "bad file" in table  # r2's failed evaluation beside its rows


def test_failed_evaluations_are_reported_on_stderr_beside_csv(monkeypatch, capsys, store):
    monkeypatch.setattr(sys, "argv", ["xstilts", "results", "--format", "csv", "--study", "grid", "--store", str(store.home)])
    main()
    captured = capsys.readouterr()
    assert len(list(csv.DictReader(io.StringIO(captured.out)))) == 5
    assert captured.err.strip() == "error: run r2 x test-fr: bad file"
    output = store.home / "grid.parquet"
    monkeypatch.setattr(sys, "argv", ["xstilts", "results", "--format", "parquet", "--output", str(output), "--study", "grid",
                                      "--store", str(store.home)])
    main()
    assert capsys.readouterr().err.strip().splitlines() == [f"wrote 5 rows to {output}", "error: run r2 x test-fr: bad file"]


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "parquet"], "--format parquet writes a binary file: give it --output FILE"),
    (["--axis", "amr=nli"], "--axis amr=nli: no run in {store} has an axis 'amr' (did you mean 'arm'?)"),
    (["--axis", "colour=red"], "--axis colour=red: no run in {store} has an axis 'colour' (axes: arm, seed, size, task)"),
    (["--axis", "arm=nil"], "--axis arm=nil: no run has arm = 'nil' (did you mean 'nli'?)"),
    (["--axis", "arm"], "--axis 'arm': expected NAME=LABEL, e.g. --axis arm=nli"),
    (["--study", "gird"], "--study 'gird': no run of this study in {store} (did you mean 'grid'?)"),
    (["--output", "x.txt"], "--output: the table goes to the terminal; use --format csv, parquet or json for a file"),
])
def test_bad_options_are_one_line_errors(monkeypatch, capsys, store, args, message):
    line = cli_error(monkeypatch, capsys, "results", *args, "--store", store.home)
    assert line == "error: " + message.format(store=store.path)


def test_parse_axes():
    assert parse_axes(["arm=nli", " seed = 1 ", "model=org/name=v2"]) == {"arm": "nli", "seed": "1", "model": "org/name=v2"}
    with pytest.raises(UserError, match="--axis '=nli': expected NAME=LABEL"):
        parse_axes(["=nli"])
