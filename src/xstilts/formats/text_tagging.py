"""Tagging as text-to-text: `"{prefix}: w1 w2 ..."` -> `"w1 TAG1 w2 TAG2 ..."`, aligned back to the words.

Why the words are echoed: T5 has no absolute positions, and its cross-attention is by content
alone, so a target of bare tags (`TAG1 TAG2 ...`, read back by position) asks the decoder to
count input words; a tiny T5 then learns which tags occur but not in which order. With each
word echoed before its tag, the tag follows from the word the decoder has just written, and
reading back by the echo (`align_tags`) no longer depends on the order: a tiny model that
writes the right pairs in a shuffled order still scores. Measured through the training loop on
the e2e fixture (tests/fixtures_formats.py `write_pos`; tiny T5 of models.tiny.build_tiny_t5,
d_model 64, 2 layers, Unigram tokenizer of 300 pieces, dropout 0.1; batch 16, lr 3e-3,
English dev seqeval F1 / unaligned words, 2 CPU threads):

    target (read back by)                           400 steps      600-1,000 steps
    TAG1 TAG2 ... (position)                        29.3           ~27 (1,000)
    <extra_id_0> TAG1 <extra_id_1> TAG2 ... (*)     28.2 / 0%      28.9 / 0% (1,000)
    <extra_id_0> w1 TAG1 <extra_id_1> ... (*)       17.8           -
    w1 TAG1 w2 TAG2 ... (echo, in order only)       53.8 / 45%     60.6 (800)
    w1 TAG1 w2 TAG2 ... (echo, this module)         78.5 / 19%     83.3 / 14% (600)

(*) the same sentinels before each input word. Sentinels give the decoder an anchor it does
write in order, but the tags after them come out as shuffled as bare tags: the encoder would
first have to move each word (several sentencepiece pieces) onto its sentinel, and a pair
`<extra_id_k> TAG` names no word, so the order cannot be repaired when reading back. They
would also need sentinels kept through decoding and a words-per-chunk limit; the echo form is
the only one. Zero-shot (German, French dev), the same tiny model often echoes the English
word for a foreign one (accidental translation): those words stay unaligned (~70%) unless the
pairs around them line up, which `unaligned_words` makes visible.

The echo is read back by matching the echoed words to the input words (`align_tags`), so a
dropped or invented pair costs only the words it touches, and a mis-copied word still takes
its tag where the pairs around it line up. A word whose tag cannot be read gets the catch-all
UNALIGNED_TAG, counted as `unaligned_words`.

A sentence whose input or target would not fit is never truncated (jiant #1169): its words are
cut into consecutive chunks whose input fits max_length and whose target fits the target
length, counted with the widest tag word for every word (so labelled and unlabelled data are
cut alike). Chunks of one sentence share `example_index` and record their words
(`word_start`, `word_end`); each word is in exactly one chunk, and alignment gives every word
exactly one prediction.
"""

from __future__ import annotations

import logging

import torch
from transformers import PreTrainedTokenizerBase

from xstilts.config.schema import Precision
from xstilts.data.io import Example
from xstilts.formats.base import Feature
from xstilts.formats.tagging import TAGGING
from xstilts.formats.text_rendering import (
    UNALIGNED_TAG,
    align_tags,
    find_prompt,
    max_target_length,
    render_input,
    tag_sequence,
    unwrap_target,
    wrap_target,
)
from xstilts.formats.text_to_text import TextToTextFormat, encode_texts
from xstilts.tasks.spec import Prompt, TaskSpec

logger = logging.getLogger(__name__)


class ChunkBudget:
    """Where a sentence is cut, and how its chunks are rendered.

    Token costs per word decide the cuts (the word in the input; the word and the widest tag
    word in the target); each chunk is then rendered, checked, and halved until it fits.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, prompt: Prompt | None, max_length: int):
        self.tokenizer, self.spec, self.prompt, self.max_length = tokenizer, spec, prompt, max_length
        self.target_length = max_target_length(spec)
        self.widest = max(spec.labels, key=lambda label: self._count(spec.label_word(label)))
        self.tag_cost = self._count(spec.label_word(self.widest))
        self.input_room = max_length - self._count(render_input({"tokens": []}, spec, prompt), special=True)
        self.target_room = self.target_length - self._count(wrap_target("", spec, prompt), special=True)

    def _count(self, text: str, special: bool = False) -> int:
        return len(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def input_text(self, words: list[str]) -> str:
        return render_input({"tokens": words}, self.spec, self.prompt)

    def target_text(self, words: list[str], labels: list[str]) -> str:
        return wrap_target(tag_sequence(words, labels, self.spec), self.spec, self.prompt)

    def chunks(self, words: list[str]) -> list[tuple[int, int]]:
        """Consecutive [start, end) word ranges; a chunk holds at least one word."""
        spans, start, used_input, used_target = [], 0, 0, 0
        for index, word in enumerate(words):
            cost = max(self._count(word), 1)
            fits = used_input + cost <= self.input_room and used_target + cost + self.tag_cost <= self.target_room
            if index > start and not fits:
                spans.append((start, index))
                start, used_input, used_target = index, 0, 0
            used_input, used_target = used_input + cost, used_target + cost + self.tag_cost
        if words:
            spans.append((start, len(words)))
        return [piece for span in spans for piece in self._fitted(words, span)]

    def _fitted(self, words: list[str], span: tuple[int, int]) -> list[tuple[int, int]]:
        """The span, halved until its rendered input and target fit (words counted alone may
        tokenise differently in context); a single word that is too long on its own is truncated."""
        start, end = span
        chunk = words[start:end]
        fits = self._count(self.input_text(chunk), special=True) <= self.max_length and (
            self._count(self.target_text(chunk, [self.widest] * len(chunk)), special=True) <= self.target_length
        )
        if end - start == 1 or fits:
            return [span]
        middle = (start + end) // 2
        return self._fitted(words, (start, middle)) + self._fitted(words, (middle, end))


class TextTagging(TextToTextFormat):
    """Tagging: words -> each word echoed with its tag word."""

    version = 2

    def featurize(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, max_length: int
    ) -> list[Feature]:
        prompt = find_prompt(spec, self.settings.prompt)
        budget = ChunkBudget(tokenizer, spec, prompt, max_length)
        inputs, targets, owners = [], [], []
        for example_index, example in enumerate(examples):
            words, labels = example["tokens"], example["labels"]
            for start, end in budget.chunks(words):
                inputs.append(budget.input_text(words[start:end]))
                targets.append(None if labels is None else budget.target_text(words[start:end], labels[start:end]))
                owners.append((example_index, start, end))
        extras = [{"example_index": index, "word_start": start, "word_end": end} for index, start, end in owners]
        return encode_texts(
            inputs, targets, tokenizer, max_length=max_length, target_length=max_target_length(spec), extras=extras
        )

    def predict(
        self, model, features: list[Feature], examples: list[Example], spec: TaskSpec, *,
        tokenizer: PreTrainedTokenizerBase, device: torch.device, precision: Precision, batch_size: int,
    ) -> list[list[str]]:
        """One tag per word of every example, from the generated word/tag pairs of each chunk."""
        prompt = find_prompt(spec, self.settings.prompt)
        outputs = self._generate(model, features, spec, tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size)
        predictions: list[list[str | None]] = [[None] * len(example["tokens"]) for example in examples]
        unaligned = 0
        for output, feature in zip(outputs, features, strict=True):
            start, end = feature["word_start"], feature["word_end"]
            words = examples[feature["example_index"]]["tokens"][start:end]
            tags, missed = align_tags(unwrap_target(output, spec, prompt), words, spec)
            predictions[feature["example_index"]][start:end] = tags
            unaligned += missed
        for index, sentence in enumerate(predictions):
            if None in sentence:
                raise RuntimeError(f"example {examples[index].get('id')!r}: word {sentence.index(None)} is in no chunk")
        if unaligned:
            total = sum(len(sentence) for sentence in predictions)
            logger.warning("task %s: %d of %d words could not be aligned to a generated tag (%s)", spec.name, unaligned, total, UNALIGNED_TAG)
        return predictions

    def score(self, predictions: list, examples: list[Example], spec: TaskSpec) -> dict[str, float]:
        """The tagging metric (seqeval F1 or token accuracy), then `unaligned_words` in percent."""
        total = sum(len(sentence) for sentence in predictions)
        unaligned = sum(tag == UNALIGNED_TAG for sentence in predictions for tag in sentence)
        return TAGGING.score(predictions, examples, spec) | {"unaligned_words": 100.0 * unaligned / max(total, 1)}
