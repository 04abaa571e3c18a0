"""MultiCheckList (XTREME-R): behavioural QA test cases generated from the official templates.

`checklist_templates.tsv` (google-research/xtreme, Apache 2.0) holds six CheckList tests of
extractive QA translated into 50 languages. Its layout:

- line 1: `Field`, then one column per language (ISO code); a language may repeat as
  `LANG` / `LANG-placeholders` column pairs holding argument-dependent variants.
- per test, rows keyed by their first field: `Name`, `Capability`, one or more `Context`
  templates, alternating `Question` / `Answer` templates, then argument rows (`adj`, `state`,
  `obj`, `color`, `property`, `animal`, ...: one value per row and language); a blank line ends
  the test.
- templates use `{arg}`, `{arg[i]}` (the i-th comma-separated part of a value, e.g. the
  comparative and the plain adjective), `{first_name}` / `{first_name1}` / `{first_name2}`
  (distinct people), `{s}` (a `state`), and `{p.p1}` / `{p.v1}` (a property's name and one of
  its values: `property` rows name the properties, whose values are the rows named by the
  English property name).

Generation here is deterministic and generic: for each test and language, `samples` draws of
the arguments (a `random.Random` seeded by seed, test and language), each filled into every
context template crossed with every question/answer pair (as the official generator's
crossproduct does). Deviations from the official suite, which uses checklist's per-language
name lexicons and hand-written code per language: each language's FIRST column is used (the
`-placeholders` variants, inflections that agree with another argument, are ignored); names
come from `NAMES` (male names, as the official generator uses for its gender-marked templates);
a QA pair whose filled answer is not a span of its filled context (an inflected form) is
dropped, and so is one whose answer names a property value its question does not name.
Scoring is per QA pair (failure rate = 100 - exact match), not per CheckList test case.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from xstilts.data.io import Example, numbered_lines
from xstilts.errors import UserError
from xstilts.tasks.spec import TaskSpec

PLACEHOLDERS_SUFFIX = "-placeholders"
# The official generator's defaults: 200 draws per test, numpy seed 42 (a different generator).
DEFAULT_SAMPLES = 200
DEFAULT_SEED = 42
TEMPLATE_ROWS = ("Context", "Question", "Answer")
NAMES = ["John", "David", "Ali", "Omar", "Ivan", "Ravi", "Kofi", "Lucas", "Tomas", "Hassan",
         "Jonas", "Mateo", "Daniel", "Peter", "Samuel", "Adam", "Marco", "Karim", "Pablo", "Kenji"]
NAME_SLOTS = {"first_name": 0, "male": 0, "first_name1": 1, "first_name2": 2}
ALIASES = {"s": "state"}  # the official generator passes the `state` rows as `s`
# Short names of the six official tests (their `Name` rows are sentences); others are slugified.
SLUGS = {
    "A is COMP than B. Who is more / less COMP?": "comparisons",
    "Intensifiers (very, super, extremely) and reducers (somewhat, kinda, etc)?": "intensifiers",
    "size, shape, age, color": "properties",
    "Profession vs nationality": "profession-vs-nationality",
    "Animal vs Vehicle": "animal-vs-vehicle",
    "Animal vs Vehicle v2": "animal-vs-vehicle-v2",
}
SLOT = re.compile(r"\{(c:)?([A-Za-z_]\w*)(?:\.(\w+))?(?:\[(\d+)\])?\}")  # {c:obj[1]}: capitalised
# A sentence's first letter (uncased scripts are unchanged): "the sofa is red" after a full stop.
SENTENCE_START = re.compile(r"(^|[.!?]\s+)(\w)")
PARTS = re.compile(r"\s*[,،，、]\s*")


def slug(name: str) -> str:
    """The test's short name, used as its subset and split name ("test/<slug>")."""
    return SLUGS.get(name) or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@dataclass
class CheckListTest:
    """One test's templates and arguments; per language, its first column's non-empty cells."""

    name: str
    line: int
    capability: str = ""
    contexts: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # language -> (line, template)
    qas: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)  # language -> (line, question, answer)
    args: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # arg -> rows (language -> value)
    # Arguments of the tests before this one, for those it uses without defining them.
    inherited: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return slug(self.name)

    def values(self, arg: str, language: str) -> list[str]:
        rows = self.args[arg] if arg in self.args else self.inherited.get(arg, [])
        return [row[language] for row in rows if row.get(language)]

    def slots(self, language: str) -> list[str]:
        """The arguments the language's templates use (sorted), as `_draw` keys them."""
        texts = [text for _, text in self.contexts.get(language, [])]
        texts += [part for _, question, answer in self.qas.get(language, []) for part in (question, answer)]
        names = {ALIASES.get(m.group(2), m.group(2)) for text in texts for m in SLOT.finditer(text)}
        return sorted(names - set(NAME_SLOTS) - {"p"})


def _language_columns(header: list[str], path: Path) -> dict[str, int]:
    """Language -> its first column (the default translation)."""
    if not header or header[0] != "Field" or len(header) < 2:
        raise UserError(f"{path}:1: expected a header 'Field<TAB>LANG<TAB>...' (language columns)")
    columns: dict[str, int] = {}
    for index, name in enumerate(header[1:], start=1):
        if not name.strip():
            raise UserError(f"{path}:1: column {index + 1} of the header has no language")
        if not name.endswith(PLACEHOLDERS_SUFFIX):
            columns.setdefault(name, index)
    return columns


def _add_row(test: CheckListTest, kind: str, cells: dict[str, str], where: str, number: int, previous: tuple[str, dict] | None) -> None:
    """Add one row to `test`; `previous` is the row before it (kind, cells) within the test."""
    if kind == "Capability":
        test.capability = cells.get("en", "") or next((v for v in cells.values() if v), "")
    elif kind == "Context":
        for language, text in cells.items():
            if text:
                test.contexts.setdefault(language, []).append((number, text))
    elif kind == "Question":
        pass  # paired with the Answer row that must follow
    elif kind == "Answer":
        if previous is None or previous[0] != "Question":
            raise UserError(f"{where}: an Answer row must follow a Question row")
        for language, answer in cells.items():
            question = previous[1].get(language, "")
            if question and answer:
                test.qas.setdefault(language, []).append((number, question, answer))
    else:
        test.args.setdefault(kind, []).append(cells)


def _close(test: CheckListTest | None, path: Path, tests: list[CheckListTest]) -> None:
    if test is None:
        return
    if not test.contexts or not test.qas:
        raise UserError(f"{path}:{test.line}: test {test.name!r} has no Context, or no Question/Answer rows")
    if any(other.slug == test.slug for other in tests):
        raise UserError(f"{path}:{test.line}: a second test named {test.name!r}")
    # The official file's "Animal vs Vehicle v2" has no argument rows: it reuses the animals and
    # vehicles of the test before it (as the official generator does).
    for other in tests:
        test.inherited.update(other.args)
    tests.append(test)


def read_templates(path: Path) -> tuple[list[str], list[CheckListTest]]:
    """The languages and tests of a templates file.

    Raises:
        UserError: a malformed file, naming the file and line (a bad header, a row wider than
            the header, a row outside a test, an Answer without its Question, a test without
            templates).
    """
    lines = numbered_lines(Path(path))
    first = next(lines, None)
    columns = _language_columns(first[1].split("\t") if first else [], path)
    width = len(first[1].split("\t"))
    tests: list[CheckListTest] = []
    test, previous = None, None
    for number, line in lines:
        fields = line.split("\t")
        where = f"{path}:{number}"
        if len(fields) > width:
            raise UserError(f"{where}: {len(fields)} tab-separated fields, the header has {width}")
        kind = fields[0].strip()
        if not kind:
            if any(cell.strip() for cell in fields):
                raise UserError(f"{where}: a row without its kind in the first column (Name, Context, an argument...)")
            _close(test, path, tests)
            test, previous = None, None
            continue
        fields += [""] * (width - len(fields))
        if kind == "Name":
            _close(test, path, tests)
            if not fields[1].strip():
                raise UserError(f"{where}: a Name row without the test's name (second column)")
            test, previous = CheckListTest(name=fields[1].strip(), line=number), None
            continue
        if test is None:
            raise UserError(f"{where}: a {kind!r} row outside a test (no Name row before it)")
        cells = {language: fields[index].strip() for language, index in columns.items()}
        _add_row(test, kind, cells, where, number, previous)
        previous = (kind, cells)
    _close(test, path, tests)
    if not tests:
        raise UserError(f"{path}: no tests (a test starts with a Name row)")
    return list(columns), tests


def _parts(value: str) -> list[str]:
    """`{arg[i]}`'s parts: comma-separated (any script's comma), else space-separated (Thai)."""
    parts = PARTS.split(value)
    return parts if len(parts) > 1 else value.split()


def _properties(test: CheckListTest, language: str) -> list[tuple[str, str]]:
    """(English property name, its translation) for each property the language has values for."""
    return [
        (row["en"], row[language]) for row in test.args.get("property", [])
        if row.get("en") and row.get(language) and test.values(row["en"], language)
    ]


def _draw(test: CheckListTest, language: str, rng: random.Random) -> dict[str, str | list[str]]:
    """One sample: a value for every argument of the test, two properties and three names."""
    drawn: dict[str, str | list[str]] = {"names": rng.sample(NAMES, 3)}
    for arg in test.slots(language):
        values = test.values(arg, language)
        if values:
            drawn[arg] = rng.choice(values)
    properties = _properties(test, language)
    if len(properties) >= 2:
        for number, (english, translated) in enumerate(rng.sample(properties, 2), start=1):
            drawn[f"p.p{number}"] = translated
            drawn[f"p.v{number}"] = rng.choice(test.values(english, language))
    return drawn


def _fill(template: str, drawn: dict, where: str, language: str) -> str:
    """The template with every `{...}` slot replaced by this sample's values."""

    def value(match: re.Match) -> str:
        capital, name, attr, index = match.groups()
        if name in NAME_SLOTS:
            text = drawn["names"][NAME_SLOTS[name]]
        else:
            key = f"{name}.{attr}" if attr else ALIASES.get(name, name)
            if key not in drawn:
                raise UserError(f"{where}: placeholder {match.group(0)} (language {language}) has no argument values in this test")
            text = drawn[key]
        if index is not None:
            parts = _parts(text)
            if int(index) >= len(parts):
                raise UserError(f"{where}: placeholder {match.group(0)} (language {language}): value {text!r} has no part {index}")
            text = parts[int(index)]
        return text[:1].upper() + text[1:] if capital else text

    return SLOT.sub(value, template)


def _names_its_property(question: str, answer: str) -> bool:
    """False for an answer `{p.vN}` whose question does not ask for property N (ambiguous)."""
    return all(f"p.p{n}" in question for n in ("1", "2") if f"p.v{n}" in answer)


def generate_cases(test: CheckListTest, language: str, *, samples: int, seed: int, path: Path) -> list[Example]:
    """The span-QA examples of one test in one language (see the module docstring).

    Same file, test, language, samples and seed -> the same examples, on any machine.
    """
    rng = random.Random(f"{seed}:{test.slug}:{language}")  # str seeds hash with SHA-512: stable
    contexts = test.contexts.get(language, [])
    qas = [qa for qa in test.qas.get(language, []) if _names_its_property(qa[1], qa[2])]
    examples, seen = [], set()
    for sample in range(samples if contexts and qas else 0):
        drawn = _draw(test, language, rng)
        for c_index, (c_line, c_template) in enumerate(contexts):
            context = SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), _fill(c_template, drawn, f"{path}:{c_line}", language))
            for q_index, (q_line, q_template, a_template) in enumerate(qas):
                question = _fill(q_template, drawn, f"{path}:{q_line - 1}", language)
                answer = _fill(a_template, drawn, f"{path}:{q_line}", language)
                start = context.find(answer)
                if not answer or start < 0 or (context, question) in seen:
                    continue  # an inflected answer that is no span of the context; a repeated draw
                seen.add((context, question))
                examples.append({
                    "id": f"{test.slug}-{sample}-{c_index}-{q_index}", "context": context, "question": question,
                    "answers": [{"text": answer, "answer_start": start}], "is_impossible": False,
                    "test": test.slug, "capability": test.capability,
                })
    return examples


def _int_option(spec: TaskSpec, name: str, default: int, minimum: int) -> int:
    value = spec.local.options.get(name, default) if spec.local else default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"task {spec.name!r}: local.options.{name} must be an integer of at least {minimum}, got {value!r}")
    return value


def read_multichecklist(path: Path, spec: TaskSpec, *, language: str) -> list[Example]:
    """Every test's cases in `language`, generated from the templates file at `path`.

    Options (`local.options`): `samples` (draws per test, default 200) and `seed` (default 42).
    Each example carries its test's short name in `test` (the spec's subsets select on it).

    Raises:
        UserError: a malformed templates file (naming file and line) or a language it lacks.
    """
    samples, seed = _int_option(spec, "samples", DEFAULT_SAMPLES, 1), _int_option(spec, "seed", DEFAULT_SEED, 0)
    languages, tests = read_templates(path)
    if language not in languages:
        raise UserError(f"{path}: no column for language {language!r} (the file has {len(languages)}: {' '.join(languages)})")
    return [case for test in tests for case in generate_cases(test, language, samples=samples, seed=seed, path=path)]


# One file holds every language: data.loading tells this reader which one to generate.
read_multichecklist.reads_language = True  # type: ignore[attr-defined]
