"""The hub adapter on local hub-layout folders (the real `datasets.load_dataset` path, offline):
TyDiQA's mixed-language config, SIQA's rows, and languages the hub source does not hold."""

import json
import sys

import pytest
import yaml

from xstilts.cli import main
from xstilts.data.loading import load_examples
from xstilts.errors import UserError
from xstilts.tasks.registry import load_registry
from xstilts.tasks.spec import TaskSpec

REGISTRY = load_registry()


def hub_folder(root, config, splits):
    """A folder laid out like a hub dataset: one config, one jsonl file per split ({split: rows})."""
    (root / config).mkdir(parents=True)
    files = ""
    for split, rows in splits.items():
        (root / config / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        files += f"  - split: {split}\n    path: {config}/{split}.jsonl\n"
    (root / "README.md").write_text(f"---\nconfigs:\n- config_name: {config}\n  data_files:\n{files}---\n", encoding="utf-8")
    return root


def on_hub(task, folder):
    fields = REGISTRY.get(task).model_dump()
    fields["hub"]["id"] = str(folder)
    return TaskSpec.model_validate(fields)


def tydiqa_row(id_, answer="Paris"):
    context = f"It is {answer}."
    return {"id": id_, "title": "t", "context": context, "question": "Where?",
            "answers": {"text": [answer], "answer_start": [6]}}


def test_tydiqa_from_the_hub_trains_on_english_and_scores_each_language_on_its_own_rows(tmp_path):
    """The hub's one `tydiqa` config mixes all nine languages in train and validation."""
    train = [tydiqa_row("english-1"), tydiqa_row("arabic-2"), tydiqa_row("english-3"), tydiqa_row("finnish-4")]
    dev = [tydiqa_row("arabic-5", "Kairo"), tydiqa_row("english-6"), tydiqa_row("arabic-7", "Rabat"), tydiqa_row("korean-8")]
    spec = on_hub("tydiqa", hub_folder(tmp_path / "tydiqa-hub", "tydiqa", {"train": train, "validation": dev}))
    assert [e["id"] for e in load_examples(spec, "train", "en", data_dir=None)] == ["english-1", "english-3"]
    arabic = load_examples(spec, "test", "ar", data_dir=None)
    assert [(e["id"], e["answers"]["text"]) for e in arabic] == [("arabic-5", ["Kairo"]), ("arabic-7", ["Rabat"])]
    assert [e["id"] for e in load_examples(spec, "test", "ko", data_dir=None)] == ["korean-8"]
    with pytest.raises(UserError, match=r"split 'validation'\): no examples"):
        load_examples(spec, "test", "te", data_dir=None)


def test_siqa_hub_rows_carry_one_based_labels(tmp_path):
    rows = [{"context": "C1", "question": "Q1?", "answerA": "a", "answerB": "b", "answerC": "c", "label": "1"},
            {"context": "C2", "question": "Q2?", "answerA": "x", "answerB": "y", "answerC": "z", "label": "3"}]
    spec = on_hub("siqa", hub_folder(tmp_path / "siqa-hub", "default", {"validation": rows}))
    spec = spec.model_copy(update={"hub": spec.hub.model_copy(update={"config": "default"})})
    examples = load_examples(spec, "dev", "en", data_dir=None)
    assert [(e["context"], e["question"], e["choices"], e["label"]) for e in examples] == [
        ("C1", "Q1?", ["a", "b", "c"], 0),
        ("C2", "Q2?", ["x", "y", "z"], 2),
    ]


@pytest.mark.parametrize(
    ("task", "missing"),
    [("udpos", ["lt", "pl", "uk", "wo", "ro"]), ("tatoeba", ["az", "lt", "pl", "uk", "ro"]),
     ("panx", ["qu", "pl", "uk", "az", "lt", "pa", "gu", "ro"]), ("xquad", ["ro"]), ("xcopa", ["en"])],
)
def test_the_spec_says_which_languages_its_hub_source_holds(task, missing):
    spec = REGISTRY.get(task)
    assert [language for language in spec.languages if not spec.hub.has_language(language)] == missing
    with pytest.raises(UserError, match=rf"task '{task}': language '{missing[0]}' is not in its hub source 'x"):
        load_examples(spec, spec.splits[-1], missing[0], data_dir=None)


def test_a_hub_language_the_hub_lacks_fails_in_preflight_before_training(monkeypatch, capsys, tmp_path):
    """No model exists at the path: an error about the language, not the model, shows it came first."""
    config = {"name": "udpos-hub", "model": str(tmp_path / "no-model"),
              "target": {"task": "udpos", "languages": ["de", "lt"]}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["xstilts", "run", str(tmp_path / "exp.yaml"), "--store", str(tmp_path / "store")])
    with pytest.raises(SystemExit) as exit_:
        main()
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1
    assert "task 'udpos': language 'lt' is not in its hub source 'xtreme'; pass a local data dir (data.udpos=DIR" in lines[0]
    assert not (tmp_path / "store" / "runs").exists()
