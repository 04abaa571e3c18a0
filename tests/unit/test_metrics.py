"""Scorer-exact metrics: hand-computed values, including the official scripts' edge cases."""

from __future__ import annotations

import pytest

from xstilts.errors import UserError
from xstilts import metrics


def test_accuracy_is_a_fraction():
    assert metrics.accuracy(["a", "b", "c", "a"], ["a", "b", "a", "b"]) == 0.5


@pytest.mark.parametrize(("predictions", "labels"), [(["a"], ["a", "b"]), ([], [])])
def test_accuracy_rejects_mismatched_or_empty(predictions, labels):
    with pytest.raises(UserError):
        metrics.accuracy(predictions, labels)


def test_tatoeba_accuracy_compares_index_strings():
    # "07" is not "7": the official scorer compares the stripped lines as strings.
    assert metrics.tatoeba_accuracy(["3", "07", "1"], ["3", "7", "2"]) == pytest.approx(1 / 3)


def test_seqeval_ner_entity_level():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG"]]
    # gold entities PER, LOC, ORG; predicted PER, ORG, ORG -> 2 of 3 right on both sides.
    assert metrics.seqeval_precision(pred, gold) == pytest.approx(2 / 3)
    assert metrics.seqeval_recall(pred, gold) == pytest.approx(2 / 3)
    assert metrics.seqeval_f1(pred, gold) == pytest.approx(2 / 3)


def test_seqeval_partial_span_scores_nothing():
    assert metrics.seqeval_f1([["B-PER", "O"]], [["B-PER", "I-PER"]]) == 0.0


def test_seqeval_reads_pos_tags_as_chunks():
    # seqeval treats the first letter as the chunk prefix: NOUN NOUN is one "OUN" chunk, so a
    # tagger that gets one of the two nouns right earns nothing for them.
    assert metrics.seqeval_f1([["NOUN", "VERB", "VERB"]], [["NOUN", "NOUN", "VERB"]]) == 0.0
    assert metrics.seqeval_f1([["DET", "NOUN", "VERB"]], [["DET", "NOUN", "VERB"]]) == 1.0
    # CCONJ and SCONJ both become chunk type "CONJ", so confusing them costs nothing.
    assert metrics.seqeval_f1([["SCONJ"]], [["CCONJ"]]) == 1.0


def test_token_accuracy_counts_tags_not_chunks():
    # FEATS strings: seqeval would read "N" as a chunk prefix; token accuracy compares whole tags.
    pred = [["Number=Sing", "_", "Mood=Ind|Tense=Pres"], ["Number=Plur"]]
    gold = [["Number=Plur", "_", "Mood=Ind|Tense=Pres"], ["Number=Plur"]]
    assert metrics.token_accuracy(pred, gold) == 0.75
    with pytest.raises(UserError, match="sentence 1"):
        metrics.token_accuracy([["_"]], [["_", "_"]])


def test_seqeval_rejects_length_mismatch():
    with pytest.raises(UserError, match="sentence 2"):
        metrics.seqeval_f1([["O"], ["O"]], [["O"], ["O", "O"]])


def test_squad_max_over_answers_and_missing_predictions():
    gold = {"q1": ["the Eiffel Tower", "Eiffel"], "q2": ["Paris"], "q3": ["1889"]}
    predictions = {"q1": "Eiffel Tower.", "q2": "in Paris, France", "extra": "ignored"}
    # q1 exact after normalisation; q2 F1 = 2 * (1/3 * 1) / (1/3 + 1) = 0.5; q3 missing -> 0.
    scores = metrics.squad_em_f1(predictions, gold)
    assert scores == {"exact_match": pytest.approx(100 / 3), "f1": pytest.approx(50.0)}


def test_squad_empty_prediction():
    assert metrics.squad_em_f1({"q": ""}, {"q": ["Paris"]}) == {"exact_match": 0.0, "f1": 0.0}
    # An answer that normalises to nothing matches an empty prediction exactly, but has no
    # tokens to overlap, so F1 stays 0 (as in the official script).
    assert metrics.squad_em_f1({"q": ""}, {"q": ["The"]}) == {"exact_match": 100.0, "f1": 0.0}


def test_squad_normalisation_keeps_non_ascii_punctuation():
    assert metrics.normalize_squad_answer("  The «Big»  Apple! ") == "«big» apple"


def test_mlqa_chinese_mixed_segmentation():
    # Every CJK character is a token: 2 of 4 predicted characters are right, all gold ones found.
    assert metrics.mlqa_em_f1({"q": "北京大学"}, {"q": ["北京"]}, "zh") == {
        "exact_match": 0.0,
        "f1": pytest.approx(200 / 3),
    }
    assert metrics.normalize_mlqa_answer("iPhone手机", "zh") == "iphone 手 机"


def test_mlqa_chinese_punctuation_is_removed():
    assert metrics.mlqa_em_f1({"q": "「北京」。"}, {"q": ["北京"]}, "zh")["exact_match"] == 100.0
    # Full-width punctuation is Unicode P*, so SQuAD's ASCII-only rule would keep it.
    assert metrics.squad_em_f1({"q": "「北京」"}, {"q": ["北京"]})["exact_match"] == 0.0


@pytest.mark.parametrize(
    ("language", "prediction", "answer", "exact"),
    [
        ("es", "la casa", "casa", 100.0),
        ("de", "der Hund", "Hund", 100.0),
        ("vi", "những con mèo", "con mèo", 100.0),
        ("ar", "الطرق", "طرق", 100.0),
        ("en", "the film", "film", 100.0),
        ("hi", "the film", "film", 0.0),
    ],
)
def test_mlqa_articles_per_language(language, prediction, answer, exact):
    assert metrics.mlqa_em_f1({"q": prediction}, {"q": [answer]}, language)["exact_match"] == exact


def test_mlqa_arabic_removes_al_inside_words():
    # The official pattern replaces every "ال", not only the prefix.
    assert metrics.normalize_mlqa_answer("سالم", "ar") == "س م"


def test_mlqa_unknown_language():
    with pytest.raises(UserError, match="'fr'"):
        metrics.mlqa_em_f1({"q": "x"}, {"q": ["x"]}, "fr")


def test_qa_rejects_empty_gold():
    with pytest.raises(UserError):
        metrics.squad_em_f1({}, {})
    with pytest.raises(UserError, match="q1"):
        metrics.squad_em_f1({"q1": "x"}, {"q1": []})


def test_bucc_f1_over_pairs():
    gold = {("de-1", "en-1"), ("de-2", "en-2"), ("de-3", "en-3"), ("de-4", "en-4")}
    predicted = [("de-1", "en-1"), ("de-2", "en-2"), ("de-3", "en-9"), ("de-1", "en-1")]
    # Duplicates collapse: 3 distinct predictions, 2 correct; P = 2/3, R = 1/2, F1 = 4/7.
    scores = metrics.bucc_f1(predicted, gold)
    assert scores == {
        "f1": pytest.approx(400 / 7),
        "precision": pytest.approx(200 / 3),
        "recall": pytest.approx(50.0),
    }
    assert metrics.bucc_f1([], gold) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_average_precision_lareqa_definition():
    assert metrics.average_precision_at_k(["a", "x", "b", "y"], {"a", "b"}) == pytest.approx((1 + 2 / 3) / 2)
    # Cut at k=2: one hit, divided by min(#relevant, k) = 2.
    assert metrics.average_precision_at_k(["a", "x", "b"], {"a", "b"}, k=2) == 0.5
    # A repeated item counts once; a hit beyond k counts nothing.
    assert metrics.average_precision_at_k(["x", "b", "b"], {"b"}) == 0.5
    assert metrics.average_precision_at_k(["x"] * 20 + ["b"], {"b"}) == 0.0


def test_map_at_20_equals_mrr_for_single_gold():
    ranked = [["e1", "e2"], ["e5", "e6", "e3"], ["e9"]]
    relevant = [{"e1"}, {"e3"}, {"e4"}]
    assert metrics.map_at_k(ranked, relevant, k=20) == pytest.approx((1 + 1 / 3 + 0) / 3)


def test_map_rejects_query_without_relevant_items():
    with pytest.raises(UserError):
        metrics.map_at_k([["a"]], [set()])


@pytest.mark.parametrize("labels", [["_", "_", "_"], [], [[""], [" "]], ["None", "-1"]])
def test_check_labelled_rejects_placeholders(labels):
    with pytest.raises(UserError, match="gold/test-de.tsv"):
        metrics.check_labelled(labels, "gold/test-de.tsv")


def test_check_labelled_accepts_real_labels():
    metrics.check_labelled([["O", "B-PER"], ["_"]], "gold.tsv")
    metrics.check_labelled([0, 1, 1], "gold.jsonl")


def test_squad_v2_empty_answers():
    from xstilts.metrics import squad_em_f1

    gold = {"q1": [""], "q2": ["Paris"]}
    predictions = {"q1": "", "q2": ""}
    assert squad_em_f1(predictions, gold) == {"exact_match": 50.0, "f1": 0.0}
    assert squad_em_f1(predictions, gold, unanswerable=True) == {"exact_match": 50.0, "f1": 50.0}
