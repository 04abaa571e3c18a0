"""Retrieval on an encoder: pooling by hand, nearest neighbours, BUCC margin mining and threshold,
LAReQA / Mewsli-X ranking by mAP@20."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from xstilts.config.schema import Pooling, Precision, RetrievalConfig
from xstilts.errors import UserError
from xstilts.evaluation import embeddings
from xstilts.evaluation.retrieval import (
    Sides,
    bucc_candidates,
    bucc_results,
    embed_sentences,
    mine_candidates,
    rank_candidates,
    ranking_results,
    resolve_retrieval_config,
    select_threshold,
    tatoeba_predictions,
    tatoeba_results,
    top_k,
)
from xstilts import metrics
from xstilts.experiments.store import ResultsStore
from xstilts.tasks.registry import load_registry

CPU = torch.device("cpu")
SENTENCES = ["the cat sleeps on the red mat today", "a dog", "the dog sees the cat"]


@pytest.fixture(scope="module")
def encoder(tiny_model):
    return AutoModel.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)


def by_hand(model, tokenizer, sentence: str, layer: int, pooling: Pooling) -> np.ndarray:
    """One sentence alone (no padding at all), pooled with plain tensor arithmetic."""
    inputs = tokenizer(sentence, return_tensors="pt")
    with torch.no_grad():
        states = model(**inputs, output_hidden_states=True).hidden_states[layer][0]
    return (states[0] if pooling is Pooling.CLS else states.mean(dim=0)).numpy()


@pytest.mark.parametrize("layer", [0, 1, -1])
@pytest.mark.parametrize("pooling", [Pooling.MEAN, Pooling.CLS])
def test_embeddings_match_single_sentence_pooling_despite_padding(encoder, layer, pooling):
    model, tokenizer = encoder
    cfg = RetrievalConfig(pooling=pooling, layer=layer, normalize=False, batch_size=3)
    # One batch of three lengths: the short ones are padded, and padding must not count.
    embedded = embed_sentences(model, tokenizer, SENTENCES, cfg, CPU, Precision.FP32)
    expected = np.stack([by_hand(model, tokenizer, s, layer, pooling) for s in SENTENCES])
    np.testing.assert_allclose(embedded, expected, atol=1e-5)


def test_layer_choice_changes_the_embedding_and_normalising_gives_unit_rows(encoder):
    model, tokenizer = encoder
    first = embed_sentences(model, tokenizer, SENTENCES, RetrievalConfig(layer=1), CPU, Precision.FP32)
    last = embed_sentences(model, tokenizer, SENTENCES, RetrievalConfig(layer=-1), CPU, Precision.FP32)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    assert not np.allclose(first, last, atol=1e-3)
    second = embed_sentences(model, tokenizer, SENTENCES, RetrievalConfig(layer=2), CPU, Precision.FP32)
    np.testing.assert_allclose(last, second, atol=1e-6)  # the tiny model has 2 layers: -1 is layer 2


def test_small_batches_return_input_order(encoder):
    model, tokenizer = encoder
    whole = embed_sentences(model, tokenizer, SENTENCES, RetrievalConfig(batch_size=8), CPU, Precision.FP32)
    single = embed_sentences(model, tokenizer, SENTENCES, RetrievalConfig(batch_size=1), CPU, Precision.FP32)
    np.testing.assert_allclose(whole, single, atol=1e-5)


def test_layer_out_of_range_is_a_user_error(encoder):
    model, tokenizer = encoder
    with pytest.raises(UserError, match=r"retrieval.layer=3 is out of range: the model has 2 layers"):
        embed_sentences(model, tokenizer, SENTENCES, RetrievalConfig(layer=3), CPU, Precision.FP32)


def unit(*rows) -> np.ndarray:
    array = np.array(rows, dtype=np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def test_tatoeba_queries_with_english_into_the_source_side():
    source = unit([1, 0], [0, 1], [1, 1])
    english = unit([0.1, 1], [1, 0.9], [1, 0.2])
    # English 0 is nearest source 1, English 1 nearest source 2 (the diagonal), English 2 source 0.
    assert tatoeba_predictions(source, english) == [1, 2, 0]


# Sources are the basis vectors, so cos(x_i, y_j) = y_j[i]:
#        y0   y1   y2
#   x0  .80  .60  .00
#   x1  .60  .00  .28
#   x2  .00  .80  .96
SOURCES = np.eye(3, dtype=np.float32)
TARGETS = np.array([[0.8, 0.6, 0.0], [0.6, 0.0, 0.8], [0.0, 0.28, 0.96]], dtype=np.float32)


def test_margin_mining_by_hand():
    # k = 2: mean of the two best cosines: x0 .70, x1 .44, x2 .88; y0 .70, y1 .70, y2 .62.
    # Forward proposals: x0->y0 .8/.70, x1->y0 .6/.57 (beats .28/.53 for y2), x2->y2 .96/.75.
    # Backward proposals: y0->x0 .8/.70, y1->x2 .8/.79, y2->x2 .96/.75.
    # Greedy by score: (x2, y2) 1.28, (x0, y0) 1.1429; x1->y0 and y1->x2 reuse a taken sentence.
    mined = mine_candidates(SOURCES, TARGETS, CPU, k=2)
    assert [(s, t) for s, t, _ in mined] == [(2, 2), (0, 0)]
    assert [score for _, _, score in mined] == pytest.approx([0.96 / 0.75, 0.8 / 0.7], rel=1e-5)


def test_margin_mining_default_k_is_capped_by_the_set_size():
    # k = min(4, 3) = 3: every mean covers the whole row or column.
    mined = dict(((s, t), score) for s, t, score in mine_candidates(SOURCES, TARGETS, CPU))
    fwd = TARGETS.T.mean(axis=1)  # per source: mean over the three targets
    bwd = TARGETS.T.mean(axis=0)  # per target: mean over the three sources
    assert mined[(2, 2)] == pytest.approx(0.96 / ((fwd[2] + bwd[2]) / 2), rel=1e-5)


def random_unit(rows: int, dim: int, seed: int) -> np.ndarray:
    array = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


@pytest.mark.parametrize("block, database_block", [(2**25, 2**14), (4096, 64), (500, 7), (1, 1)])
def test_blocked_top_k_equals_the_full_matrix_top_k(monkeypatch, block, database_block):
    # Small budgets force query blocks, database blocks and the running top k across them.
    monkeypatch.setattr(embeddings, "DATABASE_BLOCK", database_block)
    queries, database = random_unit(300, 16, seed=0), random_unit(1000, 16, seed=1)
    values, indices = top_k(queries, database, 5, CPU, block=block)
    expected_values, expected_indices = (torch.from_numpy(queries) @ torch.from_numpy(database).T).topk(5, dim=1)
    assert indices.shape == (300, 5)
    np.testing.assert_array_equal(indices, expected_indices.numpy())
    np.testing.assert_allclose(values, expected_values.numpy(), rtol=1e-6, atol=1e-6)


def test_blocked_top_k_keeps_the_lower_index_first_on_ties_across_blocks(monkeypatch):
    monkeypatch.setattr(embeddings, "DATABASE_BLOCK", 1)
    database = unit([1, 0], [0, 1], [1, 0], [0, 1], [1, 1])
    _, indices = top_k(unit([1, 0], [0, 1]), database, 3, CPU, block=1)
    assert indices.tolist() == [[0, 2, 4], [1, 3, 4]]


def test_top_k_over_a_database_smaller_than_k_and_an_empty_one():
    values, indices = top_k(unit([1, 0]), unit([0, 1], [1, 0]), 2, CPU, block=1)
    assert indices.tolist() == [[1, 0]] and values[0] == pytest.approx([1, 0], abs=1e-6)
    assert top_k(unit([1, 0]), np.zeros((0, 2), dtype=np.float32), 0, CPU)[1].shape == (1, 0)


def test_margin_mining_is_the_same_in_small_blocks(monkeypatch):
    sources, targets = random_unit(200, 8, seed=2), random_unit(150, 8, seed=3)
    whole = mine_candidates(sources, targets, CPU)
    monkeypatch.setattr(embeddings, "DATABASE_BLOCK", 16)
    monkeypatch.setattr(embeddings.top_k, "__defaults__", (256,))
    blocked = mine_candidates(sources, targets, CPU)
    assert [(s, t) for s, t, _ in blocked] == [(s, t) for s, t, _ in whole]
    assert [score for *_, score in blocked] == pytest.approx([score for *_, score in whole], rel=1e-6)


def test_threshold_maximises_f1_and_sits_between_scores():
    candidates = {("a", "1"): 0.9, ("b", "2"): 0.8, ("c", "3"): 0.7, ("d", "4"): 0.6}
    gold = {("a", "1"), ("c", "3"), ("e", "5")}
    # Prefix F1: 1 pair .50, 2 pairs .40, 3 pairs 2/3 (best), 4 pairs .57.
    assert select_threshold(candidates, gold) == pytest.approx(0.65)
    assert select_threshold(candidates, {("d", "4")}) == pytest.approx(0.6)  # best at the end: its score
    assert select_threshold(candidates, {("x", "9")}) == 0.0


def test_bucc_candidates_embed_unique_texts_and_drop_repeated_ones():
    vectors = {"A": [1, 0], "B": [0, 1], "a": [1, 0.1], "b": [0.1, 1]}
    calls = []

    def embed(texts):
        calls.append(texts)
        return unit(*(vectors[text] for text in texts))

    example = {"sources": {"s1": "A", "s2": "B", "s3": "B"}, "targets": {"t1": "a", "t2": "b"}, "gold": None}
    candidates = bucc_candidates(example, Sides(embed), CPU)
    assert calls == [["A", "B"], ["a", "b"]]
    assert list(candidates) == [("s1", "t1")]  # "B" occurs twice, so (B, b) has no unambiguous id


def test_bucc_threshold_from_dev_applies_to_test(tmp_path):
    spec = load_registry().get("bucc2018")
    vectors = {"A": [1, 0, 0], "B": [0, 1, 0], "C": [0, 0, 1], "a": [1, 0.05, 0], "b": [0, 1, 0.05], "c": [0.3, 0.3, 1]}
    for split, gold in (("dev", ["de-1\ten-1", "de-2\ten-2"]), ("test", ["de-1\ten-1", "de-3\ten-3"])):
        (tmp_path / f"de-en.{split}.de").write_text("de-1\tA\nde-2\tB\nde-3\tC\n", encoding="utf-8")
        (tmp_path / f"de-en.{split}.en").write_text("en-1\ta\nen-2\tb\nen-3\tc\n", encoding="utf-8")
        (tmp_path / f"de-en.{split}.gold").write_text("\n".join(gold) + "\n", encoding="utf-8")
    embed = lambda texts: unit(*(vectors[text] for text in texts))  # noqa: E731
    (dev, test) = bucc_results(spec, "de", ["dev", "test"], tmp_path, Sides(embed), CPU)
    # Dev gold keeps the two close pairs and drops the weaker (C, c): the threshold lies between.
    assert dev[0] == "dev" and sorted(dev[1].splitlines()) == ["de-1\ten-1", "de-2\ten-2"]
    assert dev[2] == {"f1": 100.0, "precision": 100.0, "recall": 100.0}
    # The same threshold on test excludes (C, c) although test gold has it: F1 = 2 * .5 * .5 / 1.
    assert sorted(test[1].splitlines()) == ["de-1\ten-1", "de-2\ten-2"]
    assert test[2] == {"f1": 50.0, "precision": 50.0, "recall": 50.0}


# --- Ranking: LAReQA and Mewsli-X ---

# Candidates c0..c3 and two queries, as unit vectors whose cosines are easy to read off.
VECTORS = {
    "s0": [1.0, 0.0], "s1": [0.8, 0.6], "d1": [0.0, 1.0], "d0": [-0.6, -0.8],
    "qen": [1.0, 0.0], "qde": [0.0, 1.0],
}


def lookup_embed(texts: list[str]) -> np.ndarray:
    """A stand-in encoder: each text's vector is chosen by its first word."""
    return np.array([VECTORS[text.split()[0].rstrip(".:")] for text in texts], dtype=np.float32)


def test_map_at_20_of_hand_made_embeddings():
    candidates = ["c0", "c1", "c2", "c3"]
    ranked = rank_candidates(lookup_embed(["qen", "qde"]), lookup_embed(["s0", "s1", "d1", "d0"]), candidates, CPU)
    assert ranked == [["c0", "c1", "c2", "c3"], ["c2", "c1", "c0", "c3"]]
    # Query 1: relevant c1, c2 at ranks 2 and 3 -> (1/2 + 2/3) / 2 = 7/12; query 2: c0 at rank 3 -> 1/3.
    assert metrics.map_at_k(ranked, [{"c1", "c2"}, {"c0"}], k=20) == pytest.approx((7 / 12 + 1 / 3) / 2)


def write_xquad_r(folder, language: str, sentences: list[str], question: str) -> None:
    """One paragraph of two sentences, one question (`q1` in every language) answered by the second."""
    context = " ".join(sentences)
    breaks = [[0, len(sentences[0])], [len(sentences[0]) + 1, len(context)]]
    qa = {"id": "q1", "question": question, "answers": [{"text": "x", "answer_start": breaks[1][0]}]}
    paragraph = {"context": context, "sentence_breaks": breaks, "qas": [qa]}
    (folder / f"{language}.json").write_text(json.dumps({"data": [{"paragraphs": [paragraph]}]}), encoding="utf-8")


def test_lareqa_ranks_each_language_against_the_pool_of_all_languages(tmp_path):
    spec = load_registry().get("lareqa").model_copy(update={"languages": ["en", "de"]})
    write_xquad_r(tmp_path, "en", ["s0 alpha.", "s1 beta."], "qen when?")
    write_xquad_r(tmp_path, "de", ["d0 alpha.", "d1 beta."], "qde wann?")
    # Only English is evaluated, yet German candidates are in its pool and relevant to it.
    [(language, (split, text, scores))] = list(ranking_results(spec, ["en"], ["test"], tmp_path, Sides(lookup_embed), CPU))
    assert (language, split) == ("en", "test")
    # Candidates en_1_0, en_1_1, de_1_1, de_1_0 by cosine; relevant: the answer sentence in each
    # language (en_1_1 at rank 2, de_1_1 at rank 3): AP = (1/2 + 2/3) / 2.
    assert json.loads(text) == {"q1_en": ["en_1_0", "en_1_1", "de_1_1", "de_1_0"]}
    assert scores == {"map@20": pytest.approx(100 * 7 / 12)}
    [(_, (_, text, scores))] = list(ranking_results(spec, ["de"], ["test"], tmp_path, Sides(lookup_embed), CPU))
    assert json.loads(text) == {"q1_de": ["de_1_1", "en_1_1", "en_1_0", "de_1_0"]} and scores == {"map@20": 100.0}


def test_mewslix_ranks_entities_and_splits_mentions_by_language(tmp_path):
    spec = load_registry().get("mewslix").model_copy(update={"languages": ["de", "ja"]})
    entities = {"Q0": "s0 Angela Merkel.", "Q1": "s1 Tokyo.", "Q2": "d1 Berlin.", "Q3": "d0 Paris."}
    (tmp_path / "candidate_set_entities.jsonl").write_text("".join(
        json.dumps({"entity_id": q, "description": d, "sentence_spans": [[0, len(d)]]}) + "\n"
        for q, d in entities.items()), encoding="utf-8")
    mentions = [("de", "qen x", "m-de", "Q1"), ("ja", "qde y", "m-ja", "Q3")]
    (tmp_path / "wikinews_mentions-test.jsonl").write_text("".join(json.dumps({
        "context": {"language": lang, "text": text, "sentence_spans": [{"start": 0, "end": len(text)}]},
        "mentions": [{"example_id": mid, "entity_id": q, "mention_span": {"start": 0, "end": 3, "text": text[:3]}}],
    }) + "\n" for lang, text, mid, q in mentions), encoding="utf-8")
    # The query text starts with the mention ("qen: { qen } x"), which picks its vector here.
    results = dict(ranking_results(spec, ["de", "ja"], ["test"], tmp_path, Sides(lookup_embed), CPU))
    assert json.loads(results["de"][1]) == {"m-de": ["Q0", "Q1", "Q2", "Q3"]}
    assert results["de"][2] == {"map@20": 50.0}  # gold Q1 at rank 2
    assert json.loads(results["ja"][1]) == {"m-ja": ["Q2", "Q1", "Q0", "Q3"]}
    assert results["ja"][2] == {"map@20": 25.0}  # gold Q3 ranked last, but within the top 20: 1/4


def test_lareqa_eval_on_a_tiny_model_writes_every_language(monkeypatch, capsys, tmp_path, tiny_model):
    from clitools import cli

    spec = load_registry().get("lareqa")
    for language in spec.languages:
        write_xquad_r(tmp_path, language, [f"the cat sleeps {language}.", f"a dog barks {language}."], "who barks?")
    store = tmp_path / "store"
    cli(monkeypatch, capsys, "eval", "--model", tiny_model, "--task", "lareqa", "--data-dir", tmp_path,
        "--store", store)
    rows = {r.language: r.value for r in ResultsStore(store).results() if r.metric == "map@20"}
    assert set(rows) == set(spec.languages) and all(0 < value <= 100 for value in rows.values())
    run = ResultsStore(store).runs()[0]["run"]
    predicted = json.loads((store / "runs" / run / "predictions" / "lareqa" / "test-th.json").read_text())
    # 11 languages x 2 sentences = 22 candidates in the pool, of which the top 20 are kept.
    assert list(predicted) == ["q1_th"] and len(predicted["q1_th"]) == 20


# --- Prefixes: a model's recipe ("query: " for E5), resolved before a run and applied per side ---

REGISTRY = load_registry()


@pytest.mark.parametrize(("model", "task", "expected"), [
    ("packaged:multilingual-e5-small", "tatoeba", ("query: ", "query: ")),  # symmetric: E5's "query: " twice
    ("packaged:multilingual-e5-small", "bucc2018", ("query: ", "query: ")),
    ("packaged:portuguese-multilingual-e5-small", "lareqa", ("query: ", "passage: ")),  # asymmetric
    ("packaged:multilingual-e5-small", "mewslix", ("query: ", "passage: ")),
    ("xlm-roberta-large", "tatoeba", ("", "")),
    ("/models/my-encoder", "lareqa", ("", "")),
])
def test_prefix_defaults_follow_the_models_recipe(model, task, expected):
    resolved = resolve_retrieval_config(RetrievalConfig(), model, REGISTRY.get(task))
    assert (resolved.query_prefix, resolved.candidate_prefix) == expected


def test_prefixes_the_user_sets_are_kept_and_other_tasks_are_left_alone():
    cfg = RetrievalConfig(query_prefix="", candidate_prefix="passage: ")
    resolved = resolve_retrieval_config(cfg, "packaged:multilingual-e5-small", REGISTRY.get("tatoeba"))
    assert (resolved.query_prefix, resolved.candidate_prefix) == ("", "passage: ")
    untouched = resolve_retrieval_config(RetrievalConfig(), "packaged:multilingual-e5-small", REGISTRY.get("xnli"))
    assert untouched == RetrievalConfig() and untouched.query_prefix is None


def recording(calls: list):
    """An embed function that records what it was given and returns one basis vector per text."""

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.eye(len(texts), 8, dtype=np.float32)

    return embed


def test_tatoeba_prefixes_english_as_queries_and_the_other_language_as_candidates(tmp_path):
    (tmp_path / "tatoeba.deu-eng.deu").write_text("Hallo.\nKatze.\n", encoding="utf-8")
    (tmp_path / "tatoeba.deu-eng.eng").write_text("Hello.\nCat.\n", encoding="utf-8")
    calls = []
    [(split, text, scores)] = tatoeba_results(
        REGISTRY.get("tatoeba"), "de", ["test"], tmp_path, Sides(recording(calls), "Q: ", "C: "), CPU
    )
    assert calls == [["C: Hallo.", "C: Katze."], ["Q: Hello.", "Q: Cat."]]
    assert (split, text, scores) == ("test", "0\n1\n", {"accuracy": 100.0})


def test_ranking_prefixes_questions_and_the_candidate_pool(tmp_path):
    spec = REGISTRY.get("lareqa").model_copy(update={"languages": ["en"]})
    write_xquad_r(tmp_path, "en", ["s0 alpha.", "s1 beta."], "qen when?")
    calls = []
    list(ranking_results(spec, ["en"], ["test"], tmp_path, Sides(recording(calls), "query: ", "passage: "), CPU))
    pool, questions = calls
    assert pool == ["passage: s0 alpha.s0 alpha. s1 beta.", "passage: s1 beta.s0 alpha. s1 beta."]
    assert questions == ["query: qen when?"]


def test_the_run_config_records_the_resolved_prefixes(tmp_path):
    from xstilts.config.schema import ExperimentConfig
    from xstilts.experiments.run import preflight

    (tmp_path / "tatoeba.deu-eng.deu").write_text("Hallo.\n", encoding="utf-8")
    config = ExperimentConfig(
        name="e5", model="packaged:multilingual-e5-small", data={"tatoeba": tmp_path},
        target={"task": "tatoeba", "languages": ["de"]},
    )
    recorded = preflight(config, REGISTRY).model_dump(mode="json")["target"]["retrieval"]
    assert (recorded["query_prefix"], recorded["candidate_prefix"]) == ("query: ", "query: ")
