"""Write the synthetic benchmark: every task in the real file formats, English train, all-language eval.

Evaluation items are built once as English structures and realised in every language, so
dev/test sets are parallel like XNLI, PAWS-X and XQuAD; the MLM text is sampled
independently per language, so it is not parallel. Every random choice comes from a
stream named by (seed, task, split), which makes the output byte-identical per seed.
"""

from __future__ import annotations

import json
import os
from operator import attrgetter
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xstilts.errors import UserError, did_you_mean
from xstilts.synthetic.grammar import (LEX, MORPH_LABELS, TOPICS, Grammar, Phrase, Sentence, Token,
                                       copy_phrase, copy_sentence, find, mark_morphology, punct)
from xstilts.synthetic.languages import Language, load_languages

FORMAT_VERSION = 1
DEFAULT_SIZES: dict[str, dict[str, int]] = {
    "mlm": {"sentences": 20000},
    "topic": {"train": 3000, "dev": 400, "test": 400},
    "nli": {"train": 3000, "dev": 400, "test": 400},
    "paraphrase": {"train": 3000, "dev": 400, "test": 400},
    "qa": {"train": 1000, "dev": 150, "test": 150},  # paragraphs, three questions each
    "pos": {"train": 2000, "dev": 300, "test": 300},
    "ner": {"train": 2000, "dev": 300, "test": 300},
    "copa": {"train": 2000, "dev": 300, "test": 300},
    "parallel": {"test": 500},
    "morph": {"train": 2000, "dev": 300, "test": 300},
}


# What made a paraphrase pair (its 4th column): negatives by argument swap or by an antonym or
# co-hyponym substitution; positives by a synonym substitution or only a fronted adjunct.
ITEM_TYPES = ("swap", "substitution", "synonym", "adjunct")
LABELS: dict[str, list] = {
    "nli": ["entailment", "neutral", "contradiction"], "paraphrase": ["0", "1"],
    "topic": list(TOPICS), "copa": [0, 1], "ner": ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"],
    "morph": MORPH_LABELS,
}


def nli_pair(g: Grammar) -> tuple[Sentence, Sentence, str]:
    """Premise and hypothesis differing in exactly one word; the label is that word's relation.

    Every label uses the same surface operation (one substitution), so token overlap says
    nothing: hyponym -> hypernym or adjective -> synonym entails, hypernym -> hyponym or
    adjective -> other dimension is neutral, co-hyponym or antonym contradicts.
    """
    label = g.rng.choice(LABELS["nli"])
    while True:
        premise = g.topic_sentence()
        hypothesis = _nli_edit(g, premise, label)
        if hypothesis is not None:
            return premise, hypothesis, label


def _nli_edit(g: Grammar, premise: Sentence, label: str) -> Sentence | None:
    """The hypothesis for `label`, editing the premise too for neutral noun pairs; None if impossible."""
    rng = g.rng
    role = rng.choice(["OBJ", "OBJ", "SUBJ"])
    hypothesis = copy_sentence(premise)
    p_np, h_np = find(premise, role), find(hypothesis, role)
    slot = {t.upos: i for i, t in enumerate(p_np.tokens)} if p_np else {}
    if "NOUN" not in slot:
        return None
    noun = p_np.tokens[slot["NOUN"]].lemma
    cls = LEX.class_of[noun]
    if "ADJ" in slot and rng.random() < 0.6:
        adj = p_np.tokens[slot["ADJ"]].lemma
        same, opposite = LEX.adjective_poles(adj)
        other = [a for a in LEX.adjectives_for(cls) if LEX.adj_dim[a] != LEX.adj_dim[adj]]
        choices = {"entailment": [a for a in same if a != adj], "contradiction": opposite, "neutral": other}[label]
        i = slot["ADJ"]
    else:
        hyper = LEX.hypernym[cls]
        choices = {"entailment": [hyper], "neutral": [noun],
                   "contradiction": [w for w in LEX.classes[cls] if w != noun]}[label]
        i = slot["NOUN"]
        if label == "neutral":  # a general premise, a specific hypothesis
            p_np.tokens[i].lemma = hyper
    if not choices:
        return None
    h_np.tokens[i].lemma = rng.choice(choices)
    return hypothesis


def paraphrase_pair(g: Grammar) -> tuple[Sentence, Sentence, str]:
    """A PAWS-like pair. Either side may move its adjunct to the front (same meaning), so
    word order alone decides nothing; negatives are mostly subject/object swaps (the same
    bag of words, a different meaning), the rest antonym or co-hyponym substitutions.

    The second sentence's meta["item_type"] says which edit made the pair (ITEM_TYPES): swap and
    adjunct pairs have the same bag of words, so only word order tells their labels apart.
    """
    rng = g.rng
    label = rng.choice(LABELS["paraphrase"])
    while True:
        first = g.topic_sentence()
        second = copy_sentence(first)
        changed = _front_adjunct(second) if rng.random() < 0.5 else False
        if label == "1":
            synonym = _substitute(rng, second, synonym=True)
            changed, kind = synonym or changed, "synonym" if synonym else "adjunct"
        elif rng.random() < 0.6:
            changed, kind = _swap_arguments(second), "swap"
        else:
            changed, kind = _substitute(rng, second, synonym=False), "substitution"
        if changed:
            second.meta["item_type"] = kind
            return first, second, label


def _front_adjunct(sent: Sentence) -> bool:
    clause = sent.clauses[0]
    pp = next((p for p in clause if p.role == "PP"), None)
    if pp is None:
        return False
    clause.remove(pp)
    clause.insert(0, pp)
    return True


def _swap_arguments(sent: Sentence) -> bool:
    subj, obj = find(sent, "SUBJ"), find(sent, "OBJ")
    if obj is None or subj.tokens == obj.tokens:
        return False
    subj.tokens, obj.tokens = obj.tokens, subj.tokens
    find(sent, "VERB").tokens[0].number = subj.tokens[-1].number  # English agreement follows
    return True


def _substitute(rng: random.Random, sent: Sentence, *, synonym: bool) -> bool:
    """Replace the object's adjective by a synonym (or antonym), else its noun by a co-hyponym."""
    obj = find(sent, "OBJ")
    if obj is None:
        return False
    for tok in obj.tokens:
        if tok.upos == "ADJ":
            same, opposite = LEX.adjective_poles(tok.lemma)
            choices = [a for a in same if a != tok.lemma] if synonym else opposite
            if choices:
                tok.lemma = rng.choice(choices)
                return True
        if tok.upos == "NOUN" and not synonym:
            tok.lemma = rng.choice([w for w in LEX.classes[LEX.class_of[tok.lemma]] if w != tok.lemma])
            return True
    return False


@dataclass
class QAParagraph:
    """Context sentences and (question, answer key) pairs; a key is (phrase id, UPOS or "")."""

    context: list[Sentence]
    questions: list[tuple[Sentence, tuple[int, str]]]


def qa_paragraph(g: Grammar) -> QAParagraph:
    """Four sentences about four different people, three questions (who/what/where/how many)."""
    rng = g.rng
    context, questions, objects = [], [], set()
    for k, name in enumerate(rng.sample(LEX.first, 4)):
        clause = g.clause(rng.choice(TOPICS), pp_p=0.6)
        while clause[2].tokens[-1].lemma in objects:  # one object per sentence keeps "who" unambiguous
            clause = g.clause(rng.choice(TOPICS), pp_p=0.6)
        objects.add(clause[2].tokens[-1].lemma)
        clause[0] = Phrase("SUBJ", [Token(name, "PROPN", "B-PER", anchor=True)])
        clause[1].tokens[0].number = "sg"
        for j, phrase in enumerate(clause):
            phrase.pid = 10 * k + j
        context.append(Sentence([clause + [punct(".")]]))
    for k in rng.sample(range(4), 3):
        questions.append(_question(rng, context[k].clauses[0]))
    return QAParagraph(context, questions)


def _question(rng: random.Random, clause: list[Phrase]) -> tuple[Sentence, tuple[int, str]]:
    subj, verb = clause[0], clause[1].tokens[0].lemma
    obj = next((p for p in clause if p.role == "OBJ"), None)
    pp = next((p for p in clause if p.role == "PP" and p.prep in ("in", "at", "near")), None)
    kinds = ["who"] + ["what"] * bool(obj) + ["where"] * bool(pp)
    kinds += ["how many"] * bool(obj and obj.tokens[0].upos == "NUM")
    kind = rng.choice(kinds)
    do = Phrase("AUX", [Token("do", "AUX")])
    bare = Phrase("VERB", [Token(verb, "VERB", number="inf")])
    if kind == "who":
        phrases = [Phrase("SUBJ", [Token("who", "PRON")]), Phrase("VERB", [Token(verb, "VERB")])]
        phrases += [copy_phrase(obj)] if obj else []
        key = (subj.pid, "")
    elif kind == "what":
        phrases, key = [Phrase("OBJ", [Token("what", "PRON")]), do, copy_phrase(subj), bare], (obj.pid, "")
    elif kind == "where":
        phrases = [Phrase("ADVP", [Token("where", "ADV")]), do, copy_phrase(subj), bare]
        phrases += [copy_phrase(obj)] if obj else []
        key = (pp.pid, "")
    else:
        noun = Token(obj.tokens[-1].lemma, "NOUN", number="pl")
        wh = Phrase("OBJ", [Token("how", "ADV"), Token("many", "ADJ"), noun])
        phrases, key = [wh, do, copy_phrase(subj), bare], (obj.pid, "NUM")
    return Sentence([phrases + [punct("?")]]), key


def resolve_sizes(sizes: dict | None) -> dict[str, dict[str, int]]:
    """Defaults with the given per-task, per-split overrides merged in.

    Raises:
        UserError: an unknown task or split, or a count that is not a positive int.
    """
    out = {task: dict(splits) for task, splits in DEFAULT_SIZES.items()}
    for task, splits in (sizes or {}).items():
        if task not in out:
            raise UserError(f"sizes: unknown task {task!r}{did_you_mean(task, out)}")
        for split, n in splits.items():
            if split not in out[task]:
                raise UserError(f"sizes.{task}: unknown split {split!r}{did_you_mean(split, out[task])}")
            if not isinstance(n, int) or n < 1:
                raise UserError(f"sizes.{task}.{split}: expected a positive integer, got {n!r}")
            out[task][split] = n
    return out


def generate_benchmark(out_dir: Path, *, seed: int = 0, languages_file: Path | None = None,
                       sizes: dict | None = None) -> dict:
    """Write the synthetic benchmark into `out_dir` (replacing it) and return its manifest.

    Files are written into a temporary folder beside `out_dir` and renamed into place at
    the end, so an interrupted run leaves the previous contents (or nothing) behind.

    Args:
        out_dir: the folder to create; an existing one is replaced as a whole.
        seed: the only source of randomness; equal seeds give byte-identical files.
        languages_file: a languages YAML (see languages.yaml); the shipped one if None.
        sizes: per-task overrides of DEFAULT_SIZES, e.g. {"nli": {"train": 500}}.

    Returns:
        The manifest (also written as manifest.json): languages, codes, counts, seed.

    Example:
        >>> generate_benchmark(Path("data/synthetic"), seed=0, sizes={"mlm": {"sentences": 1000}})
    """
    out_dir = Path(out_dir)
    langs = load_languages(languages_file)
    resolved = resolve_sizes(sizes)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        writer = _Writer(tmp, seed=seed, langs=langs, sizes=resolved)
        manifest = writer.write_all()
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename `tmp` to `out_dir`, moving any old folder aside first (rename needs an empty target)."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old is not None:
        shutil.rmtree(old)


class _Writer:
    """Builds and writes each task; `counts` collects the manifest's file -> count."""

    def __init__(self, root: Path, *, seed: int, langs: list[Language], sizes: dict) -> None:
        self.root, self.seed, self.langs, self.sizes = root, seed, langs, sizes
        self.counts: dict[str, dict[str, int]] = {}

    def rng(self, task: str, split: str) -> random.Random:
        return random.Random(f"xstilts-synthetic:{self.seed}:{task}:{split}")

    def splits(self, task: str, *, train_everywhere: bool = False) -> list[tuple[str, list[Language]]]:
        """(split, languages) pairs: dev/test in every language, train in English only unless
        `train_everywhere` (intermediate tasks, for intermediate.train_languages)."""
        en = [lang for lang in self.langs if lang.code == "en"]
        return [(s, en if s == "train" and not train_everywhere else self.langs) for s in self.sizes[task]]

    def write_all(self) -> dict:
        self.write_mlm()
        self.write_pairs("nli", nli_pair)
        self.write_pairs("paraphrase", paraphrase_pair)
        self.write_mnli()
        self.write_topic()
        self.write_tagging()
        self.write_qa()
        self.write_copa()
        self.write_parallel()
        self.write_morph()
        manifest = {
            "name": "xstilts-synthetic", "format_version": FORMAT_VERSION, "seed": self.seed,
            "languages": [{"code": lg.code, "iso3": lg.iso3, "description": lg.description,
                           "transformations": lg.transformations} for lg in self.langs],
            "iso3_to_code": {lg.iso3: lg.code for lg in self.langs},
            "labels": LABELS, "sizes": self.sizes,
            "files": {task: dict(sorted(files.items())) for task, files in sorted(self.counts.items())},
        }
        self.put("manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", None)
        return manifest

    def put(self, rel: str, text: str, count: int | None) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        if count is not None:
            task, name = rel.split("/", 1)
            self.counts.setdefault(task, {})[name] = count

    def write_mlm(self) -> None:
        # Each language gets its own stream: the texts share a distribution, not sentences.
        n = self.sizes["mlm"]["sentences"]
        for lang in self.langs:
            grammar = Grammar(self.rng("mlm", lang.code))
            lines = [lang.text(grammar.sentence()) for _ in range(n)]
            self.put(f"mlm/{lang.code}.txt", "\n".join(lines) + "\n", n)

    def build(self, task: str, split: str, make) -> list:
        grammar = Grammar(self.rng(task, split), topical_anchors=task != "topic")
        return [make(grammar) for _ in range(self.sizes[task][split])]

    def write_pairs(self, task: str, make) -> None:
        for split, langs in self.splits(task):
            built = self.build(task, split, make)
            for lang in langs:
                # Paraphrase pairs carry their item type as a 4th column (the spec's extra_columns).
                rows = [f"{lang.text(a)}\t{lang.text(b)}\t{label}" + "".join(f"\t{b.meta[k]}" for k in ("item_type",) if k in b.meta)
                        for a, b, label in built]
                self.put(f"{task}/{split}-{lang.code}.tsv", "\n".join(rows) + "\n", len(rows))

    def write_mnli(self) -> None:
        """MNLI jsonl: English as `{split}.jsonl` (MNLI's own layout), each other language the
        same items realised in it as `<code>/{split}.jsonl` (a translate-train stand-in)."""
        for split in ("train", "dev"):
            built = self.build("nli", split, nli_pair)
            for lang in self.langs:
                rows = [json.dumps({"premise": lang.text(a), "hypothesis": lang.text(b), "label": label}, ensure_ascii=False)
                        for a, b, label in built]
                folder = "" if lang.code == "en" else f"{lang.code}/"
                self.put(f"nli/{folder}{split}.jsonl", "\n".join(rows) + "\n", len(rows))

    def write_topic(self) -> None:
        for split, langs in self.splits("topic"):
            built = self.build("topic", split, Grammar.topic_sentence)
            for lang in langs:
                rows = [f"{lang.text(s)}\t{s.topic}" for s in built]
                self.put(f"topic/{split}-{lang.code}.tsv", "\n".join(rows) + "\n", len(rows))

    def write_tagging(self) -> None:
        for task, field in (("pos", "upos"), ("ner", "ner")):
            self.write_tags(task, Grammar.sentence, attrgetter(field))

    def write_morph(self) -> None:
        """UD FEATS of every word (case and number on noun phrase heads, `_` elsewhere)."""
        self.write_tags("morph", lambda grammar: mark_morphology(grammar.sentence()), attrgetter("feats"))

    def write_tags(self, task: str, make, tag) -> None:
        """token<TAB>tag lines, a blank line between sentences; `tag` reads a token's tag."""
        for split, langs in self.splits(task):
            built = self.build(task, split, make)
            for lang in langs:
                blocks = ["\n".join(f"{form}\t{tag(token)}" for form, token, _ in lang.realize(sent)) for sent in built]
                self.put(f"{task}/{split}-{lang.code}.tsv", "\n\n".join(blocks) + "\n", len(blocks))

    def write_qa(self) -> None:
        for split, langs in self.splits("qa", train_everywhere=True):
            built = self.build("qa", split, qa_paragraph)
            for lang in langs:
                paragraphs = [_squad_paragraph(lang, para, f"syn-{split}-{i}") for i, para in enumerate(built)]
                doc = {"version": "1.1", "data": [{"title": f"synthetic-{lang.code}", "paragraphs": paragraphs}]}
                n = sum(len(p["qas"]) for p in paragraphs)
                self.put(f"qa/{split}-{lang.code}.json", json.dumps(doc, ensure_ascii=False) + "\n", n)

    def write_copa(self) -> None:
        for split, langs in self.splits("copa"):
            built = self.build("copa", split, Grammar.copa_item)
            for lang in langs:
                rows = [json.dumps({"premise": lang.text(p), "choice1": lang.text(c1), "choice2": lang.text(c2),
                                    "question": q, "label": label, "idx": i}, ensure_ascii=False)
                        for i, (p, c1, c2, q, label) in enumerate(built)]
                self.put(f"copa/{split}-{lang.code}.jsonl", "\n".join(rows) + "\n", len(rows))

    def write_parallel(self) -> None:
        en = next(lang for lang in self.langs if lang.code == "en")
        rng = self.rng("parallel", "test")
        grammar, seen, sents = Grammar(rng), set(), []
        # Retrieval needs distinct English lines, else several answers would be right, and no
        # shared names or digits: those alone identify a translation (a random-init encoder's
        # bag of anchor tokens beat MLM pretraining), so retrieval would not measure alignment.
        for _ in range(self.sizes["parallel"]["test"] * 50):
            sent = grammar.sentence()
            if not _has_anchor_words(sent) and en.text(sent) not in seen:
                seen.add(en.text(sent))
                sents.append(sent)
            if len(sents) == self.sizes["parallel"]["test"]:
                break
        else:
            raise UserError(f"sizes.parallel.test: only {len(sents)} distinct parallel sentences found; ask for fewer")
        for lang in self.langs:
            if lang.code == "en":
                continue
            stem = f"parallel/tatoeba.{lang.iso3}-eng"
            self.put(f"{stem}.{lang.iso3}", "\n".join(lang.text(s) for s in sents) + "\n", len(sents))
            self.put(f"{stem}.eng", "\n".join(en.text(s) for s in sents) + "\n", len(sents))


def _has_anchor_words(sent: Sentence) -> bool:
    """Whether a name or a digit (a token shared by every language) is in the sentence."""
    return any(t.anchor and t.upos != "PUNCT" for clause in sent.clauses for phrase in clause for t in phrase.tokens)


def _squad_paragraph(lang: Language, para: QAParagraph, prefix: str) -> dict[str, Any]:
    """One SQuAD paragraph in `lang`; answer_start is found from the realised tokens."""
    context, spans = _context_with_spans(lang, para.context)
    qas = []
    for j, (question, key) in enumerate(para.questions):
        start, end = spans[key]
        qas.append({"id": f"{prefix}-{j}", "question": lang.text(question),
                    "answers": [{"text": context[start:end], "answer_start": start}]})
    return {"context": context, "qas": qas}


def _context_with_spans(lang: Language, sents: list[Sentence]) -> tuple[str, dict]:
    """Join the realised sentences; map (phrase id, "") to the char span of the phrase's
    content words and (phrase id, UPOS) to that of its words with that tag."""
    pieces: list[str] = []
    spans: dict[tuple[int, str], tuple[int, int]] = {}
    pos = 0
    for sent in sents:
        for form, tok, pid in lang.realize(sent):
            if pieces:
                pos += 1
            # Articles and adpositions stay outside answers, as in SQuAD's short answers.
            if pid >= 0 and tok.upos not in ("DET", "ADP"):
                for key in ((pid, ""), (pid, tok.upos)):
                    start, _ = spans.get(key, (pos, pos))
                    spans[key] = (start, pos + len(form))
            pieces.append(form)
            pos += len(form)
    return " ".join(pieces), spans
