"""The real CLI end to end on a tiny model and a learnable fixture."""

import json
import subprocess
import sys

import pytest
import yaml

from clitools import cli
from xstilts.experiments.store import ResultsStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, nli_fixture, tiny_model):
    root = tmp_path_factory.mktemp("exp")
    train = {"epochs": 2, "learning_rate": 1e-3, "batch_size": 32, "max_length": 64}
    config = {
        "name": "toy",
        "model": str(tiny_model),
        "task_specs": [str(nli_fixture["spec"])],
        "data": {"mnli": str(nli_fixture["mnli"]), "toy-xnli": str(nli_fixture["xnli"])},
        "intermediate": {"tasks": ["mnli"], "train": train},
        "target": {"task": "toy-xnli", "train": train},
    }
    path = root / "exp.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path, root / "store"


def results_json(monkeypatch, capsys, store):
    return json.loads(cli(monkeypatch, capsys, "results", "--format", "json", "--store", store))


def target_scores(store: ResultsStore, run: str) -> dict[tuple[str, str], float]:
    return {(r.language, r.split): r.value for r in store.results(run) if r.phase == "target" and r.metric == "accuracy"}


def zero_shot_learned(scores: dict[tuple[str, str], float]) -> bool:
    """The non-English languages are well above chance (33.3%) on the learnable fixture."""
    return all(value > 60 for (language, _), value in scores.items() if language != "en")


def test_run_trains_above_chance_and_sweeps_every_language(monkeypatch, capsys, experiment):
    config, store = experiment
    printed = cli(monkeypatch, capsys, "run", config, "seed=1", "--store", store)
    rows = results_json(monkeypatch, capsys, store)
    assert rows and set(rows[0]) == {"run", "phase", "task", "language", "split", "metric", "value"}
    target = {(r["language"], r["split"]): r["value"] for r in rows if r["phase"] == "target" and r["metric"] == "accuracy"}
    assert set(target) == {(lang, split) for lang in ("en", "de", "fr") for split in ("dev", "test")}
    assert target[("en", "dev")] > 60  # percent; chance is 33.3
    assert zero_shot_learned(target), target
    assert "toy-xnli" in printed and "results:" in printed and "(completed)" in printed

    run_id = rows[0]["run"]
    run_dir = store / "runs" / run_id
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["seed"] == 1 and resolved["target"]["train"]["warmup_ratio"] == 0.1  # defaults spelled out
    assert resolved["target"]["eval_splits"] == ["dev", "test"]  # the task's dev and test splits
    predictions = (run_dir / "predictions" / "toy-xnli" / "test-de.tsv").read_text().splitlines()
    assert len(predictions) == 90 and set(predictions) <= {"entailment", "neutral", "contradiction"}
    # The trained target checkpoint lives in the store's cache; the run directory links to it.
    [(key, reused)] = ResultsStore(store).checkpoint_uses(run_id, "target")
    assert reused is False
    assert (run_dir / "checkpoints" / "target").resolve() == (store / "checkpoints" / f"target-{key}").resolve()
    assert json.loads((run_dir / "checkpoints" / "target" / "checkpoint.json").read_text())["max_length"] == 64


def test_second_run_reuses_the_phase2_checkpoint(monkeypatch, capsys, experiment):
    config, store = experiment
    cli(monkeypatch, capsys, "run", config, "seed=1", "target.train.epochs=1", "--store", store)
    results = ResultsStore(store)
    runs = [run["run"] for run in results.runs()]
    assert len(runs) == 2
    first, second = (results.checkpoint_uses(run) for run in runs)
    assert first[0][1] is False and second == [(first[0][0], True)]
    # Other target settings: the target trains again, from the same phase-2 checkpoint.
    [(first_target, _)], [(second_target, reused)] = (results.checkpoint_uses(run, "target") for run in runs)
    assert second_target != first_target and reused is False
    assert zero_shot_learned(target_scores(results, runs[1]))


def test_eval_reproduces_the_target_scores(monkeypatch, capsys, experiment):
    _, store = experiment
    results = ResultsStore(store)
    run = results.runs()[0]["run"]
    checkpoint = store / "runs" / run / "checkpoints" / "target"
    data = yaml.safe_load((store / "runs" / run / "config.yaml").read_text())["data"]["toy-xnli"]
    spec = yaml.safe_load((store / "runs" / run / "config.yaml").read_text())["task_specs"][0]
    cli(monkeypatch, capsys, "eval", "--model", checkpoint, "--task", "toy-xnli", "--data-dir", data,
        "--languages", "de,fr", f"task_specs=[{spec}]", "--store", store)
    rows = results.results()
    by_run = {}
    for row in rows:
        if row.split == "test" and row.language in ("de", "fr"):
            by_run.setdefault(row.phase, {})[row.language] = row.value
    trained = {r.language: r.value for r in results.results(run) if r.split == "test" and r.language in ("de", "fr")}
    assert by_run["eval"] == trained and min(trained.values()) > 60
    # The checkpoint's training max_length (64) is used, not a fixed 128; an override wins.
    evaluation = results.runs()[-1]["run"]
    assert yaml.safe_load((store / "runs" / evaluation / "config.yaml").read_text())["max_length"] == 64
    cli(monkeypatch, capsys, "eval", "--model", checkpoint, "--task", "toy-xnli", "--data-dir", data,
        "--languages", "de", f"task_specs=[{spec}]", "max_length=32", "--store", store)
    overridden = results.runs()[-1]["run"]
    assert yaml.safe_load((store / "runs" / overridden / "config.yaml").read_text())["max_length"] == 32


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "xstilts.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    "override, message",
    [
        ("target.train.lerning_rate=1", "unknown key 'target.train.lerning_rate' (did you mean 'target.train.learning_rate'?)"),
        ("target.task=toy-xnlj", "unknown task 'toy-xnlj' (did you mean 'toy-xnli'?)"),
        ("target.languages=[de,xx]", "task 'toy-xnli' has no language 'xx'"),
        ("target.eval_splits=[dev,tset]",
         "key 'target.eval_splits': task 'toy-xnli' has no split 'tset' (its splits: train, dev, test) (did you mean 'test'?)"),
        ("model_revision=v1.0", "key 'model_revision': model"),
    ],
)
def test_bad_input_is_one_line_nonzero_and_writes_nothing(experiment, tmp_path, override, message):
    config, _ = experiment
    store = tmp_path / "store"
    result = run_cli("run", config, override, "--store", store, cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not (store / "runs").exists() or not any((store / "runs").iterdir())


def test_a_training_file_with_invalid_utf8_is_one_line_naming_the_file_and_line(experiment, nli_fixture, tmp_path):
    config, _ = experiment
    data = tmp_path / "xnli"
    data.mkdir()
    for file in nli_fixture["xnli"].iterdir():
        (data / file.name).write_bytes(file.read_bytes())
    lines = (data / "train-en.tsv").read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b"\t", b" \xe9\xff\t", 1)  # Latin-1 bytes on line 5
    (data / "train-en.tsv").write_bytes(b"\n".join(lines))
    result = run_cli("run", config, f"data.toy-xnli={data}", "--store", tmp_path / "store", cwd=tmp_path)
    # Phase 2 (MNLI) trains before the target's file is read: its progress line comes first.
    errors = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(errors) == 1 and "train-en.tsv:5: not valid UTF-8" in errors[0]


def test_a_language_failing_after_training_keeps_the_others_and_the_checkpoint(monkeypatch, capsys, experiment, nli_fixture, tmp_path):
    """A malformed line in the last file of the sweep, after training: that (split, language) is
    recorded as an error with its reason, the other rows land, the run is partial and exits
    non-zero; with the file mended, a rerun reuses the trained target and gives the same rows."""
    config, _ = experiment
    data = tmp_path / "xnli"
    data.mkdir()
    for file in nli_fixture["xnli"].iterdir():
        (data / file.name).write_bytes(file.read_bytes())
    good = (data / "test-fr.tsv").read_bytes()
    with (data / "test-fr.tsv").open("a", encoding="utf-8") as handle:
        handle.write("une phrase\tsans étiquette\n")
    store = tmp_path / "store"
    result = run_cli("run", config, f"data.toy-xnli={data}", "--store", store, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is partial: toy-xnli test-fr failed: " in lines[-1] and "test-fr.tsv:91: expected 3 tab-separated fields" in lines[-1]
    assert "(1 of 6 evaluations failed; the other rows are stored)" in lines[-1]
    results = ResultsStore(store)
    [run] = results.runs()
    assert run["status"] == "partial" and (store / "runs" / run["run"] / "errors.json").exists()
    [error] = results.errors()
    assert (error.run, error.phase, error.task, error.language, error.split) == (run["run"], "target", "toy-xnli", "fr", "test")
    assert "test-fr.tsv:91: expected 3 tab-separated fields" in error.message and error.message.endswith("got 2")
    partial = target_scores(results, run["run"])
    assert set(partial) == {("en", "dev"), ("de", "dev"), ("fr", "dev"), ("en", "test"), ("de", "test")}
    assert zero_shot_learned(partial), partial
    shown = run_cli("results", "--run", run["run"], "--store", store, cwd=tmp_path)
    assert "failed evaluations" in shown.stdout and "partial" in shown.stdout
    as_json = run_cli("results", "--format", "json", "--store", store, cwd=tmp_path)
    assert f"error: run {run['run']} toy-xnli test-fr: " in as_json.stderr and len(json.loads(as_json.stdout)) == len(results.results())

    (data / "test-fr.tsv").write_bytes(good)
    rerun = run_cli("run", config, f"data.toy-xnli={data}", "--store", store, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    second = results.runs()[1]["run"]
    assert results.status(second) == "completed" and results.errors(second) == []
    assert results.checkpoint_uses(second, "target") == [(results.checkpoint_uses(run["run"], "target")[0][0], True)]
    again = target_scores(results, second)
    assert {key: again[key] for key in partial} == partial and again[("fr", "test")] > 60
