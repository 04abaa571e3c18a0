"""The English-like base language: a lexicon with semantic classes and a sentence grammar.

Sentences are built as structures (clauses of role-labelled phrases of tokens carrying
lemma, UPOS and NER tags), never as strings, so that the derived languages in
`languages.py` can reorder phrases and attach suffixes while every tag follows its token.

Lexical semantics is explicit here because the tasks depend on it: nouns sit in classes
under a hypernym ("pear" is a "fruit"), classes belong to one of four topics, adjectives
come in dimensions with antonym poles and synonyms, and states cause actions ("hungry"
-> "eat"). Topic and word frequencies are deliberately unequal (Zipf-like), because
classes with identical distributions align to the wrong class across languages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

TOPICS = ("food", "sport", "travel", "nature")
# Unequal topic priors give each topic's words a distinct frequency profile.
TOPIC_WEIGHTS = (0.34, 0.27, 0.22, 0.17)

# class -> (topic, hypernym, hyponyms); "a/b" spells an irregular plural.
NOUN_CLASSES: dict[str, tuple[str, str, str]] = {
    "fruit": ("food", "fruit", "apple banana cherry/cherries grape lemon mango peach pear plum melon"),
    "vegetable": ("food", "vegetable", "carrot onion leek beet turnip pea cucumber pumpkin"),
    "drink": ("food", "drink", "coffee tea juice milk soda lemonade cocoa cider"),
    "dish": ("food", "meal", "soup salad pizza sandwich burger pie cake omelette"),
    "ball": ("sport", "ball", "football basketball baseball volleyball handball softball"),
    "gear": ("sport", "gear", "racket bat helmet glove net whistle skate ski"),
    "contest": ("sport", "contest", "match race tournament final relay marathon"),
    "vehicle": ("travel", "vehicle", "car bus/buses train boat plane bike truck taxi ship tram"),
    "building": ("travel", "building", "station airport hotel harbor museum castle tower temple"),
    "luggage": ("travel", "item", "bag suitcase ticket map passport backpack"),
    "animal": ("nature", "animal", "dog cat horse cow mule goat rabbit fox zebra bear lion tiger"),
    "bird": ("nature", "bird", "eagle owl parrot crow swan duck sparrow pigeon"),
    "tree": ("nature", "tree", "oak pine birch maple willow cedar palm elm"),
    "flower": ("nature", "flower", "rose tulip lily/lilies daisy/daisies orchid poppy/poppies"),
}
PEOPLE = "teacher doctor farmer student driver cook pilot nurse singer baker friend neighbor"
PERSON_HYPERNYM = "person"
# verb -> (topic or "any", object classes; empty means intransitive)
VERBS: dict[str, tuple[str, str]] = {
    "eat": ("food", "fruit vegetable dish"), "drink": ("food", "drink"),
    "cook": ("food", "vegetable dish"), "peel": ("food", "fruit vegetable"),
    "order": ("food", "dish drink"), "taste": ("food", "fruit dish drink"),
    "kick": ("sport", "ball"), "throw": ("sport", "ball gear"), "win": ("sport", "contest"),
    "lose": ("sport", "contest"), "repair": ("sport", "gear"), "watch": ("sport", "contest"),
    "drive": ("travel", "vehicle"), "ride": ("travel", "vehicle"), "visit": ("travel", "building"),
    "pack": ("travel", "luggage"), "board": ("travel", "vehicle"), "paint": ("travel", "building"),
    "feed": ("nature", "animal bird"), "chase": ("nature", "animal bird"),
    "plant": ("nature", "tree flower"), "pick": ("nature", "flower"), "climb": ("nature", "tree"),
    "photograph": ("nature", "animal bird"),
    "see": ("any", ""), "like": ("any", ""), "find": ("any", ""), "want": ("any", ""),
    "buy": ("any", ""), "carry": ("any", ""),
}
# Verbs whose object may come from any class; the object then decides the topic.
GENERIC_OBJECTS = "fruit vegetable drink dish ball gear vehicle luggage animal bird flower"
# Places for prepositional phrases, per topic (no hypernym class: they are settings).
PLACES = {
    "food": "kitchen restaurant cafe bakery", "sport": "stadium gym pool court",
    "travel": "city village port road", "nature": "forest river lake meadow mountain",
}
# dimension -> (classes it describes, pole A synonyms, pole B synonyms)
ADJECTIVES: dict[str, tuple[str, str, str]] = {
    "size": ("fruit vegetable ball vehicle building luggage animal bird tree", "big large", "small tiny"),
    "age": ("vehicle building gear luggage tree", "old ancient", "new modern"),
    "speed": ("vehicle animal bird", "fast quick", "slow sluggish"),
    "heat": ("drink dish", "hot warm", "cold chilly"),
    "price": ("dish drink gear luggage vehicle", "cheap", "expensive costly"),
    "clean": ("vehicle building gear luggage", "clean tidy", "dirty filthy"),
    "weight": ("luggage gear ball", "heavy", "light"),
    "taste": ("fruit vegetable dish drink", "sweet", "bitter sour"),
    "colour": ("fruit ball gear vehicle flower bird", "red blue green yellow", ""),
}
# state -> (effect verb, effect object classes). COPA and the "so/because" sentences.
CAUSES: dict[str, tuple[str, str]] = {
    "hungry": ("eat", "fruit dish"), "thirsty": ("drink", "drink"),
    "tired": ("sleep", ""), "sad": ("cry", ""), "bored": ("watch", "contest"),
    "lost": ("read", "map"), "late": ("board", "vehicle"), "cheerful": ("sing", ""),
    "sick": ("visit", "doctor"), "curious": ("visit", "building"),
}
FIRST_NAMES = "Anna Omar Lena Ravi Mia Tomas Yuki Ines Kofi Sara Leo Nadia Ivan Chen Priya Hugo Zara Amir Elena Jonas"
SURNAMES = "Berg Okafor Silva Novak Tanaka Haddad Kowalski Moreau Larsen Petrov Rossi Nguyen Costa Ibrahim Dubois"
# Organisations and places lean to a topic (a football club, a port), as in real text;
# kept in every language, these anchors tie each topic's words together across languages.
ORGS = {"food": ["Mirex", "Zentra Foods"], "sport": ["Volkor Group", "Kaltara"],
        "travel": ["Acme Corp", "Orbis Lines"], "nature": ["Teladyne Labs", "Verdan"]}
LOCS = {"food": ["Lindora", "Rio Calma"], "sport": ["Belmont", "Kasimir"],
        "travel": ["Port Avel", "New Tarsk"], "nature": ["Oslavia", "Greywood"]}
# preposition -> grammatical case (used by agglutinative languages to absorb it)
PREPOSITIONS = {"in": "loc", "at": "loc", "to": "dat", "from": "abl", "with": "ins", "near": ""}
FUNCTION_WORDS = {
    "the": "DET", "a": "DET", "be": "AUX", "do": "AUX", "so": "CCONJ", "because": "SCONJ",
    "who": "PRON", "what": "PRON", "where": "ADV", "how": "ADV", "many": "ADJ",
    "not": "PART", "and": "CCONJ", **{p: "ADP" for p in PREPOSITIONS},
}
INTRANSITIVE = ("sleep", "cry", "sing", "read")


@dataclass(slots=True)
class Token:
    """One word of a structure: its lemma and tags; `form` is filled in by a language."""

    lemma: str
    upos: str
    ner: str = "O"
    number: str = "sg"  # sg | pl for nouns; sg | pl | inf for verbs (agreement)
    anchor: bool = False  # names and digits: shared across languages, never translated
    suffix: str = ""
    feats: str = "_"  # UD FEATS of a noun phrase's head (mark_morphology), "_" elsewhere


@dataclass(slots=True)
class Phrase:
    """A constituent; `role` drives reordering and case, `pid` lets QA find answer spans."""

    role: str  # SUBJ OBJ VERB AUX PRED PP ADVP CONJ PUNCT
    tokens: list[Token]
    prep: str = ""
    pid: int = -1


Clause = list[Phrase]


@dataclass(slots=True)
class Sentence:
    """One or more clauses plus what the tasks need to know about it."""

    clauses: list[Clause]
    topic: str = ""
    meta: dict = field(default_factory=dict)


def _split(words: str) -> list[str]:
    return [w.split("/")[0] for w in words.split()]


class Lexicon:
    """Lookups over the tables above, built once."""

    def __init__(self) -> None:
        self.plurals = {w.split("/")[0]: w.split("/")[1] for c in NOUN_CLASSES.values()
                        for w in c[2].split() if "/" in w}
        self.plurals["bus"] = "buses"
        self.classes = {name: _split(c[2]) for name, c in NOUN_CLASSES.items()}
        self.classes["person"] = _split(PEOPLE)
        self.hypernym = {name: c[1] for name, c in NOUN_CLASSES.items()} | {"person": PERSON_HYPERNYM}
        self.class_of = {w: name for name, ws in self.classes.items() for w in ws}
        self.topic_of_class = {name: c[0] for name, c in NOUN_CLASSES.items()}
        self.adjectives = {d: (spec[0].split(), _split(spec[1]), _split(spec[2]))
                           for d, spec in ADJECTIVES.items()}
        self.adj_dim = {a: d for d, (_, pa, pb) in self.adjectives.items() for a in pa + pb}
        self.verbs_by_topic = {t: [v for v, (vt, _) in VERBS.items() if vt == t] for t in TOPICS}
        self.first, self.last = FIRST_NAMES.split(), SURNAMES.split()
        # Each class has its own typical count and share of plurals (grapes come by the
        # eight, cars one at a time), so shared digits carry class information.
        self.count_centre = {c: 2 + (3 * i) % 8 for i, c in enumerate(self.classes)}
        self.plural_share = {c: 0.15 + 0.06 * ((5 * i) % 9) for i, c in enumerate(self.classes)}

    def words(self) -> list[str]:
        """Every translatable lemma, in a stable order (the domain of each word map)."""
        out = list(FUNCTION_WORDS) + list(VERBS) + list(INTRANSITIVE) + list(CAUSES)
        for ws in self.classes.values():
            out += ws
        out += list(self.hypernym.values()) + [p for t in TOPICS for p in PLACES[t].split()]
        out += [a for _, pa, pb in self.adjectives.values() for a in pa + pb]
        return list(dict.fromkeys(out))

    def adjective_poles(self, adj: str) -> tuple[list[str], list[str]]:
        """(synonyms incl. adj, antonyms) of an adjective."""
        _, pa, pb = self.adjectives[self.adj_dim[adj]]
        if self.adj_dim[adj] == "colour":
            return [adj], [c for c in pa if c != adj]  # colours exclude each other
        return (pa, pb) if adj in pa else (pb, pa)

    def adjectives_for(self, cls: str) -> list[str]:
        """Adjectives whose dimension describes nouns of class `cls`."""
        return [a for a, d in self.adj_dim.items() if cls in self.adjectives[d][0]]


LEX = Lexicon()


def zipf_choice(rng: random.Random, items: list[str]) -> str:
    """Pick with weights 1/rank, so words of a class have unequal, stable frequencies."""
    return rng.choices(items, weights=[1.0 / (i + 1) for i in range(len(items))])[0]


class Grammar:
    """Samples sentence structures from the lexicon; all randomness comes from `rng`."""

    def __init__(self, rng: random.Random, *, topical_anchors: bool = True) -> None:
        self.rng = rng
        # Off for the topic task: a classifier could read the topic off shared names and
        # digits without any pretraining, and the random-init control must stay at chance.
        self.topical_anchors = topical_anchors

    def person(self, role: str, topic: str = "") -> Phrase:
        """A subject: a named person (PER), an organisation (ORG) or a common noun."""
        r = self.rng.random()
        if r < 0.55:
            toks = [Token(self.rng.choice(LEX.first), "PROPN", "B-PER", anchor=True)]
            if self.rng.random() < 0.4:
                toks.append(Token(self.rng.choice(LEX.last), "PROPN", "I-PER", anchor=True))
            return Phrase(role, toks)
        if r < 0.65:
            return Phrase(role, self.named(self.anchor_name(ORGS, topic), "ORG"))
        return self.noun_phrase(role, "person", adj_p=0.0)

    def anchor_name(self, names: dict[str, list[str]], topic: str) -> str:
        """Mostly a name of `topic`, sometimes any other."""
        if not topic or not self.topical_anchors or self.rng.random() < 0.15:
            topic = self.rng.choice(TOPICS)
        return self.rng.choice(names[topic])

    def named(self, name: str, kind: str) -> list[Token]:
        """The tokens of a multi-word name tagged B-/I-`kind`."""
        return [Token(w, "PROPN", ("B-" if i == 0 else "I-") + kind, anchor=True)
                for i, w in enumerate(name.split())]

    def noun_phrase(self, role: str, cls: str, *, adj_p: float = 0.4, noun: str = "",
                    number: str = "", adj: str = "") -> Phrase:
        """[the|a|NUM] [ADJ] NOUN of class `cls`; the choices not given are sampled."""
        rng = self.rng
        noun = noun or zipf_choice(rng, LEX.classes[cls])
        number = number or ("pl" if rng.random() < LEX.plural_share[cls] else "sg")
        toks = []
        if number == "pl" and rng.random() < 0.7:
            centre = LEX.count_centre[cls] if self.topical_anchors else rng.randint(2, 9)
            count = rng.choices(range(2, 10), weights=[0.3 ** abs(n - centre) for n in range(2, 10)])[0]
            toks.append(Token(str(count), "NUM", anchor=True))
        else:
            toks.append(Token("a" if number == "sg" and rng.random() < 0.5 else "the", "DET"))
        if not adj and rng.random() < adj_p and LEX.adjectives_for(cls):
            adj = zipf_choice(rng, LEX.adjectives_for(cls))
        if adj:
            toks.append(Token(adj, "ADJ"))
        toks.append(Token(noun, "NOUN", number=number))
        return Phrase(role, toks)

    def place(self, topic: str) -> Phrase:
        """A prepositional phrase: a topic setting or a named location (LOC)."""
        prep = self.rng.choice(["in", "at", "to", "from", "near", "with"])
        if prep == "with":
            np = self.person("PP", topic)
        elif self.rng.random() < 0.5:
            np = Phrase("PP", self.named(self.anchor_name(LOCS, topic), "LOC"))
        else:
            np = Phrase("PP", [Token("the", "DET"), Token(zipf_choice(self.rng, PLACES[topic].split()), "NOUN")])
        return Phrase("PP", [Token(prep, "ADP")] + np.tokens, prep=prep)

    def verb_and_object(self, topic: str) -> tuple[str, str]:
        """A verb and an object class that fit `topic`."""
        rng = self.rng
        if rng.random() < 0.3:
            verb = zipf_choice(rng, [v for v, (t, _) in VERBS.items() if t == "any"])
            cls = rng.choice([c for c in GENERIC_OBJECTS.split() if LEX.topic_of_class[c] == topic])
            return verb, cls
        verb = zipf_choice(rng, LEX.verbs_by_topic[topic])
        return verb, rng.choice(VERBS[verb][1].split())

    def clause(self, topic: str, *, pp_p: float = 0.4, obj_cls: str = "", verb: str = "") -> Clause:
        """SUBJ VERB OBJ [PP] for a topic (the default) or a given verb and object class."""
        if not verb:
            verb, obj_cls = self.verb_and_object(topic)
        subj = self.person("SUBJ", topic)
        number = subj.tokens[-1].number
        out = [subj, Phrase("VERB", [Token(verb, "VERB", number=number)])]
        if obj_cls:
            out.append(self.noun_phrase("OBJ", obj_cls))
        if self.rng.random() < pp_p:
            out.append(self.place(topic))
        return out

    def state_clause(self, subj: Phrase, state: str) -> Clause:
        """SUBJ be STATE (a copula clause, used for causes)."""
        be = Token("be", "AUX", number=subj.tokens[-1].number)
        return [subj, Phrase("AUX", [be]), Phrase("PRED", [Token(state, "ADJ")])]

    def effect_clause(self, subj: Phrase, state: str) -> Clause:
        """The action a state causes, e.g. hungry -> SUBJ eat a pear."""
        verb, classes = CAUSES[state]
        out = [subj, Phrase("VERB", [Token(verb, "VERB", number=subj.tokens[-1].number)])]
        if classes in LEX.class_of:  # a fixed object such as "the doctor"
            out.append(Phrase("OBJ", [Token("the", "DET"), Token(classes, "NOUN")]))
        elif classes:
            out.append(self.noun_phrase("OBJ", self.rng.choice(classes.split()), adj_p=0.2))
        return out

    def sentence(self) -> Sentence:
        """A random declarative sentence: ~15% two clauses joined by so/because, ~5% definitions."""
        topic = self.rng.choices(TOPICS, weights=TOPIC_WEIGHTS)[0]
        r = self.rng.random()
        if r < 0.15:
            return self.causal_sentence()
        if r < 0.2:
            return self.definition(topic)
        return Sentence([self.clause(topic) + [punct(".")]], topic=topic)

    def definition(self, topic: str) -> Sentence:
        """'a pear is a fruit .': the hypernym relation, stated as text does now and then."""
        cls = self.rng.choice([c for c, t in LEX.topic_of_class.items() if t == topic])
        subj = self.noun_phrase("SUBJ", cls, adj_p=0.0, number="sg")
        pred = Phrase("PRED", [Token("a", "DET"), Token(LEX.hypernym[cls], "NOUN")])
        be = Phrase("AUX", [Token("be", "AUX")])
        return Sentence([[subj, be, pred, punct(".")]], topic=topic)

    def topic_sentence(self) -> Sentence:
        """A one-clause sentence whose verb and object belong to a uniformly drawn topic."""
        topic = self.rng.choice(TOPICS)
        return Sentence([self.clause(topic) + [punct(".")]], topic=topic)

    def copa_item(self) -> tuple[Sentence, Sentence, Sentence, str, int]:
        """(premise, choice1, choice2, question, label): a state and the action it causes."""
        right, wrong = self.rng.sample(list(CAUSES), 2)
        subj = self.person("SUBJ")
        question = self.rng.choice(["cause", "effect"])
        premise_of, choice_of = (self.state_clause, self.effect_clause)[::1 if question == "effect" else -1]
        premise = premise_of(copy_phrase(subj), right)
        choices = [choice_of(copy_phrase(subj), right), choice_of(copy_phrase(subj), wrong)]
        label = self.rng.randint(0, 1)
        if label == 1:
            choices.reverse()
        return (*(Sentence([c + [punct(".")]]) for c in [premise, *choices]), question, label)

    def causal_sentence(self) -> Sentence:
        """'X is hungry , so X eats a pear .' or the 'because' order."""
        state = self.rng.choice(list(CAUSES))
        subj = self.person("SUBJ")
        cause, effect = self.state_clause(subj, state), self.effect_clause(copy_phrase(subj), state)
        if self.rng.random() < 0.5:
            return Sentence([cause + [punct(",")], [conj("so")] + effect + [punct(".")]])
        return Sentence([effect, [conj("because")] + cause + [punct(".")]])


def punct(mark: str) -> Phrase:
    """A punctuation phrase (anchored: the same mark in every language)."""
    return Phrase("PUNCT", [Token(mark, "PUNCT", anchor=True)])


def conj(word: str) -> Phrase:
    """A clause-initial connective phrase (so, because)."""
    return Phrase("CONJ", [Token(word, FUNCTION_WORDS[word])])


def copy_phrase(phrase: Phrase) -> Phrase:
    """A copy whose tokens can be edited without touching the original."""
    return replace(phrase, tokens=[replace(t) for t in phrase.tokens])


def copy_sentence(sent: Sentence) -> Sentence:
    """A deep copy cheap enough for per-item edits (tasks derive pairs from one sentence)."""
    return Sentence([[copy_phrase(p) for p in c] for c in sent.clauses], sent.topic, dict(sent.meta))


def find(sent: Sentence, role: str) -> Phrase | None:
    """The first phrase with `role` in the sentence, or None."""
    return next((p for c in sent.clauses for p in c if p.role == role), None)


# Grammatical case -> UD Case value; the unmarked case (subjects, predicates, "near") is Nom.
UD_CASE = {"": "Nom", "acc": "Acc", "loc": "Loc", "dat": "Dat", "abl": "Abl", "ins": "Ins"}
UD_NUMBER = {"sg": "Sing", "pl": "Plur"}
MORPH_LABELS = ["_"] + [f"Case={case}|Number={number}" for case in UD_CASE.values() for number in UD_NUMBER.values()]
_CASE_ROLES = ("SUBJ", "OBJ", "PP", "PRED")


def mark_morphology(sent: Sentence) -> Sentence:
    """Set each noun phrase head's `feats` to its UD case and number, e.g. Case=Acc|Number=Plur.

    The case is the one the agglutinative transformation spells as a suffix on the same token
    (objects accusative, a prepositional phrase the case its preposition stands for, the
    rest unmarked), so the tags follow the morphology of xc and the syntax of English.
    """
    for clause in sent.clauses:
        for phrase in clause:
            if phrase.role not in _CASE_ROLES or not any(t.upos in ("NOUN", "PROPN", "PRON") for t in phrase.tokens):
                continue
            case = {"OBJ": "acc", "PP": PREPOSITIONS.get(phrase.prep, "")}.get(phrase.role, "")
            token = head(phrase)
            token.feats = f"Case={UD_CASE[case]}|Number={UD_NUMBER[token.number]}"
    return sent


def head(phrase: Phrase) -> Token:
    """The phrase's head: its last nominal token (suffixes attach here)."""
    return next(t for t in reversed(phrase.tokens) if t.upos in ("NOUN", "PROPN", "PRON", "ADJ"))
