"""Readers for the English intermediate-task pair files: SNLI and ANLI (jsonl), QQP and PAWS (tsv).

All return pair-classification examples `{"id", "text_a", "text_b", "label"}`.

- SNLI 1.0 jsonl: `sentence1, sentence2, gold_label`. Pairs whose gold_label is `-` (the five
  annotators reached no majority: 785 of 550,152 train pairs) are skipped, as every SNLI
  baseline does; how many were skipped is logged.
- ANLI jsonl: `uid, context, hypothesis, label` with labels `e/n/c`. The official release
  puts each round in its own folder (`R1/train.jsonl`, `R2/...`, `R3/...`); the spec option
  `rounds: "R1 R2 R3"` reads the same file name in each of those sibling folders, in order.
- GLUE QQP tsv: header `id qid1 qid2 question1 question2 is_duplicate`, no quoting.
- PAWS `labeled_final` tsv: header `id sentence1 sentence2 label`, no quoting.

The official GLUE QQP train.tsv has a few lines broken by stray newlines inside questions.
A row with the wrong number of fields or a label that is not 0/1 is an error naming its
line, unless the spec sets `local.options.skip_malformed: true` (the shipped qqp spec
does): then such rows are skipped and counted in the log.
"""

from __future__ import annotations

import logging
from pathlib import Path

from xstilts.data.io import Example, check_label, check_new_id, jsonl_rows, numbered_lines
from xstilts.data.pair import extra_columns
from xstilts.errors import UserError
from xstilts.tasks.spec import TaskSpec

logger = logging.getLogger(__name__)

SNLI_NO_CONSENSUS = "-"
ANLI_LABELS = {"e": "entailment", "n": "neutral", "c": "contradiction"}
QQP_HEADER = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
PAWS_HEADER = ["id", "sentence1", "sentence2", "label"]


def read_snli_jsonl(path: Path, spec: TaskSpec) -> list[Example]:
    """SNLI 1.0 jsonl; pairs without annotator consensus (gold_label `-`) are skipped and counted."""
    examples, skipped = [], 0
    for where, row in jsonl_rows(path, ("sentence1", "sentence2", "gold_label")):
        if row["gold_label"] == SNLI_NO_CONSENSUS:
            skipped += 1
            continue
        examples.append(
            {
                "id": str(row.get("pairID", f"{path.name}-{where.rsplit(':', 1)[1]}")),
                "text_a": str(row["sentence1"]),
                "text_b": str(row["sentence2"]),
                "label": check_label(row["gold_label"], spec, where),
            }
        )
    if skipped:
        logger.info("%s: skipped %d pairs without gold label consensus ('-')", path, skipped)
    return examples


def anli_round_paths(path: Path, spec: TaskSpec) -> list[Path]:
    """The files one split is read from: `path` itself, or its name in every `rounds` folder."""
    rounds = str(spec.local.options.get("rounds", "")).split() if spec.local else []
    return [path.parent.parent / name / path.name for name in rounds] or [path]


def read_anli_jsonl(path: Path, spec: TaskSpec) -> list[Example]:
    """ANLI jsonl (`uid, context, hypothesis, label` with e/n/c), every round the spec lists."""
    examples, seen = [], {}
    for round_path in anli_round_paths(path, spec):
        for where, row in jsonl_rows(round_path, ("uid", "context", "hypothesis", "label")):
            label = str(row["label"])
            if label not in ANLI_LABELS:
                raise UserError(f"{where}: unknown ANLI label {label!r}; expected one of {sorted(ANLI_LABELS)}")
            check_new_id(seen, str(row["uid"]), where)
            examples.append(
                {
                    "id": str(row["uid"]),
                    "text_a": str(row["context"]),
                    "text_b": str(row["hypothesis"]),
                    "label": check_label(ANLI_LABELS[label], spec, where),
                }
            )
    return examples


def _tsv_pairs(path: Path, spec: TaskSpec, header: list[str], columns: tuple[str, str, str, str]) -> list[Example]:
    """Rows of a headed tsv as pair examples; `columns` names the id, text_a, text_b and label columns."""
    skip = bool(spec.local.options.get("skip_malformed", False)) if spec.local else False
    extras = list(extra_columns(spec))  # named in the header after the label, kept as example fields
    lines = numbered_lines(path)
    first = next(lines, None)
    if first is not None and extras and first[1].split("\t") == header:
        extras = []  # this file lacks them (the spec's other files may have them)
    header = [*header, *extras]
    if first is None or first[1].split("\t") != header:
        raise UserError(f"{path}:1: expected the header {' '.join(header)!r}")
    index = [header.index(name) for name in columns]
    examples, malformed, seen = [], 0, {}
    for number, line in lines:
        if not line.strip():
            continue
        where = f"{path}:{number}"
        fields = line.split("\t")
        problem = None
        if len(fields) != len(header):
            problem = f"expected {len(header)} tab-separated fields, got {len(fields)}"
        elif fields[index[3]] not in ("0", "1"):
            problem = f"label {fields[index[3]]!r} is not 0 or 1"
        if problem and skip:
            malformed += 1
            continue
        if problem:
            raise UserError(f"{where}: malformed row: {problem} (set local.options.skip_malformed: true to skip such rows)")
        row_id, text_a, text_b, label = (fields[i] for i in index)
        check_new_id(seen, row_id, where)
        example = {"id": row_id, "text_a": text_a, "text_b": text_b, "label": check_label(int(label), spec, where)}
        example.update((name, fields[header.index(name)]) for name in extras)
        examples.append(example)
    if malformed:
        logger.info("%s: skipped %d malformed rows", path, malformed)
    return examples


def read_qqp_tsv(path: Path, spec: TaskSpec) -> list[Example]:
    """GLUE QQP tsv (`id qid1 qid2 question1 question2 is_duplicate`); label index 0/1."""
    return _tsv_pairs(path, spec, QQP_HEADER, ("id", "question1", "question2", "is_duplicate"))


def read_paws_tsv(path: Path, spec: TaskSpec) -> list[Example]:
    """PAWS English `labeled_final` tsv (`id sentence1 sentence2 label`); label index 0/1."""
    return _tsv_pairs(path, spec, PAWS_HEADER, ("id", "sentence1", "sentence2", "label"))
