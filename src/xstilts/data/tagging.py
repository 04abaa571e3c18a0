"""Readers for token-tagging files: the XTREME tsv layout (UDPOS, PAN-X) and CoNLL-U (UD originals).

Both return examples `{"id", "tokens": list[str], "labels": list[str]}` with one label per
token, every label checked against the task's label list. A token without a label in a
labelled file is an error, never a silently blank label, and a file whose labels are all
placeholders is refused (placeholder test labels scored as real: xtreme issue #24). An XTREME
test file of tokens only (labels withheld) is read as unlabelled: `labels` is None, and such
examples are only predicted on, never trained on or scored.
"""

from __future__ import annotations

import re
from pathlib import Path

from xstilts.data.io import Example, check_label, check_new_id, numbered_lines, resolve_pattern
from xstilts.errors import UserError, did_you_mean
from xstilts.metrics import check_labelled
from xstilts.tasks.spec import TaskSpec

# CoNLL-U columns a tag can be read from (0-based): UPOS by default, FEATS for morphology.
CONLLU_COLUMNS = {"upos": 3, "xpos": 4, "feats": 5}
_CONLLU_WORD_ID = re.compile(r"[1-9][0-9]*")
_CONLLU_SKIPPED_ID = re.compile(r"[1-9][0-9]*-[1-9][0-9]*|[0-9]+\.[1-9][0-9]*")
_LANGUAGE_PREFIX = re.compile(r"([a-z]{2,3}):")


def _file_prefix(sentences: list[list[tuple[int, str, str | None]]], spec: TaskSpec) -> str:
    """`xx:` when every token of the file carries the same language prefix (raw PAN-X), else ''.

    Deciding per file, not per token, keeps real tokens such as `en:` or `de:Paris` in a
    file without prefixes intact.
    """
    first = _LANGUAGE_PREFIX.match(sentences[0][0][1]) if sentences else None
    if first is None or first.group(1) not in spec.languages:
        return ""
    prefix = first.group(0)
    tokens = (token for sentence in sentences for _, token, _ in sentence)
    return prefix if all(token.startswith(prefix) for token in tokens) else ""


def _check_labelled(examples: list[Example], path: Path) -> None:
    # An empty file is left to the loader, which names it as having no examples.
    if examples:
        check_labelled([example["labels"] for example in examples], str(path))


def _tsv_sentences(path: Path) -> list[list[tuple[int, str, str | None]]]:
    """Sentences of (line number, token, label or None) from `token\\tlabel` lines."""
    sentences: list[list[tuple[int, str, str | None]]] = []
    current: list[tuple[int, str, str | None]] = []
    for number, line in numbered_lines(path):
        if not line.strip():
            if current:
                sentences.append(current)
                current = []
            continue
        fields = line.split("\t")
        if len(fields) > 2:
            raise UserError(f"{path}:{number}: expected `token<TAB>label`, got {len(fields)} tab-separated fields")
        if not fields[0].strip():
            raise UserError(f"{path}:{number}: empty token")
        current.append((number, fields[0], fields[1] if len(fields) == 2 else None))
    if current:
        sentences.append(current)
    return sentences


def read_xtreme_tagging_tsv(path: Path, spec: TaskSpec) -> list[Example]:
    """UDPOS / PAN-X in the XTREME layout: `token\\tlabel` per line, a blank line between sentences.

    A `lang:` prefix on every token (raw PAN-X, e.g. `en:Paris`) is stripped when `lang` is
    one of the task's languages. A file of tokens only (XTREME's test files) is unlabelled:
    every example's `labels` is None; a file mixing both kinds of line is an error.
    """
    path = resolve_pattern(path)
    sentences = _tsv_sentences(path)
    prefix = _file_prefix(sentences, spec)
    labelled = bool(sentences) and sentences[0][0][2] is not None
    examples = []
    for index, sentence in enumerate(sentences):
        tokens, labels = [], []
        for number, token, label in sentence:
            if (label is not None) != labelled:
                raise UserError(
                    f"{path}:{number}: token without a label; unlabelled data has no label on any line"
                    if labelled else f"{path}:{number}: a label in a file whose first token has none (unlabelled data)"
                )
            tokens.append(token[len(prefix):])
            if labelled:
                labels.append(check_label(label, spec, f"{path}:{number}"))
        examples.append({"id": f"{path.name}-{index}", "tokens": tokens, "labels": labels if labelled else None})
    if labelled:
        _check_labelled(examples, path)
    return examples


def _conllu_column(spec: TaskSpec) -> int:
    name = str(spec.local.options.get("column", "upos")) if spec.local else "upos"
    if name not in CONLLU_COLUMNS:
        raise UserError(
            f"task {spec.name!r}, key 'local.options.column': unknown CoNLL-U column {name!r}"
            f"{did_you_mean(name, CONLLU_COLUMNS)}; expected one of {list(CONLLU_COLUMNS)}"
        )
    return CONLLU_COLUMNS[name]


def read_conllu(path: Path, spec: TaskSpec) -> list[Example]:
    """CoNLL-U (`.conllu` or `.conllu.gz`): one example per sentence, one label per syntactic word.

    Multiword-token ranges (`1-2`) and empty nodes (`1.1`) are skipped, as in XTREME's UDPOS
    preprocessing. The label is UPOS (column 4) unless the spec sets `local.options.column`
    to `feats` (column 6, the whole FEATS string, `_` for none) or `xpos`.
    """
    path = resolve_pattern(path)
    column = _conllu_column(spec)
    examples: list[Example] = []
    tokens: list[str] = []
    labels: list[str] = []
    sent_id, seen = None, {}

    def finish() -> None:
        if tokens:
            examples.append({"id": sent_id or f"{path.name}-{len(examples)}", "tokens": tokens[:], "labels": labels[:]})
        tokens.clear()
        labels.clear()

    for number, line in numbered_lines(path):
        if not line.strip():
            finish()
            sent_id = None
        elif line.startswith("#"):
            if line.startswith("# sent_id = "):
                sent_id = line[len("# sent_id = "):].strip()
                if sent_id:
                    check_new_id(seen, sent_id, f"{path}:{number}")
        else:
            fields = line.split("\t")
            where = f"{path}:{number}"
            if len(fields) != 10:
                raise UserError(f"{where}: expected 10 tab-separated CoNLL-U columns, got {len(fields)}")
            if _CONLLU_SKIPPED_ID.fullmatch(fields[0]):
                continue
            if not _CONLLU_WORD_ID.fullmatch(fields[0]):
                raise UserError(f"{where}: invalid CoNLL-U word ID {fields[0]!r}")
            tokens.append(fields[1])
            labels.append(check_label(fields[column], spec, where))
    finish()
    _check_labelled(examples, path)
    return examples
