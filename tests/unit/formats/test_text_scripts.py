"""QA output diagnostics: answers in the wrong script (accidental translation), not in the context."""

import pytest

from xstilts.formats.text_scripts import context_scripts, in_wrong_script, qa_diagnostics, script_of

RU = "Москву основал Юрий Долгорукий в 1147 году, пишет Reuters."


def test_script_of_letters_only():
    assert [script_of(char) for char in "Жa7 東あア한"] == ["CYRILLIC", "LATIN", None, None, "CJK", "HIRAGANA", "KATAKANA", "HANGUL"]


def test_context_scripts_need_a_share_of_the_letters():
    assert context_scripts(RU) == {"CYRILLIC", "LATIN"}  # 7 Latin letters of 48: over 5%
    assert context_scripts("Москву основал Юрий Долгорукий в году, пишет X.") == {"CYRILLIC"}  # 1 of 40
    assert context_scripts("東京はカタカナで書く") == {"CJK", "HIRAGANA", "KATAKANA"}


@pytest.mark.parametrize(
    "answer, wrong",
    [
        ("Юрий Долгорукий", False),  # copied
        ("Yuri Dolgoruky", False),  # Latin is 7/48 of this context's letters: one of its scripts
        ("1147", False),  # no letters
        ("Юрий Dolgoruky", False),  # half and half is not "mostly"
    ],
)
def test_in_wrong_script_with_a_mixed_context(answer, wrong):
    assert in_wrong_script(answer, RU) is wrong


def test_qa_diagnostics_hand_computed():
    context = "Москву основал Юрий Долгорукий в 1147 году."
    examples = [{"context": context}] * 6
    predictions = [
        "Юрий Долгорукий",  # in context
        "Yuri Dolgoruky",  # wrong script, not in context
        "в 1147 году",  # in context
        "году 1147",  # same script, not in context
        "",  # no answer: not counted
        "1147",  # in context, no letters
    ]
    # 5 non-empty answers: 1 in the wrong script, 2 not in the context
    assert qa_diagnostics(predictions, examples) == {"wrong_script": 20.0, "not_in_context": 40.0}
    assert qa_diagnostics(["", ""], examples[:2]) == {"wrong_script": 0.0, "not_in_context": 0.0}
