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
- tagging: `"{prefix}: w1 w2 ..."` -> `"w1 TAG1 w2 TAG2 ..."`, each word echoed before its tag
  word (see text_tagging for why this form, `align_tags` for how it is read back).

A named prompt (`TextToTextConfig.prompt`) replaces the input by its template and, when it has
one, wraps the target in its target template (see tasks/spec.py PROMPT_INPUT_FIELDS).
"""

from __future__ import annotations

import difflib

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


def tag_sequence(words: list[str], labels: list[str], spec: TaskSpec) -> str:
    """The target of a tagging example (or chunk): each word echoed, then its tag word.

    Example: words `Ada sleeps`, labels `PROPN VERB` -> `"Ada PROPN sleeps VERB"`.
    """
    return " ".join(f"{word} {spec.label_word(label)}" for word, label in zip(words, labels, strict=True))


def tagged_segments(output: str, words: list[str], spec: TaskSpec) -> list[tuple[str, str | None]]:
    """A generated `w1 TAG1 w2 TAG2 ...` as (echoed word, tag word or None) pairs.

    Pieces are whitespace-separated. A piece after an echoed word is its tag when it is a label
    word; an input word there means the tag was left out (the piece starts the next pair), any
    other piece is an unknown tag. So a word that is itself a label word (`O`) is read as a
    word where a word is due, and one bad piece costs one pair.
    """
    tag_words = {spec.label_word(label) for label in spec.labels}
    known = set(words)
    segments: list[tuple[str, str | None]] = []
    echoed: str | None = None
    for piece in output.split():
        if echoed is None:
            echoed = piece
        elif piece in tag_words:
            segments.append((echoed, piece))
            echoed = None
        else:
            segments.append((echoed, None))
            echoed = piece if piece in known else None
    if echoed is not None:
        segments.append((echoed, None))
    return segments


def align_tags(output: str, words: list[str], spec: TaskSpec) -> tuple[list[str], int]:
    """Read a generated `w1 TAG1 w2 TAG2 ...` back into one label per word: (labels, unaligned words).

    Each (echoed word, tag) pair is given to an input word in three passes: (1) echoed words
    matching the input words in order (difflib.SequenceMatcher); (2) an input word still
    without a pair takes the first unused pair that echoes it, wherever it is, since the echo
    names the word a tag belongs to (a tiny model often writes the right pairs in the wrong
    order; order only breaks ties between repeated words); (3) between matches, a run of
    mis-echoed words takes the unused pairs of its run that echo no input word, in order, when
    there are as many of them as words (a mis-copied or translated word keeps its place). A dropped, repeated or invented pair thus costs only the words it touches, never
    a shift of every later tag (which is what reading bare tags by position costs). Any other
    word (too few pairs, an unknown or missing tag, garbage, an empty output) gets
    UNALIGNED_TAG and is counted. Never raises: every word gets exactly one prediction.
    """
    by_word = {spec.label_word(label): label for label in spec.labels}
    segments = tagged_segments(output, words, spec)
    known = set(words)
    owner: list[int | None] = [None] * len(words)  # the pair each word takes
    matcher = difflib.SequenceMatcher(None, [echoed for echoed, _ in segments], words, autojunk=False)
    opcodes = matcher.get_opcodes()
    for operation, first, _, first_word, last_word in opcodes:
        if operation == "equal":
            owner[first_word:last_word] = range(first, first + last_word - first_word)
    for index, word in enumerate(words):
        if owner[index] is None:
            owner[index] = next((pair for pair, (echoed, _) in enumerate(segments) if echoed == word and pair not in owner), None)
    for operation, first, last, first_word, last_word in opcodes:
        free_pairs = [pair for pair in range(first, last) if pair not in owner and segments[pair][0] not in known]
        free_words = [index for index in range(first_word, last_word) if owner[index] is None]
        if operation == "replace" and len(free_pairs) == len(free_words):
            for index, pair in zip(free_words, free_pairs):
                owner[index] = pair
    labels = [UNALIGNED_TAG if pair is None else by_word.get(segments[pair][1], UNALIGNED_TAG) for pair in owner]
    return labels, labels.count(UNALIGNED_TAG)


def default_target(example: Example, spec: TaskSpec, allow_no_answer: bool) -> str:
    """The default target text of a labelled example (before any prompt target template)."""
    if spec.format in (Format.PAIR_CLASSIFICATION, Format.SINGLE_CLASSIFICATION):
        return spec.label_word(example["label"])
    if spec.format is Format.MULTIPLE_CHOICE:
        return example["choices"][example["label"]]
    if spec.format is Format.SPAN_QA:
        return answer_target(example, allow_no_answer)
    return tag_sequence(example["tokens"], example["labels"], spec)


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
