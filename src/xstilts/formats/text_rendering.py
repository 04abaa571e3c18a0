"""Examples as input/target text for text-to-text models (T5, mT5, FLAN-T5, mT0), and back.

Default rendering follows the mT5 conventions (task prefix, field names, English label words);
the prefix is the spec's `task_prefix` (its head name unless `text_prefix` says otherwise):

- pair classification: `"{prefix}: premise: {text_a} hypothesis: {text_b}"` when the task is
  NLI-style (its labels include `entailment`), else `"{prefix}: sentence1: ... sentence2: ..."`
  (paraphrase, duplicate questions). The rule reads the labels because every pair reader
  yields the same fields (text_a, text_b) whatever the task; target: the label word;
- single classification: `"{prefix}: sentence: {text_a}"` -> the label word;
- multiple choice: `"{prefix}: context: C question: Q options: (1) A (2) B"` (an empty
  context or question is left out) -> the correct choice's text;
- span QA: `"{prefix}: question: Q context: C"` -> the answer text; an unanswerable question
  -> NO_ANSWER_WORD, only for tasks that allow no answer (see span_qa.allows_no_answer);
- tagging: `"{prefix}: w1 w2 ..."` -> `"TAG1 TAG2 ..."`, one tag word per input word, separated
  by spaces (see `align_tags` for why this form).

A named prompt (`TextToTextConfig.prompt`) replaces the input by its template and, when it has
one, wraps the target in its target template (see tasks/spec.py PROMPT_INPUT_FIELDS).
"""

from __future__ import annotations

from xstilts.data.io import Example
from xstilts.errors import UserError, did_you_mean
from xstilts.formats.span_qa import answers_of
from xstilts.tasks.spec import PROMPT_TARGET_FIELD, Format, Prompt, TaskSpec

NO_ANSWER_WORD = "unanswerable"
# What a word gets when the generated tag sequence cannot be aligned to it (too few tags, an
# unknown tag, garbage): never a label, and seqeval reads it as a chunk of type "unaligned",
# which matches no gold chunk, so it always counts as wrong.
UNALIGNED_TAG = "<unaligned>"

# Longest target in tokens when neither the settings nor the spec say (eos included):
# label words are short; QA answers follow span QA's 30-token limit; a tag sequence is cut
# into chunks that fit (see text_to_text.TextTagging).
DEFAULT_MAX_TARGET_LENGTH: dict[Format, int] = {
    Format.PAIR_CLASSIFICATION: 16,
    Format.SINGLE_CLASSIFICATION: 16,
    Format.MULTIPLE_CHOICE: 64,
    Format.SPAN_QA: 32,
    Format.TAGGING: 128,
}


def max_target_length(spec: TaskSpec) -> int:
    """The spec's `max_target_length`, else the format's default."""
    return spec.max_target_length or DEFAULT_MAX_TARGET_LENGTH[spec.format]


def find_prompt(spec: TaskSpec, name: str | None) -> Prompt | None:
    """The task's prompt called `name` (None: the default rendering).

    Raises:
        UserError: when the task has no such prompt, naming the task, the prompt and its prompts.
    """
    if name is None:
        return None
    if name not in spec.prompts:
        known = ", ".join(sorted(spec.prompts)) or "none"
        raise UserError(
            f"{spec.origin} has no prompt {name!r}{did_you_mean(name, spec.prompts)} (its prompts: {known}); "
            "add one under its `prompts:` or unset text_to_text.prompt"
        )
    return spec.prompts[name]


def is_nli(spec: TaskSpec) -> bool:
    """NLI-style pair tasks (premise/hypothesis) are those with an `entailment` label."""
    return "entailment" in spec.labels


def numbered(choices: list[str]) -> str:
    """`(1) A (2) B`: the choices of a multiple-choice example as one string."""
    return " ".join(f"({number}) {choice}" for number, choice in enumerate(choices, start=1))


def template_fields_of(example: Example, spec: TaskSpec) -> dict[str, str]:
    """The values of every placeholder a prompt of this format may use (PROMPT_INPUT_FIELDS)."""
    if spec.format in (Format.PAIR_CLASSIFICATION, Format.SINGLE_CLASSIFICATION):
        options = ", ".join(spec.label_word(label) for label in spec.labels)
        return {"text_a": example["text_a"], "text_b": example.get("text_b") or "", "options": options}
    if spec.format is Format.MULTIPLE_CHOICE:
        return {"context": example["context"], "question": example["question"], "options": numbered(example["choices"])}
    if spec.format is Format.SPAN_QA:
        return {"question": example["question"], "context": example["context"]}
    if spec.format is Format.TAGGING:
        return {"tokens": " ".join(example["tokens"]), "options": " ".join(spec.label_word(label) for label in spec.labels)}
    raise UserError(f"{spec.origin}: format {spec.format.value} has no text-to-text rendering")


def default_input(example: Example, spec: TaskSpec) -> str:
    """The mT5-style input text (see the module docstring)."""
    fields, prefix = template_fields_of(example, spec), spec.task_prefix
    if spec.format is Format.PAIR_CLASSIFICATION:
        first, second = ("premise", "hypothesis") if is_nli(spec) else ("sentence1", "sentence2")
        return f"{prefix}: {first}: {fields['text_a']} {second}: {fields['text_b']}"
    if spec.format is Format.SINGLE_CLASSIFICATION:
        return f"{prefix}: sentence: {fields['text_a']}"
    if spec.format is Format.MULTIPLE_CHOICE:
        parts = [f"{name}: {example[name]}" for name in ("context", "question") if example[name]]
        return " ".join([f"{prefix}:", *parts, f"options: {fields['options']}"])
    if spec.format is Format.SPAN_QA:
        return f"{prefix}: question: {fields['question']} context: {fields['context']}"
    return f"{prefix}: {fields['tokens']}"


def render_input(example: Example, spec: TaskSpec, prompt: Prompt | None) -> str:
    """The input text of an example (a tagging example may be a chunk: `{"tokens": words}`)."""
    if prompt is None:
        return default_input(example, spec)
    return prompt.input.format(**template_fields_of(example, spec))


def wrap_target(text: str, spec: TaskSpec, prompt: Prompt | None) -> str:
    """A default target text inside the prompt's target template (unchanged without one)."""
    if prompt is None or prompt.target is None:
        return text
    return prompt.target.format(**{PROMPT_TARGET_FIELD[spec.format]: text})


def unwrap_target(output: str, spec: TaskSpec, prompt: Prompt | None) -> str:
    """The default target text inside a generated output: the target template's fixed text
    before and after the placeholder is stripped where present (a model that leaves it out is
    read as it is)."""
    output = output.strip()
    if prompt is None or prompt.target is None:
        return output
    marker = "{" + PROMPT_TARGET_FIELD[spec.format] + "}"
    before, after = (part.replace("{{", "{").replace("}}", "}").strip() for part in prompt.target.split(marker))
    if before and output.startswith(before):
        output = output[len(before) :]
    if after and output.endswith(after):
        output = output[: -len(after)]
    return output.strip()


def tag_sequence(labels: list[str], spec: TaskSpec) -> str:
    """The target of a tagging example (or chunk): one tag word per word, space-separated."""
    return " ".join(spec.label_word(label) for label in labels)


def align_tags(output: str, num_words: int, spec: TaskSpec) -> tuple[list[str], int]:
    """Read a generated tag sequence back into one label per word: (labels, unaligned words).

    The target form is `TAG1 TAG2 ...` (no words copied): the shortest target, learnt by a tiny
    model from positions alone, and one that never asks the model to copy target-language words,
    which is exactly where accidental translation would break a word-matching alignment. The
    i-th whitespace-separated tag belongs to the i-th word. A word without a tag (too few tags)
    or whose tag is not a label word (unknown tag, garbage) gets UNALIGNED_TAG and is counted;
    tags past the last word are ignored. Never raises: every word gets exactly one prediction.
    """
    by_word = {spec.label_word(label): label for label in spec.labels}
    tags = output.split()
    labels = [by_word.get(tags[index], UNALIGNED_TAG) if index < len(tags) else UNALIGNED_TAG for index in range(num_words)]
    return labels, labels.count(UNALIGNED_TAG)


def default_target(example: Example, spec: TaskSpec, allow_no_answer: bool) -> str:
    """The default target text of a labelled example (before any prompt target template)."""
    if spec.format in (Format.PAIR_CLASSIFICATION, Format.SINGLE_CLASSIFICATION):
        return spec.label_word(example["label"])
    if spec.format is Format.MULTIPLE_CHOICE:
        return example["choices"][example["label"]]
    if spec.format is Format.SPAN_QA:
        return answer_target(example, allow_no_answer)
    return tag_sequence(example["labels"], spec)


def answer_target(example: Example, allow_no_answer: bool) -> str:
    """The first gold answer; NO_ANSWER_WORD for an unanswerable question where the task
    allows no answer (elsewhere such a question has no answer text to train on: "")."""
    answers = answers_of(example)
    if example.get("is_impossible") or not answers:
        return NO_ANSWER_WORD if allow_no_answer else ""
    return answers[0]["text"]


def read_answer(output: str, spec: TaskSpec, prompt: Prompt | None, allow_no_answer: bool) -> str:
    """A generated QA output as an answer string ("" for no answer, as span QA decodes it)."""
    answer = unwrap_target(output, spec, prompt)
    return "" if allow_no_answer and answer == NO_ANSWER_WORD else answer
