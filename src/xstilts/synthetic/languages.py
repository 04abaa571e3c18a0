"""Languages derived from the English-like grammar by controlled transformations.

Which transformations a language uses is data (`languages.yaml`), so studies can vary it.
Each transformation acts on the sentence *structure*, never on strings:

- `vocabulary`: a bijective map from every English lemma to an invented word, plus the
  language's own plural ending; names and digits stay (the anchors real languages share);
  languages that name the same `lexicon` share their words, like related languages;
- `word_order`: clause order (SOV, VSO), postpositions, adjectives after the noun;
- `suffixes`: agglutinative case and number suffixes on the head of each noun phrase;
  articles disappear and prepositions with a case are absorbed into the suffix;
- `script`: transliteration of the final forms into Cyrillic or Greek letters.

Because tokens keep their tags while phrases move and grow suffixes, tagging labels,
QA answer spans and parallel sentences stay aligned in every language.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from xstilts.config.loading import read_yaml
from xstilts.errors import UserError, did_you_mean
from xstilts.synthetic.grammar import LEX, PREPOSITIONS, Phrase, Sentence, Token, copy_sentence, head

_CYRILLIC = dict(zip("abcdefghijklmnopqrstuvwxyz", "абцдефгхийклмнопкрстуввхыз"))
_GREEK = dict(zip("abcdefghijklmnopqrstuvwxyz", "αβκδεφγηιικλμνοπκρστυβωξυζ"))
ALPHABETS = {"cyrillic": _CYRILLIC, "greek": _GREEK}
TRANSFORMATIONS = ("vocabulary", "word_order", "suffixes", "script")
# What each transformation accepts, with defaults (unknown keys are errors).
_PARAMS: dict[str, dict[str, Any]] = {
    "vocabulary": {"lexicon": "", "consonants": "ptkmnlsrv", "vowels": "aeiou", "plural": "i"},
    "word_order": {"order": "SOV", "adpositions": "pre", "adjectives": "before"},
    "suffixes": {"cases": {"acc": "ka", "loc": "da", "dat": "ne", "abl": "tan", "ins": "la"},
                 "plural": "lar"},
    "script": {"alphabet": "cyrillic", "transliterate_names": False},
}
_VERB_ROLES = ("VERB", "AUX")
_NOMINAL = ("NOUN", "PROPN", "PRON")


@dataclass
class Language:
    """One language: its codes, description and the transformations that derive it."""

    code: str
    iso3: str
    description: str
    transformations: list[dict[str, Any]] = field(default_factory=list)
    word_map: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.params = {t["type"]: {**_PARAMS[t["type"]], **t} for t in self.transformations}
        if "vocabulary" in self.params:
            vocab = self.params["vocabulary"]
            self.word_map = build_word_map(vocab["lexicon"] or self.code, vocab)

    def realize(self, sent: Sentence) -> list[tuple[str, Token, int]]:
        """The sentence in this language as (form, token, phrase id) triples, in order."""
        sent = copy_sentence(sent)
        for t in self.transformations:
            if t["type"] == "word_order":
                _reorder(sent, self.params["word_order"])
            elif t["type"] == "suffixes":
                _attach_suffixes(sent, self.params["suffixes"])
        flat = [(tok, p.pid) for c in sent.clauses for p in c for tok in p.tokens]
        forms = [self._form(tok) for tok, _ in flat]
        if not self.word_map:  # English a/an depends on the next word's sound
            for i, (tok, _) in enumerate(flat[:-1]):
                if tok.lemma == "a" and forms[i + 1][0] in "aeiou":
                    forms[i] = "an"
        return [(f, tok, pid) for f, (tok, pid) in zip(forms, flat)]

    def text(self, sent: Sentence) -> str:
        """The sentence as one space-separated line."""
        return " ".join(f for f, _, _ in self.realize(sent))

    def _form(self, tok: Token) -> str:
        if tok.anchor:
            form = tok.lemma + tok.suffix
            script = self.params.get("script")
            return _transliterate(form, script["alphabet"]) if script and script["transliterate_names"] else form
        suffixed = "suffixes" in self.params  # number then lives in the suffix
        form = self.word_map.get(tok.lemma, tok.lemma) if self.word_map else _english(tok, plural=not suffixed)
        if self.word_map and tok.upos == "NOUN" and tok.number == "pl" and not suffixed:
            form += self.params["vocabulary"]["plural"]
        form += tok.suffix
        if "script" in self.params:
            form = _transliterate(form, self.params["script"]["alphabet"])
        return form


def _english(tok: Token, *, plural: bool = True) -> str:
    """English inflection: plural nouns, 3rd person singular verbs, forms of be/do."""
    w = tok.lemma
    if tok.upos in _VERB_ROLES:
        if w == "be":
            return "is" if tok.number == "sg" else "are"
        if tok.number != "sg":
            return w
        return "does" if w == "do" else _add_s(w)
    if tok.upos == "NOUN" and tok.number == "pl" and plural:
        return LEX.plurals.get(w) or _add_s(w)
    return w


def _add_s(w: str) -> str:
    if w.endswith(("s", "sh", "ch", "x")):
        return w + "es"
    if w.endswith("y") and w[-2] not in "aeiou":
        return w[:-1] + "ies"
    return w + "s"


def _transliterate(form: str, alphabet: str) -> str:
    table = ALPHABETS[alphabet]
    out = [table.get(ch.lower(), ch) for ch in form]
    return "".join(o.upper() if ch.isupper() else o for o, ch in zip(out, form))


def _reorder(sent: Sentence, params: dict[str, Any]) -> None:
    """Move the verb group per clause, adjectives within NPs, adpositions within PPs."""
    for i, clause in enumerate(sent.clauses):
        n_lead = 0  # connectives and fronted question words keep the first slots
        while n_lead < len(clause) and (clause[n_lead].role == "CONJ" or _is_wh(clause[n_lead])):
            n_lead += 1
        lead, body = clause[:n_lead], clause[n_lead:]
        tail = [p for p in body if p.role == "PUNCT"]
        verbs = [p for p in body if p.role in _VERB_ROLES]
        rest = [p for p in body if p.role != "PUNCT" and p.role not in _VERB_ROLES]
        if params["order"] == "SOV":
            sent.clauses[i] = lead + rest + verbs + tail
        elif params["order"] == "VSO":
            sent.clauses[i] = lead + verbs + rest + tail
        for p in sent.clauses[i]:
            if params["adjectives"] == "after" and any(t.upos == "NOUN" for t in p.tokens):
                adjs = [t for t in p.tokens if t.upos == "ADJ" and t.lemma != "many"]
                p.tokens = [t for t in p.tokens if t.upos != "ADJ" or t.lemma == "many"] + adjs
            if params["adpositions"] == "post" and p.role == "PP":
                p.tokens = [t for t in p.tokens if t.upos != "ADP"] + [t for t in p.tokens if t.upos == "ADP"]


def _is_wh(p: Phrase) -> bool:
    return p.tokens[0].lemma in ("who", "what", "how", "where")


def _attach_suffixes(sent: Sentence, params: dict[str, Any]) -> None:
    """Case and number suffixes on each NP head; articles go, case-bearing prepositions fuse."""
    cases = params["cases"]
    for clause in sent.clauses:
        for p in clause:
            if p.role not in ("SUBJ", "OBJ", "PP", "PRED") or not any(t.upos in _NOMINAL for t in p.tokens):
                p.tokens = [t for t in p.tokens if t.upos != "DET"]
                continue
            case = {"OBJ": "acc", "PP": PREPOSITIONS.get(p.prep, "")}.get(p.role, "")
            suffix = cases.get(case, "") if case else ""
            p.tokens = [t for t in p.tokens if t.upos != "DET"
                        and not (t.upos == "ADP" and suffix)]
            h = head(p)
            if h.upos == "NOUN" and h.number == "pl":
                h.suffix += params["plural"]
            h.suffix += suffix


def build_word_map(lexicon: str, params: dict[str, Any]) -> dict[str, str]:
    """A bijective lemma -> invented word map, stable for a lexicon name and letters.

    Languages naming the same lexicon share their words, as related languages do; the
    default lexicon is the language's own code. Words are built from the given consonants
    and vowels; longer English words get longer words so length statistics stay
    comparable. No invented word equals an English lemma or another invented word.
    """
    rng = random.Random(f"xstilts-lexicon:{lexicon}")
    cons, vows = params["consonants"], params["vowels"]
    english = set(LEX.words())
    used: set[str] = set()
    out: dict[str, str] = {}
    for lemma in LEX.words():
        n_syll = 1 if len(lemma) <= 3 else 2 if len(lemma) <= 6 else 3
        while True:
            word = "".join(rng.choice(cons) + rng.choice(vows) for _ in range(n_syll))
            if rng.random() < 0.3:
                word += rng.choice(cons)
            if word not in used and word not in english:
                break
            n_syll += rng.random() < 0.2  # crowded short words: sometimes go longer
        used.add(word)
        out[lemma] = word
    return out


def default_languages_file() -> Path:
    """The shipped languages.yaml."""
    return Path(str(resources.files("xstilts.synthetic") / "languages.yaml"))


def load_languages(path: Path | None = None) -> list[Language]:
    """Read a languages file; English (identity, code `en`) must be among them.

    Raises:
        UserError: a missing key, an unknown transformation or parameter, or no `en`.
    """
    path = Path(path) if path else default_languages_file()
    doc = read_yaml(path, "languages file")
    entries = doc.get("languages") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise UserError(f"{path}: expected a top-level 'languages:' list")
    langs = [_parse_language(path, i, e) for i, e in enumerate(entries)]
    codes = [lang.code for lang in langs]
    if "en" not in codes or len(set(codes)) != len(codes):
        raise UserError(f"{path}: language codes must be unique and include 'en', got {codes}")
    return langs


def _parse_language(path: Path, i: int, entry: Any) -> Language:
    where = f"{path}: languages[{i}]"
    if not isinstance(entry, dict) or not {"code", "iso3", "description"} <= set(entry):
        raise UserError(f"{where}: needs code, iso3 and description")
    unknown = set(entry) - {"code", "iso3", "description", "transformations"}
    if unknown:
        key = sorted(unknown)[0]
        raise UserError(f"{where}: unknown key {key!r}{did_you_mean(key, ['transformations'])}")
    transformations = entry.get("transformations") or []
    for t in transformations:
        kind = t.get("type") if isinstance(t, dict) else None
        if kind not in TRANSFORMATIONS:
            raise UserError(f"{where}: unknown transformation {kind!r}{did_you_mean(str(kind), TRANSFORMATIONS)}")
        for key in set(t) - {"type"} - set(_PARAMS[kind]):
            raise UserError(f"{where}: {kind} has no parameter {key!r}{did_you_mean(key, _PARAMS[kind])}")
    return Language(str(entry["code"]), str(entry["iso3"]), str(entry["description"]), transformations)
