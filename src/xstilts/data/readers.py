"""The reader registry: reader name (as task specs write it) -> the function that reads it.

Entries are "module:function" strings imported on first use, so a reader module is only
loaded when a task needs it, and adding a reader is one line here plus its module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from xstilts.data.io import Example
from xstilts.errors import UserError, did_you_mean
from xstilts.tasks.spec import TaskSpec

Reader = Callable[[Path, TaskSpec], list[Example]]

READERS: dict[str, str] = {
    "mnli_jsonl": "xstilts.data.pair:read_mnli_jsonl",
    "xtreme_pair_tsv": "xstilts.data.pair:read_xtreme_pair_tsv",
    "single_tsv": "xstilts.data.pair:read_single_tsv",
    "xtreme_tagging_tsv": "xstilts.data.tagging:read_xtreme_tagging_tsv",
    "conllu": "xstilts.data.tagging:read_conllu",
    "squad_json": "xstilts.data.qa:read_squad_json",
    "copa_jsonl": "xstilts.data.choice:read_copa_jsonl",
    "hellaswag_jsonl": "xstilts.data.choice:read_hellaswag_jsonl",
    "cosmosqa_csv": "xstilts.data.choice:read_cosmosqa_csv",
    "commonsenseqa_jsonl": "xstilts.data.choice:read_commonsenseqa_jsonl",
    "siqa_jsonl": "xstilts.data.choice:read_siqa_jsonl",
    "tatoeba_v1": "xstilts.data.retrieval:read_tatoeba_v1",
    "bucc": "xstilts.data.retrieval:read_bucc",
    "xquad_r_json": "xstilts.data.retrieval:read_xquad_r_json",
    "mewslix_jsonl": "xstilts.data.retrieval:read_mewslix_jsonl",
    "snli_jsonl": "xstilts.data.nli:read_snli_jsonl",
    "anli_jsonl": "xstilts.data.nli:read_anli_jsonl",
    "qqp_tsv": "xstilts.data.nli:read_qqp_tsv",
    "paws_tsv": "xstilts.data.nli:read_paws_tsv",
    "ccg_tsv": "xstilts.data.ccg:read_ccg_tsv",
    "text_lines": "xstilts.formats.mlm:read_text_lines",
    "multichecklist_tsv": "xstilts.data.multichecklist:read_multichecklist",
}


def get_reader(name: str, spec: TaskSpec) -> Reader:
    if name not in READERS:
        raise UserError(f"task {spec.name!r}: unknown reader {name!r}{did_you_mean(name, READERS)}")
    module, function = READERS[name].split(":")
    return getattr(importlib.import_module(module), function)
