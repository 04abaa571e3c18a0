"""Learnable fixtures in every trainable task format, in en/de/fr, in the real tasks' layouts.

Each task's answer is carried by words every language shares (markers, digits), as names and
digits are shared by real languages, so a tiny model learns English in seconds and transfers
where the shared words decide: classification and multiple choice by a marker word, QA by the
number after the marker. Tagging tags each word by the word itself, so only the shared digits
transfer. `write_formats_fixture` writes every task's folder, a spec file and the corpus a
tokenizer is trained on.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from fixtures_nli import WORDS, write_fixture

LANGUAGES = tuple(WORDS)
TOPIC_MARKERS = {"food": "yes", "nature": "maybe", "sport": "no", "travel": "ok"}
POS_TAGS = ("NOUN", "VERB", "ADJ", "DET")
SPEC = """
tasks:
  - name: toy-topic
    include: synth-topic
    description: learnable single-sentence fixture, the label is carried by a marker word
    languages: [en, de, fr]
  - name: toy-copa
    include: xcopa
    description: learnable two-choice fixture, the right choice holds the marker "yes"
    languages: [en, de, fr]
    benchmarks: {}
    local: {reader: copa_jsonl, path: "{split}-{language}.jsonl"}
    hub: null
  - name: toy-qa
    include: xquad
    description: learnable QA fixture, the answer is the number after the marker
    languages: [en, de, fr]
    splits: [train, dev, test]
    benchmarks: {}
    local: {reader: squad_json, path: "{split}-{language}.json"}
  - name: toy-pos
    include: udpos
    description: learnable tagging fixture, each word's tag fixed by the word (digits NUM)
    languages: [en, de, fr]
    benchmarks: {}
    hub: null
  - name: toy-span-corruption
    include: mlm-multilingual
    format: span_corruption
    description: the fixture's text in every language, for span corruption
    languages: [en, de, fr]
    splits: [train]
"""
SIZES = {"train": 400, "dev": 60, "test": 60}
# The chance level of each fixture's first metric (percent), for "beats chance" assertions.
CHANCE = {"toy-xnli": 100 / 3, "toy-topic": 25.0, "toy-copa": 50.0, "toy-qa": 0.0, "toy-pos": 100 / (len(POS_TAGS) + 1)}  # + NUM


def splits_of(language: str) -> dict[str, int]:
    """English has every split; the other languages are evaluation-only."""
    return SIZES if language == "en" else {split: n for split, n in SIZES.items() if split != "train"}


def filler(rng: random.Random, language: str, low: int, high: int) -> list[str]:
    return [rng.choice(WORDS[language]) for _ in range(rng.randint(low, high))]


def write_topic(folder: Path, rng: random.Random) -> None:
    for language in LANGUAGES:
        for split, n in splits_of(language).items():
            lines = []
            for _ in range(n):
                label = rng.choice(list(TOPIC_MARKERS))
                words = filler(rng, language, 3, 7)
                words.insert(rng.randint(0, len(words)), TOPIC_MARKERS[label])
                lines.append(f"{' '.join(words)}\t{label}")
            (folder / f"{split}-{language}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_copa(folder: Path, rng: random.Random) -> None:
    for language in LANGUAGES:
        for split, n in splits_of(language).items():
            rows = []
            for index in range(n):
                right = " ".join(filler(rng, language, 2, 4) + ["yes"])
                wrong = " ".join(filler(rng, language, 2, 4) + ["no"])
                label = rng.randint(0, 1)
                choices = [right, wrong] if label == 0 else [wrong, right]
                rows.append({"premise": " ".join(filler(rng, language, 3, 6)), "choice1": choices[0], "choice2": choices[1],
                             "question": rng.choice(["cause", "effect"]), "label": label, "idx": index})
            text = "".join(json.dumps(row) + "\n" for row in rows)
            (folder / f"{split}-{language}.jsonl").write_text(text, encoding="utf-8")


def qa_paragraph(rng: random.Random, language: str, qid: str) -> dict:
    words = filler(rng, language, 5, 12)
    at = rng.randint(0, len(words))
    answer = str(rng.randint(10, 99))
    words[at:at] = ["yes", answer]
    context = " ".join(words)
    start = len(" ".join(words[: at + 1])) + 1
    qa = {"id": qid, "question": f"yes {rng.choice(WORDS[language])}", "answers": [{"text": answer, "answer_start": start}]}
    return {"context": context, "qas": [qa]}


def write_qa(folder: Path, rng: random.Random) -> None:
    for language in LANGUAGES:
        for split, n in splits_of(language).items():
            paragraphs = [qa_paragraph(rng, language, f"{language}-{split}-{i}") for i in range(n)]
            data = {"version": "1.1", "data": [{"title": "toy", "paragraphs": paragraphs}]}
            (folder / f"{split}-{language}.json").write_text(json.dumps(data), encoding="utf-8")


def write_pos(folder: Path, rng: random.Random) -> None:
    for language in LANGUAGES:
        tags = {word: POS_TAGS[index % len(POS_TAGS)] for index, word in enumerate(WORDS[language])}
        for split, n in splits_of(language).items():
            sentences = []
            for _ in range(n):
                words = filler(rng, language, 2, 5) + [str(rng.randint(1, 9))]
                rng.shuffle(words)
                sentences.append("\n".join(f"{w}\t{tags.get(w, 'NUM')}" for w in words))
            (folder / f"{split}-{language}.tsv").write_text("\n\n".join(sentences) + "\n", encoding="utf-8")


def write_text(folder: Path) -> None:
    """One sentence per line per language under train/ (the text_lines layout)."""
    (folder / "train").mkdir(parents=True, exist_ok=True)
    for language in LANGUAGES:
        lines = [" ".join(random.Random(i).choices(WORDS[language], k=8)) for i in range(200)]
        (folder / "train" / f"{language}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_formats_fixture(root: Path, seed: int = 0) -> dict:
    """Write every task's data folder and the spec file under `root`; return the config's
    `data` map, the spec path and the corpus (every line of every file) for a tokenizer."""
    rng = random.Random(seed)
    nli = write_fixture(root / "nli", n_train=SIZES["train"], n_eval=SIZES["dev"], seed=seed)
    writers = {"toy-topic": write_topic, "toy-copa": write_copa, "toy-qa": write_qa, "toy-pos": write_pos}
    data = {"toy-xnli": str(nli["xnli"]), "mnli": str(nli["mnli"])}
    for task, write in writers.items():
        folder = root / task
        folder.mkdir(parents=True, exist_ok=True)
        write(folder, rng)
        data[task] = str(folder)
    write_text(root / "text")
    data["toy-span-corruption"] = str(root / "text")
    spec = root / "toy-formats.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    corpus = [" ".join(WORDS[language]) for language in LANGUAGES] * 20
    # What text-to-text mode writes besides the data: task prefixes, field names, label words, tags.
    rendering = "xnli nli topic copa qa pos tag premise hypothesis question context sentence sentence1 sentence2 " \
        "choice1 choice2 cause effect options answer unanswerable entailment neutral contradiction " \
        f"{' '.join(TOPIC_MARKERS)} {' '.join(POS_TAGS)} NUM : , . ? $ [ ] ( ) | - _"
    corpus += [str(number) for number in range(100)] + list(TOPIC_MARKERS.values()) + [rendering] * 20
    return {"data": data, "specs": [str(nli["spec"]), str(spec)], "corpus": corpus}
