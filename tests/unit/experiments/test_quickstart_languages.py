"""`xstilts quickstart languages_file=...`: a study varies the transformations of the languages."""

import subprocess
import sys

import yaml
from rich.console import Console

from xstilts.config.loading import load_config
from xstilts.config.schema import QuickstartConfig
from xstilts.data.loading import load_examples
from xstilts.experiments.quickstart import QUICKSTART_CONFIG, prepare_data
from xstilts.synthetic import default_languages_file
from xstilts.tasks.registry import load_registry

SIZES = "sizes={mlm: {sentences: 50}, topic: {train: 20, dev: 5, test: 5}, nli: {train: 20, dev: 5, test: 5}, " \
        "paraphrase: {train: 20, dev: 5, test: 5}, qa: {train: 4, dev: 2, test: 2}, pos: {train: 20, dev: 5, test: 6}, " \
        "ner: {train: 20, dev: 5, test: 5}, copa: {train: 20, dev: 5, test: 5}, parallel: {test: 10}}"


def languages_with(tmp_path, code: str, transformations: list) -> str:
    doc = yaml.safe_load(default_languages_file().read_text(encoding="utf-8"))
    for language in doc["languages"]:
        if language["code"] == code:
            language["transformations"] = transformations
    path = tmp_path / "languages.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return str(path)


def verb_final_share(data, language: str) -> float:
    """Share of POS test sentences whose last word before the full stop is a verb."""
    examples = load_examples(load_registry().get("synth-pos"), "test", language, data / "pos")
    return sum(example["labels"][-2] in ("VERB", "AUX") for example in examples) / len(examples)


def test_a_languages_file_changes_the_generated_data_and_its_key(tmp_path):
    shipped = load_config(QUICKSTART_CONFIG, [SIZES], schema=QuickstartConfig)
    # xd keeps its lexicon and script but becomes head-final.
    changed = languages_with(tmp_path, "xd", [
        {"type": "vocabulary", "lexicon": "zovo", "consonants": "vdbknpgstz", "vowels": "aeiou", "plural": "y"},
        {"type": "word_order", "order": "SOV"},
        {"type": "script", "alphabet": "cyrillic", "transliterate_names": False},
    ])
    study = load_config(QUICKSTART_CONFIG, [SIZES, f"languages_file={changed}"], schema=QuickstartConfig)
    console = Console(quiet=True)
    base, varied = prepare_data(shipped, tmp_path / "work", console), prepare_data(study, tmp_path / "work", console)
    assert base != varied
    assert verb_final_share(varied, "xd") == 1.0 and verb_final_share(base, "xd") < 0.5
    assert (base / "pos/test-xa.tsv").read_bytes() == (varied / "pos/test-xa.tsv").read_bytes()


def test_a_languages_file_without_a_target_language_is_one_line(tmp_path):
    doc = yaml.safe_load(default_languages_file().read_text(encoding="utf-8"))
    doc["languages"] = [language for language in doc["languages"] if language["code"] != "xc"]
    path = tmp_path / "four.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "xstilts.cli", "quickstart", f"languages_file={path}",
                           "--store", str(tmp_path / "store")], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"key 'languages_file': {path} lacks ['xc'], languages of target 'synth-topic'" in " ".join(done.stderr.split())
    assert not (tmp_path / "store" / "quickstart").exists()
