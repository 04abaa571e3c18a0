"""`xstilts run` end to end on a learnable tagging fixture in the XTREME tsv layout.

The tag of every word is fixed by the word itself, so a tiny model learns English in
seconds; some sentences are longer than `max_length`, so windows are exercised too.
"""

import random
import sys

import pytest
import yaml

from xstilts.cli import main
from xstilts.metrics import seqeval_f1
from xstilts.experiments.store import ResultsStore
from xstilts.models.tiny import build_tiny_model

pytestmark = pytest.mark.slow

LEXICON = {
    "en": {"DET": "the a this", "ADJ": "big small red old", "NOUN": "cat dog house tree mat bird",
           "VERB": "sees likes finds eats", "ADP": "on under near", "NUM": "1 2 3"},
    "de": {"DET": "der die das", "ADJ": "gross klein rot alt", "NOUN": "katze hund haus baum matte vogel",
           "VERB": "sieht mag findet isst", "ADP": "auf unter bei", "NUM": "1 2 3"},
    "fr": {"DET": "le la un", "ADJ": "grand petit rouge vieux", "NOUN": "chat chien maison arbre natte oiseau",
           "VERB": "voit aime trouve mange", "ADP": "sur sous pres", "NUM": "1 2 3"},
}
SPEC = """
tasks:
  - name: toy-udpos
    include: udpos
    description: learnable UDPOS-layout fixture
    languages: [en, de, fr]
    benchmarks: {}
"""
MAX_LENGTH = 24


def sentence(rng: random.Random, language: str) -> list[tuple[str, str]]:
    """DET (ADJ) NOUN VERB (NUM) DET NOUN (ADP DET NOUN)* . with word-determined tags."""
    def word(tag):
        return rng.choice(LEXICON[language][tag].split()), tag

    tags = ["DET", "ADJ", "NOUN", "VERB", "NUM", "DET", "NOUN"]
    tags = [t for t in tags if t not in ("ADJ", "NUM") or rng.random() < 0.5]
    for _ in range(rng.choice([0, 1, 1, 2, 6])):  # 6 phrases: longer than one window
        tags += ["ADP", "DET", "ADJ", "NOUN"]
    return [word(t) for t in tags] + [(".", "PUNCT")]


def write_split(path, sentences):
    path.write_text("".join("".join(f"{w}\t{t}\n" for w, t in s) + "\n" for s in sentences), encoding="utf-8")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("tagging")
    rng = random.Random(0)
    data = root / "data"
    data.mkdir()
    corpus = []
    for language in LEXICON:
        for split, n in (("train", 200), ("dev", 40), ("test", 40)):
            if split == "train" and language != "en":
                continue
            sentences = [sentence(rng, language) for _ in range(n)]
            write_split(data / f"{split}-{language}.tsv", sentences)
            corpus += [" ".join(w for w, _ in s) for s in sentences]
    model = build_tiny_model(root / "model", corpus, vocab_size=200, hidden_size=64, num_layers=2, num_heads=2)
    (root / "toy.yaml").write_text(SPEC, encoding="utf-8")
    train = {"epochs": 2, "learning_rate": 3e-3, "batch_size": 32, "max_length": MAX_LENGTH}
    config = {"name": "toy-tagging", "model": str(model), "task_specs": [str(root / "toy.yaml")],
              "data": {"toy-udpos": str(data)}, "target": {"task": "toy-udpos", "train": train}}
    path = root / "exp.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path, root / "store", data


def majority_f1(path) -> float:
    """seqeval F1 of tagging every word NOUN, the most frequent tag."""
    sentences = [s.split("\n") for s in path.read_text(encoding="utf-8").strip().split("\n\n")]
    gold = [[line.split("\t")[1] for line in s] for s in sentences]
    return seqeval_f1([["NOUN"] * len(s) for s in gold], gold) * 100


def test_run_learns_tags_and_scores_every_language(monkeypatch, capsys, experiment):
    config, store, data = experiment
    monkeypatch.setattr(sys, "argv", ["xstilts", "run", str(config), "--store", str(store)])
    try:
        main()
    except SystemExit as exit_:
        assert exit_.code in (0, None), capsys.readouterr().err
    results = ResultsStore(store)
    f1 = {(r.language, r.split): r.value for r in results.results() if r.phase == "target" and r.metric == "f1"}
    assert set(f1) == {(lang, split) for lang in LEXICON for split in ("dev", "test")}

    majority = {key: majority_f1(data / f"{key[1]}-{key[0]}.tsv") for key in f1}
    assert max(majority.values()) < 30 and f1[("en", "dev")] > 90 > majority[("en", "dev")] + 60
    # Zero-shot: no word is shared but digits and the full stop, yet word order and those anchors
    # carry over (measured: de 44-47, fr 47-55 against a NOUN baseline below 30).
    for key in [key for key in f1 if key[0] != "en"]:
        assert f1[key] > majority[key] + 10, (key, f1, majority)

    # Every token of every sentence got exactly one label in the prediction file, long ones too.
    run = results.runs()[0]["run"]
    predicted = (store / "runs" / run / "predictions" / "toy-udpos" / "test-de.tsv").read_text(encoding="utf-8")
    lengths = [len(s.split("\n")) for s in predicted.strip("\n").split("\n\n")]
    gold_test = (data / "test-de.tsv").read_text(encoding="utf-8").strip("\n").split("\n\n")
    assert lengths == [len(s.split("\n")) for s in gold_test] and max(lengths) > MAX_LENGTH
