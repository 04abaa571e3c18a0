"""Readers for retrieval tasks: Tatoeba (LASER v1), BUCC 2018, LAReQA (XQuAD-R) and Mewsli-X.

Example schemas (retrieval has no labels; what is retrieved is part of the example):
- tatoeba: one example per line pair, `id` (the 0-based line index, which is what the
  leaderboard's gold file holds), `source` (the non-English sentence), `target` (its English
  translation, line-aligned);
- bucc: one example per file set, `id` (the file stem, e.g. `de-en.dev`), `sources` and
  `targets` (sentence id -> sentence, in file order), `gold` (list of `[source id, target id]`,
  or None when the set has no gold file, as for the official BUCC test set);
- xquad_r_json (LAReQA): one example per paragraph, `id` (its 1-based number), `context`,
  `sentences`, `questions` (`id`, `question`, `answer_sentence` index);
- mewslix_jsonl: one example per mention, `id`, `language`, `query`, `entity_id`; the
  candidate entities come from `read_mewslix_candidates`.

The spec's path names the non-English file; the English file (and BUCC's gold) are its siblings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from xstilts.data.io import Example, check_new_id, numbered_lines, open_text
from xstilts.errors import UserError
from xstilts.tasks.spec import TaskSpec


def read_tatoeba_v1(path: Path, spec: TaskSpec) -> list[Example]:
    """LASER v1 Tatoeba: `tatoeba.XXX-eng.XXX` (given) and `tatoeba.XXX-eng.eng`, line-aligned."""
    english = path.with_suffix(".eng")
    # Lines are stripped as XTREME's tokenisation step does; empty lines are kept, not skipped,
    # because skipping one would shift every later pair.
    sources = [line.strip() for _, line in numbered_lines(path)]
    targets = [line.strip() for _, line in numbered_lines(english)]
    if len(sources) != len(targets):
        raise UserError(
            f"{path} has {len(sources)} lines but {english} has {len(targets)}; "
            "Tatoeba files must be line-aligned translations"
        )
    pairs = enumerate(zip(sources, targets))
    return [{"id": str(index), "source": source, "target": target} for index, (source, target) in pairs]


def _read_bucc_sentences(path: Path) -> dict[str, str]:
    sentences: dict[str, str] = {}
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        sentence_id, tab, sentence = line.partition("\t")
        if not tab or not sentence_id.strip():
            raise UserError(f"{path}:{number}: expected `id<TAB>sentence`")
        sentence_id = sentence_id.strip()
        if sentence_id in sentences:
            raise UserError(f"{path}:{number}: duplicate sentence id {sentence_id!r}")
        sentences[sentence_id] = sentence.strip()
    return sentences


def _read_bucc_gold(path: Path, sources: dict[str, str], targets: dict[str, str]) -> list[list[str]]:
    gold = []
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise UserError(f"{path}:{number}: expected `source_id<TAB>target_id`, got {len(fields)} field(s)")
        source_id, target_id = (field.strip() for field in fields)
        if source_id not in sources or target_id not in targets:
            unknown = source_id if source_id not in sources else target_id
            raise UserError(f"{path}:{number}: sentence id {unknown!r} is not in the sentence files of this set")
        gold.append([source_id, target_id])
    return gold


def read_bucc(path: Path, spec: TaskSpec) -> list[Example]:
    """BUCC 2018: `{xx}-en.{split}.{xx}` (given), `.en`, and `.gold` of `xx_id<TAB>en_id` if present.

    Returns one example holding the whole file set, since mining compares every sentence
    with every other.
    """
    sources = _read_bucc_sentences(path)
    targets = _read_bucc_sentences(path.with_suffix(".en"))
    gold_path = path.with_suffix(".gold")
    gold = _read_bucc_gold(gold_path, sources, targets) if gold_path.exists() else None
    return [{"id": path.stem, "sources": sources, "targets": targets, "gold": gold}] if sources and targets else []


def _load_json_document(path: Path) -> Any:
    try:
        with open_text(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid json ({exc.msg})") from None


def _sentence_bounds(text: Any, spans: Any, where: str) -> list[tuple[int, int]]:
    """The `(start, end)` character spans of `text`'s sentences (given as pairs or `{start, end}`)."""
    if not isinstance(text, str):
        raise UserError(f"{where}: the text must be a string, got {type(text).__name__}")
    try:
        bounds = [(int(span["start"]), int(span["end"])) if isinstance(span, dict) else (int(span[0]), int(span[1]))
                  for span in spans]
    except (KeyError, IndexError, TypeError, ValueError, OverflowError):
        raise UserError(f"{where}: sentence spans must be [start, end] pairs of character offsets") from None
    if any(not 0 <= start < end <= len(text) for start, end in bounds):
        raise UserError(f"{where}: a sentence span lies outside its text of {len(text)} characters")
    return bounds


def _sentences(text: Any, spans: Any, where: str) -> list[str]:
    """The sentences of `text` cut at `[start, end]` character spans (pairs or `{start, end}`)."""
    return [text[start:end] for start, end in _sentence_bounds(text, spans, where)]


def read_xquad_r_json(path: Path, spec: TaskSpec) -> list[Example]:
    """LAReQA's XQuAD-R (`{language}.json`): SQuAD json whose paragraphs carry `sentence_breaks`.

    One example per paragraph, numbered from 1 in file order as LAReQA's `generate_examples`
    numbers them (the candidate ids the evaluation builds from it rely on this order):

        {"id": "1", "context": "Tesla was born. He died in 1943.",
         "sentences": ["Tesla was born.", "He died in 1943."],
         "questions": [{"id": "56be...", "question": "When did Tesla die?", "answer_sentence": 1}]}

    `answer_sentence` is the sentence holding the first answer's start. A question whose
    answer start lies in no sentence is left out, as upstream does (a sentence-breaking gap).
    """
    document = _load_json_document(path)
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise UserError(f"{path}: expected SQuAD json with a top-level `data` list")
    examples = []
    for article in document["data"]:
        paragraphs = article.get("paragraphs", []) if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise UserError(f"{path}: an article of `data` needs a `paragraphs` list")
        for paragraph in paragraphs:
            number = len(examples) + 1
            where = f"{path}: paragraph {number}"
            if not isinstance(paragraph, dict) or "context" not in paragraph or "sentence_breaks" not in paragraph:
                raise UserError(f"{where}: needs `context` and `sentence_breaks` (XQuAD-R files, not XQuAD)")
            context = paragraph["context"]
            bounds = _sentence_bounds(context, paragraph["sentence_breaks"], where)
            sentences = [context[start:end] for start, end in bounds]
            qas = paragraph.get("qas", [])
            if not isinstance(qas, list):
                raise UserError(f"{where}: `qas` must be a list of questions")
            questions = [_xquad_r_question(qa, bounds, where) for qa in qas]
            examples.append({
                "id": str(number), "context": context, "sentences": sentences,
                "questions": [question for question in questions if question["answer_sentence"] is not None],
            })
    return examples


def _xquad_r_question(qa: Any, bounds: list[tuple[int, int]], where: str) -> dict:
    if not isinstance(qa, dict) or not qa.get("id") or not isinstance(qa.get("question"), str) or not qa.get("answers"):
        raise UserError(f"{where}: every question needs `id`, `question` (a string) and one answer")
    try:
        start = int(qa["answers"][0]["answer_start"])
    except (KeyError, TypeError, ValueError, OverflowError):
        raise UserError(f"{where}, question {qa['id']}: the answer needs an integer `answer_start`") from None
    sentence = next((index for index, (begin, end) in enumerate(bounds) if begin <= start < end), None)
    return {"id": str(qa["id"]), "question": qa["question"], "answer_sentence": sentence}


# Mewsli-X's baseline markup (utils_mewslix.preprocess_mention): the mention is enclosed in
# braces, braces already in the text become parentheses.
_MENTION_LEFT, _MENTION_RIGHT = "{", "}"
_BRACED = re.compile(r"\{(.*?)\}")


def _normalise_space(text: str) -> str:
    return " ".join(text.splitlines()).replace("  ", " ").strip()


def mention_query(text: str, sentences: list[tuple[int, int]], start: int, end: int) -> str | None:
    """The query text of one mention: its sentence with the mention marked, the mention prepended.

    `Smith: The verdict came back for { Smith }, who stepped down.` (Mewsli-X's baseline
    `preprocess_mention` with one sentence of context). None when the mention crosses
    sentences.
    """
    for begin, finish in sentences:
        if begin <= start < finish and begin < end <= finish:
            left = _BRACED.sub(r"(\1)", text[begin:start])
            right = _BRACED.sub(r"(\1)", text[end:finish])
            mention = text[start:end]
            return _normalise_space(f"{mention}: {left} {_MENTION_LEFT} {mention} {_MENTION_RIGHT} {right}")
    return None


def read_mewslix_jsonl(path: Path, spec: TaskSpec) -> list[Example]:
    """Mewsli-X WikiNews mentions (`wikinews_mentions-{split}.jsonl`, every language in one file).

    Each line is one article with its mentions (the released `ContextualMentions` schema):

        {"context": {"document_id": "d1", "language": "de", "text": "Merkel sprach.",
                     "sentence_spans": [{"start": 0, "end": 14}], ...},
         "mentions": [{"example_id": "de-1", "entity_id": "Q567",
                       "mention_span": {"start": 0, "end": 6, "text": "Merkel"}}]}

    One example per mention: `{"id": example_id, "language": ..., "query": mention text in
    its sentence (see `mention_query`), "entity_id": gold WikiData id}`. A mention that crosses
    sentences is left out, as the official baseline cannot encode it either. The entity
    candidates are read by `read_mewslix_candidates`.
    """
    examples, seen = [], {}
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        record = _json_line(line, f"{path}:{number}")
        try:
            context, mentions = record["context"], record["mentions"]
            text, language = context["text"], context["language"]
            if not isinstance(text, str) or not isinstance(language, str) or not isinstance(mentions, list):
                raise TypeError("context.text, context.language or mentions")
            spans = [(int(s["start"]), int(s["end"])) for s in context["sentence_spans"]]
            for mention in mentions:
                span = mention["mention_span"]
                start, end = int(span["start"]), int(span["end"])
                if not 0 <= start < end <= len(text) or text[start:end] != span["text"]:
                    raise UserError(f"{path}:{number}: mention {mention['example_id']} does not match its text span")
                check_new_id(seen, str(mention["example_id"]), f"{path}:{number}")
                query = mention_query(text, spans, start, end)
                if query is not None:
                    examples.append({"id": str(mention["example_id"]), "language": language,
                                     "query": query, "entity_id": str(mention["entity_id"])})
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise UserError(f"{path}:{number}: not a Mewsli-X article record (bad or missing {exc})") from None
    return examples


def read_mewslix_candidates(path: Path) -> dict[str, str]:
    """Mewsli-X candidate entities (`candidate_set_entities.jsonl`): entity id -> description.

    Lines hold `{"entity_id": "Q567", "title": ..., "description": ..., "sentence_spans":
    [{"start", "end"}], "description_language": ..., "description_url": ...}`; the text is
    the description's sentences joined by spaces, as `preprocess_entity_description` does.
    """
    candidates: dict[str, str] = {}
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        record = _json_line(line, where)
        if not isinstance(record, dict) or "entity_id" not in record or "description" not in record:
            raise UserError(f"{where}: an entity needs `entity_id` and `description`")
        sentences = _sentences(record["description"], record.get("sentence_spans", []), where)
        entity_id = str(record["entity_id"])
        if entity_id in candidates:
            raise UserError(f"{where}: duplicate entity id {entity_id!r}")
        candidates[entity_id] = _normalise_space(" ".join(sentences))
    return candidates


def _json_line(line: str, where: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not valid json ({exc.msg})") from None
