"""Reader for SQuAD-style json: SQuAD v1.1 / v2.0, XQuAD, MLQA, TyDiQA-GoldP.

Layout: `data[].paragraphs[].context, qas[].{id, question, answers[].{text, answer_start},
is_impossible}`. Every answer offset is checked against its context while reading.

Spec `local.options` understood here:
- `id_prefix` (str): TyDiQA-GoldP's original training file mixes nine languages, marked by
  id prefixes (`english-...`, `arabic-...`). Training on all of them is not zero-shot (a
  known jiant bug), so with `id_prefix: english-` a file holding ids with that prefix keeps
  only those questions. Files without it are read whole: the XTREME layout's
  `tydiqa.en.train.json` is already English-only (prefixes stripped) and each per-language
  dev file holds one language.
- `language_pattern` (str): a regex with one group, searched in the file name; the match is
  stored as each example's `language`. MLQA scoring needs the context language, which
  only the file name carries (`test-context-de-question-de.json`).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from xstilts.data.io import Example, open_text
from xstilts.errors import UserError
from xstilts.tasks.spec import TaskSpec

logger = logging.getLogger(__name__)


def read_squad_json(path: Path, spec: TaskSpec) -> list[Example]:
    """SQuAD-style json -> `{id, context, question, answers: [{text, answer_start}], is_impossible}`.

    Raises:
        UserError: invalid JSON, a missing field, or an answer whose `answer_start` does not
            point at its text in the context (naming the file and question id).
    """
    with open_text(path) as handle:
        try:
            document = json.load(handle)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise UserError(f"{path}: expected a SQuAD-style object with a 'data' list")
    language = _language_from_name(path, spec)
    examples, seen = [], set()
    for article in document["data"]:
        for paragraph in _field(article, "paragraphs", path, "an article", list):
            context = _field(paragraph, "context", path, "a paragraph", str)
            for qa in _field(paragraph, "qas", path, "a paragraph", list):
                example = _read_question(qa, context, path)
                if example["id"] in seen:
                    raise UserError(f"{path}: question id {example['id']!r} appears twice")
                seen.add(example["id"])
                examples.append(example | ({"language": language} if language else {}))
    return _keep_prefix(examples, spec, path)


def _field(obj: Any, key: str, path: Path, what: str, kind: type | None = None) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise UserError(f"{path}: {what} has no {key!r} field")
    if kind is not None and not isinstance(obj[key], kind):
        raise UserError(f"{path}: {what}'s {key!r} must be a {'string' if kind is str else kind.__name__}, got {type(obj[key]).__name__}")
    return obj[key]


def _read_question(qa: dict, context: str, path: Path) -> Example:
    qid = str(_field(qa, "id", path, "a question"))
    where = f"{path}: question {qid!r}"
    if not isinstance(qa.get("question"), str):
        raise UserError(f"{where}: no 'question' field (a string)")
    impossible = bool(qa.get("is_impossible", False))
    answers = qa.get("answers")
    if not isinstance(answers, list) or (not answers and not impossible):
        raise UserError(f"{where}: no answers (and not marked is_impossible)")
    checked = []
    for answer in answers:
        text, start = (answer.get("text"), answer.get("answer_start")) if isinstance(answer, dict) else (None, None)
        if not isinstance(text, str) or not isinstance(start, int) or isinstance(start, bool):
            raise UserError(f"{where}: an answer needs 'text' (string) and 'answer_start' (int)")
        if not 0 <= start <= len(context) or context[start : start + len(text)] != text:
            raise UserError(
                f"{where}: answer {text!r} is not at answer_start {start} "
                f"(context there reads {context[start : start + len(text)]!r})"
            )
        checked.append({"text": text, "answer_start": start})
    return {"id": qid, "context": context, "question": qa["question"], "answers": checked, "is_impossible": impossible}


def _language_from_name(path: Path, spec: TaskSpec) -> str | None:
    pattern = spec.local.options.get("language_pattern") if spec.local else None
    if not pattern:
        return None
    match = re.search(str(pattern), path.name)
    if match is None:
        raise UserError(f"{path}: file name does not match language_pattern {pattern!r} of task {spec.name!r}")
    return match.group(1)


def _keep_prefix(examples: list[Example], spec: TaskSpec, path: Path) -> list[Example]:
    prefix = spec.local.options.get("id_prefix") if spec.local else None
    if not prefix or not any(example["id"].startswith(str(prefix)) for example in examples):
        return examples
    kept = [example for example in examples if example["id"].startswith(str(prefix))]
    logger.info("%s: kept %d of %d questions with id prefix %r", path, len(kept), len(examples), prefix)
    return kept
