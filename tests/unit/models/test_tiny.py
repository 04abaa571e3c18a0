"""The locally trained WordPiece tokenizer of tiny models: the same texts give the same vocabulary."""

import random

from xstilts.models.tiny import SPECIAL_TOKENS, train_wordpiece_tokenizer
from xstilts.synthetic.grammar import Grammar


def corpus() -> list[str]:
    grammar = Grammar(random.Random(0))
    return [" ".join(token.lemma for phrase in clause for token in phrase.tokens)
            for _ in range(400) for clause in grammar.sentence().clauses]


def test_same_texts_same_vocabulary():
    # `tokenizers`' own trainer numbers "##x" symbols in hash order, so four plain trainings
    # on this corpus almost always disagree somewhere.
    texts = corpus()
    vocabularies = [train_wordpiece_tokenizer(texts, vocab_size=300).get_vocab() for _ in range(4)]
    assert all(vocab == vocabularies[0] for vocab in vocabularies[1:])


def test_tokenizer_behaves_like_bert_wordpiece():
    tokenizer = train_wordpiece_tokenizer(corpus(), vocab_size=300)
    assert len(tokenizer) == 300 and [tokenizer.convert_ids_to_tokens(i) for i in range(5)] == SPECIAL_TOKENS
    encoded = tokenizer("the baker eats a pear .", "Kim runs")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and "[UNK]" not in tokens
    assert tokenizer.decode(encoded["input_ids"], skip_special_tokens=True).startswith("the baker eats a pear")
    assert tokenizer.all_special_tokens and "##a" not in tokenizer.all_special_tokens
