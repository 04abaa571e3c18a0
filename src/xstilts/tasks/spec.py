"""TaskSpec: a task is data. One YAML entry names its format, labels, languages, data and metric."""

from __future__ import annotations

import string
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, PrivateAttr, ValidationError, model_validator

from xstilts.errors import UserError, did_you_mean


class Format(str, Enum):
    """How a task's examples are featurised, which head it needs and how it is decoded."""

    PAIR_CLASSIFICATION = "pair_classification"
    SINGLE_CLASSIFICATION = "single_classification"
    MULTIPLE_CHOICE = "multiple_choice"
    SPAN_QA = "span_qa"
    TAGGING = "tagging"
    RETRIEVAL = "retrieval"
    MLM = "mlm"
    # T5's pretraining objective (text-to-text mode only): noise spans -> sentinels, predict them.
    SPAN_CORRUPTION = "span_corruption"


class Metric(str, Enum):
    """Scorer-exact metrics (google-research/xtreme evaluate.py), plus token accuracy."""

    ACCURACY = "accuracy"
    SEQEVAL_F1 = "seqeval_f1"
    # Tagging with tags that are not BIO chunks (UD FEATS, CCG supertags): jiant's accuracy.
    TOKEN_ACCURACY = "token_accuracy"
    SQUAD_EM_F1 = "squad_em_f1"
    MLQA_EM_F1 = "mlqa_em_f1"
    BUCC_F1 = "bucc_f1"
    MAP_AT_20 = "map_at_20"


class LocalSource(BaseModel):
    """Files on disk: which reader parses them and where they sit under the task's data dir.

    `path` is a pattern with `{split}` and `{language}` placeholders, relative to the data dir.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    reader: str
    path: str
    options: dict[str, str | int | bool] = Field(default_factory=dict)


class HubSource(BaseModel):
    """The same data through `datasets.load_dataset(id, config)`, mapped to the reader's schema.

    `config` may contain `{language}`; `splits` maps our split names to the hub's;
    `columns` maps our field names to the hub's column names. With `reader`, the hub rows are
    parsed by that local reader instead (written out as jsonl, or csv for a `*_csv` reader),
    for formats whose examples are built from several columns (multiple choice).

    Which languages the hub holds: `languages` where given (the hub's `xtreme` lacks most of
    XTREME-R's additions); else, with `language_configs` and no `config` pattern, exactly the
    languages listed there; else every language of the task. `id_prefixes` serves a config
    that mixes languages in one split (TyDiQA-GoldP): a language's rows are those whose id
    starts with its prefix, and a language without a prefix is not on the hub.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    config: str | None = None
    splits: dict[str, str] = Field(default_factory=dict)
    columns: dict[str, str] = Field(default_factory=dict)
    language_configs: dict[str, str] = Field(default_factory=dict)
    id_prefixes: dict[str, str] = Field(default_factory=dict)
    languages: list[str] | None = None
    reader: str | None = None

    def has_language(self, language: str) -> bool:
        """Whether the hub source holds this language (see the class docstring)."""
        if self.languages is not None and language not in self.languages:
            return False
        if self.id_prefixes and language not in self.id_prefixes:
            return False
        return bool(self.config) or not self.language_configs or language in self.language_configs


# A subset selected on each language's own examples, for tasks whose languages are not parallel
# (MultiCheckList generates each language's cases on its own).
EACH_LANGUAGE = "each"
# Fields that change only what is evaluated, never what is trained: kept out of checkpoint keys.
EVALUATION_ONLY_FIELDS = frozenset({"subsets", "failure_rate"})


class Subset(BaseModel):
    """A named subset of a split's items: `{column, values}` (examples whose field `column` is one
    of `values`), `{ids}` or `{ids_file}` (one example id per line, relative to the task's data
    dir or absolute). An example without an `id` field has its 0-based index as id.

    `language` is where the subset is selected (default: the task's training language); the
    selection is carried by item index to every other language of the split, which must be
    parallel (same item count). `language: each` selects on every language's own examples.
    `splits` limits the splits it is scored on (an ids file usually names test items only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str | None = None
    values: list[str | int | bool] | None = None
    ids: list[str] | None = None
    ids_file: str | None = None
    language: str | None = None
    # The splits it is scored on (default: every split evaluated); ids name one split's items.
    splits: list[str] | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> Subset:
        given = [name for name in ("column", "ids", "ids_file") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a subset needs exactly one of column (with values), ids, ids_file; got {given or 'none'}")
        if (self.column is None) != (self.values is None):
            raise ValueError("column and values go together")
        return self


# Text-to-text mode only (formats/text_rendering.py): how examples become input/target text.
# Kept out of encoder-mode checkpoint keys, since an encoder with heads never reads them.
TEXT_TO_TEXT_FIELDS = frozenset({"prompts", "label_words", "text_prefix", "max_target_length"})

# The `{field}` placeholders a prompt's input template may use, per format: the example's
# fields, plus `options` (classification: the label words joined by ", "; multiple choice: the
# numbered choices; tagging: the tag words joined by " ") and, for tagging, `tokens` (the words).
PROMPT_INPUT_FIELDS: dict[Format, frozenset[str]] = {
    Format.PAIR_CLASSIFICATION: frozenset({"text_a", "text_b", "options"}),
    Format.SINGLE_CLASSIFICATION: frozenset({"text_a", "options"}),
    Format.MULTIPLE_CHOICE: frozenset({"context", "question", "options"}),
    Format.SPAN_QA: frozenset({"question", "context"}),
    Format.TAGGING: frozenset({"tokens", "options"}),
}
# The one placeholder a prompt's target template holds: the default target text (a label word,
# the correct choice's text, the answer, the tag sequence). Nothing else may vary, so that an
# output can be read back by stripping the template's fixed text.
PROMPT_TARGET_FIELD: dict[Format, str] = {
    Format.PAIR_CLASSIFICATION: "label",
    Format.SINGLE_CLASSIFICATION: "label",
    Format.MULTIPLE_CHOICE: "answer",
    Format.SPAN_QA: "answer",
    Format.TAGGING: "tags",
}


def template_fields(template: str) -> list[str]:
    """The `{name}` placeholders of a template, in order (`{{` and `}}` are literal braces).

    Raises:
        ValueError: on an unbalanced brace, or a placeholder with a conversion or format spec
            (`{label!r}`, `{label:>5}`): outputs are read back by stripping the fixed text.
    """
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} takes no conversion or format spec")
        names.append(name)
    return names


class Prompt(BaseModel):
    """A FLAN-style instruction template of one task: `input` (and optionally `target`) with
    `{field}` placeholders (see PROMPT_INPUT_FIELDS, PROMPT_TARGET_FIELD)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    input: str
    target: str | None = None


class TaskSpec(BaseModel):
    """Everything xstilts knows about one task. Language is a field, never a name suffix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int
    format: Format
    metric: Metric
    languages: list[str]
    description: str = ""
    labels: list[str] = Field(default_factory=list)
    # Open inventories (CCG supertags, UD FEATS strings) come from the user's data: a file in
    # the task's data dir, one label per line, appended to `labels` when a run resolves it.
    labels_file: str | None = None
    train_language: str = "en"
    splits: list[str] = Field(default_factory=lambda: ["train", "dev", "test"])
    benchmarks: dict[str, list[str]] = Field(default_factory=dict)
    head: str | None = None
    local: LocalSource | None = None
    hub: HubSource | None = None
    # Evaluation only (EVALUATION_ONLY_FIELDS): subsets scored beside each split ("test/<name>"),
    # and failure_rate = 100 - exact_match rows for behavioural test suites (MultiCheckList).
    subsets: dict[str, Subset] = Field(default_factory=dict)
    failure_rate: bool = False
    # Text-to-text mode only (TEXT_TO_TEXT_FIELDS): named instruction templates, English words
    # for labels that are not words (PAWS "1" -> "yes"), the mT5 task prefix (default: the head
    # name, so tasks sharing a head share it) and the longest target in tokens (default per format).
    prompts: dict[str, Prompt] = Field(default_factory=dict)
    label_words: dict[str, str] = Field(default_factory=dict)
    text_prefix: str | None = None
    max_target_length: PositiveInt | None = None
    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_consistency(self) -> TaskSpec:
        if self.train_language not in self.languages and "train" in self.splits:
            raise ValueError(f"train_language {self.train_language!r} is not in languages")
        for bench, langs in self.benchmarks.items():
            extra = sorted(set(langs) - set(self.languages))
            if extra:
                raise ValueError(f"benchmark {bench!r} lists languages not in languages: {extra}")
        if self.metric is Metric.TOKEN_ACCURACY and self.format is not Format.TAGGING:
            raise ValueError(f"metric token_accuracy scores tagging tasks, not format {self.format.value}")
        if self.format in (Format.PAIR_CLASSIFICATION, Format.SINGLE_CLASSIFICATION, Format.TAGGING):
            if len(self.labels) < 2 and self.labels_file is None:
                raise ValueError(f"format {self.format.value} needs at least two labels")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels contain duplicates")
        if self.local is None and self.hub is None:
            raise ValueError("a task needs a local or a hub source")
        for name, subset in self.subsets.items():
            if not name or "/" in name:
                raise ValueError(f"subset name {name!r} must be non-empty and without '/'")
            if subset.language not in (None, EACH_LANGUAGE, *self.languages):
                raise ValueError(f"subset {name!r}: language {subset.language!r} is not in languages (or {EACH_LANGUAGE!r})")
            if subset.splits is not None and not set(subset.splits) <= set(self.splits):
                raise ValueError(f"subset {name!r}: splits {subset.splits} are not all in splits {self.splits}")
        if self.failure_rate and self.metric not in (Metric.SQUAD_EM_F1, Metric.MLQA_EM_F1):
            raise ValueError("failure_rate (100 - exact_match) needs an exact-match metric (squad_em_f1, mlqa_em_f1)")
        self._check_label_words()
        for name, prompt in self.prompts.items():
            self._check_prompt(name, prompt)
        return self

    def _check_label_words(self) -> None:
        if not self.label_words:
            return
        if self.format not in (Format.PAIR_CLASSIFICATION, Format.SINGLE_CLASSIFICATION, Format.TAGGING):
            raise ValueError(f"label_words: format {self.format.value} has no labels to put into words")
        if self.labels_file is not None:
            raise ValueError("label_words cannot cover labels read from labels_file")
        missing, extra = set(self.labels) - set(self.label_words), set(self.label_words) - set(self.labels)
        if missing or extra:
            raise ValueError(f"label_words must cover exactly the labels: missing {sorted(missing)}, not labels {sorted(extra)}")
        words = list(self.label_words.values())
        if len(set(words)) != len(words) or not all(word.strip() == word and word for word in words):
            raise ValueError("label_words must be distinct, non-empty and without surrounding spaces")
        if self.format is Format.TAGGING and any(len(word.split()) != 1 for word in words):
            raise ValueError("label_words of a tagging task must be single words (a tag sequence is split on spaces)")

    def _check_prompt(self, name: str, prompt: Prompt) -> None:
        """An unknown placeholder is an error naming the task and the prompt."""
        where = f"task {self.name!r}, prompt {name!r}"
        if self.format not in PROMPT_INPUT_FIELDS:
            raise ValueError(f"{where}: format {self.format.value} has no text-to-text prompts")
        checks = [("input", prompt.input, PROMPT_INPUT_FIELDS[self.format])]
        if prompt.target is not None:
            checks.append(("target", prompt.target, frozenset({PROMPT_TARGET_FIELD[self.format]})))
        for part, template, known in checks:
            try:
                fields = template_fields(template)
            except ValueError as exc:
                raise ValueError(f"{where}: {part} template: {exc}") from None
            for field in fields:
                if field not in known:
                    raise ValueError(
                        f"{where}: unknown placeholder {{{field}}} in the {part} template"
                        f"{did_you_mean(field, sorted(known))}; known: {', '.join(sorted(known))}"
                    )
        if prompt.target is not None and template_fields(prompt.target) != [PROMPT_TARGET_FIELD[self.format]]:
            raise ValueError(f"{where}: the target template must hold {{{PROMPT_TARGET_FIELD[self.format]}}} exactly once")

    @property
    def origin(self) -> str:
        """Where this spec was read, for error messages: "FILE: task 'NAME'" (or "task 'NAME'")."""
        return f"{self._source}: task {self.name!r}" if self._source else f"task {self.name!r}"

    def resolve_labels(self, data_dir: Path | None) -> TaskSpec:
        """This spec with `labels_file` read from `data_dir` into `labels` (itself when unset).

        The file's labels follow the spec's own (a catch-all such as CCG's `<UNK>`); blank
        lines are ignored, and a label the spec already lists is not repeated.

        Raises:
            UserError: without a data dir, when the file is missing or not UTF-8, or on a duplicate line.
        """
        if self.labels_file is None:
            return self
        if data_dir is None:
            raise UserError(f"task {self.name!r} reads its labels from {self.labels_file!r}: give its data dir (data.{self.name}=DIR)")
        path = Path(data_dir) / self.labels_file
        if not path.is_file():
            raise UserError(f"{path}: label file of task {self.name!r} not found")
        data = path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise UserError(f"{path}:{line}: label file of task {self.name!r} is not UTF-8 text ({exc.reason})") from None
        labels, seen = list(self.labels), {}
        for number, line in enumerate(text.splitlines(), start=1):
            label = line.strip()
            if not label:
                continue
            if label in seen:
                raise UserError(f"{path}:{number}: label {label!r} repeats line {seen[label]}")
            seen[label] = number
            if label not in labels:
                labels.append(label)
        try:
            resolved = TaskSpec.model_validate({**self.model_dump(), "labels": labels, "labels_file": None})
        except ValidationError as exc:
            raise UserError(f"{path}: labels of task {self.name!r}: {exc.errors()[0]['msg']}") from None
        resolved._source = self._source
        return resolved

    @property
    def task_prefix(self) -> str:
        """The mT5-style task prefix of text-to-text inputs: `text_prefix`, else the head name."""
        return self.text_prefix if self.text_prefix is not None else self.head_name

    def label_word(self, label: str) -> str:
        """The text a label is written as in text-to-text mode (the label itself by default)."""
        return self.label_words.get(label, label)

    @property
    def head_name(self) -> str:
        """The head this task trains: its own, unless it declares a shared one (ANLI+ -> nli)."""
        return self.head or self.name

    @property
    def eval_languages(self) -> list[str]:
        """Every language some benchmark scores (all languages when none is declared).

        A training-only language stays out: English COPA trains XCOPA but has no test labels.
        """
        scored = {language for languages in self.benchmarks.values() for language in languages}
        return [language for language in self.languages if language in scored or not self.benchmarks]

    def languages_for(self, benchmark: str | None) -> list[str]:
        """The languages scored for a benchmark (all languages when benchmark is None)."""
        if benchmark is None:
            return list(self.languages)
        return list(self.benchmarks.get(benchmark, []))
