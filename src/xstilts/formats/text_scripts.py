"""Diagnostics of generated QA answers: accidental translation and answers not from the text.

Zero-shot mT5 often answers in English, or rewrites the answer, instead of copying it from a
target-language context. Two shares over the non-empty answers show it, in percent:

- `wrong_script`: answers whose letters are mostly in a script the context barely uses. A
  letter's script is the first word of its Unicode name (LATIN, CYRILLIC, CJK, HIRAGANA, ...);
  a script is the context's when it covers at least MIN_CONTEXT_SHARE of the context's letters
  (so Japanese, which mixes CJK, hiragana and katakana, has all three). An answer copied from
  the context is never counted (a Latin name quoted in a Russian text is the right answer);
  an answer without letters (digits, punctuation) neither.
- `not_in_context`: answers that are not a substring of the context.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

from xstilts.data.io import Example

MIN_CONTEXT_SHARE = 0.05


def script_of(char: str) -> str | None:
    """The script of a letter, from its Unicode name; None for anything that is not a letter.

    Example:
        >>> script_of("ж"), script_of("a"), script_of("7")
        ('CYRILLIC', 'LATIN', None)
    """
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else None


def script_counts(text: str) -> Counter:
    """How many letters of each script the text has."""
    return Counter(script for script in map(script_of, text) if script is not None)


def context_scripts(context: str) -> set[str]:
    """The scripts that make up at least MIN_CONTEXT_SHARE of the context's letters."""
    counts = script_counts(context)
    total = sum(counts.values())
    return {script for script, count in counts.items() if count >= MIN_CONTEXT_SHARE * total}


def in_wrong_script(answer: str, context: str) -> bool:
    """Whether most letters of a (non-copied) answer are in scripts that are not the context's."""
    if answer in context:
        return False
    counts = script_counts(answer)
    total = sum(counts.values())
    if not total:
        return False
    own = context_scripts(context)
    return sum(count for script, count in counts.items() if script not in own) > total / 2


def qa_diagnostics(predictions: list[str], examples: list[Example]) -> dict[str, float]:
    """`wrong_script` and `not_in_context` in percent of the non-empty answers (0 when none)."""
    pairs = [(answer, example["context"]) for answer, example in zip(predictions, examples, strict=True) if answer]
    if not pairs:
        return {"wrong_script": 0.0, "not_in_context": 0.0}
    return {
        "wrong_script": 100.0 * sum(in_wrong_script(answer, context) for answer, context in pairs) / len(pairs),
        "not_in_context": 100.0 * sum(answer not in context for answer, context in pairs) / len(pairs),
    }
