"""The embedded default corpus: generated English -> German number and date sentences.

Deterministic for a seed, offline, and small enough that a model learns it on a laptop
CPU in minutes. Its alignments are deliberately not monotonic, so attention plots show
something worth seeing:

- German spells units before tens: "twenty-one" -> "einundzwanzig" (num2words).
- German dates put the day first: "March 21, 1987" -> "21. März 1987" (Babel).
- German main clauses are verb-second: "In 1987, Anna wrote ..." -> "1987 schrieb Anna ...",
  and separable particles go to the end: "... people arrived" -> "kamen ... Menschen an".

The generator knows which words translate which, and writes them as gold word alignments
(``{split}.align``: one line per pair, ``i-j`` sure and ``ipj`` possible links between 0-based
English and German word positions, words split at white space; the format of fast_align and of
Och & Ney's AER), which ``nmt compare`` scores the models' attention against.

Usage: ``python -m nmt.data.synthetic OUT_DIR`` writes ``OUT_DIR/{train,val,test}.{en,de,align}``.
"""

from __future__ import annotations

import argparse
import datetime
import random
from dataclasses import dataclass, field
from pathlib import Path

from babel.dates import format_date, get_day_names
from num2words import num2words

SPLITS = ("train", "val", "test")
DEFAULT_SIZES = {"train": 20_000, "val": 1_000, "test": 1_000}
DEFAULT_SEED = 1234

# (English plural, German plural)
NOUNS = [
    ("people", "Menschen"),
    ("children", "Kinder"),
    ("cars", "Autos"),
    ("books", "Bücher"),
    ("birds", "Vögel"),
    ("houses", "Häuser"),
    ("students", "Studenten"),
    ("trees", "Bäume"),
    ("ships", "Schiffe"),
    ("dogs", "Hunde"),
    ("cats", "Katzen"),
    ("tourists", "Touristen"),
]
# (English past, German finite verb in second position, German clause-final part)
VERBS = [
    ("arrived", "kamen", "an"),
    ("came back", "kamen", "zurück"),
    ("disappeared", "verschwanden", ""),
    ("were counted", "wurden", "gezählt"),
    ("were seen", "wurden", "gesehen"),
    ("were found", "wurden", "gefunden"),
]
# (English place, German prepositional phrase)
PLACES = [
    ("park", "Im Park"),
    ("city", "In der Stadt"),
    ("garden", "Im Garten"),
    ("school", "In der Schule"),
    ("village", "Im Dorf"),
    ("harbour", "Im Hafen"),
]
# (English item, German item with its article)
ITEMS = [
    ("book", "Das Buch"),
    ("car", "Das Auto"),
    ("house", "Das Haus"),
    ("ticket", "Die Fahrkarte"),
    ("table", "Der Tisch"),
    ("bicycle", "Das Fahrrad"),
    ("lamp", "Die Lampe"),
    ("computer", "Der Computer"),
]
NAMES = ["Anna", "Peter", "Maria", "Thomas", "Laura", "Michael", "Sophie", "Lukas", "Emma", "Jonas"]
FIRST_DAY = datetime.date(1900, 1, 1)
LAST_DAY = datetime.date(2030, 12, 31)


@dataclass
class _Pair:
    """An English-German pair built word group by word group, each side in its own order, with links."""

    en: list[str] = field(default_factory=list)
    de: list[str] = field(default_factory=list)
    links: dict[tuple[int, int], bool] = field(default_factory=dict)  # (en word, de word) -> sure

    def add(self, side: str, text: str) -> list[int]:
        """Append ``text``'s words to one side; their positions."""
        words = self.en if side == "en" else self.de
        start = len(words)
        words.extend(text.split())
        return list(range(start, len(words)))

    def link(self, en: list[int], de: list[int], sure: bool = True) -> None:
        for i in en:
            for j in de:
                self.links[(i, j)] = self.links.get((i, j), False) or sure

    def done(self) -> tuple[str, str, str]:
        """English, German (each ending with a full stop) and the alignment line."""
        self.en[-1] += "."
        self.de[-1] += "."
        align = " ".join(f"{i}{'-' if sure else 'p'}{j}" for (i, j), sure in sorted(self.links.items()))
        return " ".join(self.en), " ".join(self.de), align


def _count(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(2, 999)
    return num2words(n, lang="en"), num2words(n, lang="de")


def _link_count(p: _Pair, en: list[int], de: list[int]) -> None:
    """Every word of an English number to the German compound ("and" only possibly)."""
    for i in en:
        p.link([i], de, sure=p.en[i] != "and")


def _date(rng: random.Random) -> tuple[str, str]:
    day = FIRST_DAY + datetime.timedelta(days=rng.randint(0, (LAST_DAY - FIRST_DAY).days))
    return format_date(day, "MMMM d, y", locale="en"), format_date(day, "d. MMMM y", locale="de")


def _link_date(p: _Pair, en: list[int], de: list[int]) -> None:
    """ "March 21, 1987" - "21. März 1987": month, day and year."""
    p.link(en[:1], de[1:2])
    p.link(en[1:2], de[:1])
    p.link(en[2:], de[2:])


def _dated_event(rng: random.Random) -> tuple[str, str, str]:
    (date_en, date_de), (n_en, n_de) = _date(rng), _count(rng)
    noun_en, noun_de = rng.choice(NOUNS)
    verb_en, verb_de, tail_de = rng.choice(VERBS)
    p = _Pair()
    on, date, count, noun, verb = (p.add("en", t) for t in ("On", date_en + ",", n_en, noun_en, verb_en))
    am, date_g, verb_g, count_g, noun_g, tail_g = (
        p.add("de", t) for t in ("Am", date_de, verb_de, n_de, noun_de, tail_de)
    )  # fmt: skip
    p.link(on, am)
    _link_date(p, date, date_g)
    _link_count(p, count, count_g)
    p.link(noun, noun_g)
    if len(verb) == 2:  # "came back" - "kamen ... zurück", "were seen" - "wurden ... gesehen"
        p.link(verb[:1], verb_g)
        p.link(verb[1:], tail_g)
    else:  # "arrived" - "kamen ... an"
        p.link(verb, verb_g + tail_g)
    return p.done()


def _birth(rng: random.Random) -> tuple[str, str, str]:
    date_en, date_de = _date(rng)
    name = rng.choice(NAMES)
    p = _Pair()
    name_e, was, born, on, date = (p.add("en", t) for t in (name, "was", "born", "on", date_en))
    name_g, wurde, am, date_g, geboren = (p.add("de", t) for t in (name, "wurde", "am", date_de, "geboren"))
    for e, g in ((name_e, name_g), (was, wurde), (born, geboren), (on, am)):
        p.link(e, g)
    _link_date(p, date, date_g)
    return p.done()


def _place(rng: random.Random) -> tuple[str, str, str]:
    n_en, n_de = _count(rng)
    noun_en, noun_de = rng.choice(NOUNS)
    place_en, place_de = rng.choice(PLACES)
    p = _Pair()
    there, are, count, noun, in_, the, place = (
        p.add("en", t) for t in ("There", "are", n_en, noun_en, "in", "the", place_en)
    )  # fmt: skip
    place_g, gibt, es, count_g, noun_g = (p.add("de", t) for t in (place_de, "gibt", "es", n_de, noun_de))
    p.link(there + are, gibt + es, sure=False)  # "There are" - "gibt es" as a phrase, and word for word:
    p.link(are, gibt)
    p.link(there, es)
    _link_count(p, count, count_g)
    p.link(noun, noun_g)
    p.link(in_, place_g[:1])
    p.link(place, place_g[-1:])
    if len(place_g) == 3:  # "In der Stadt"
        p.link(the, place_g[1:2])
    else:  # "Im Park": "the" is inside "Im" (in dem)
        p.link(the, place_g[:1], sure=False)
    return p.done()


def _weekday(rng: random.Random) -> tuple[str, str, str]:
    i = rng.randrange(7)
    day_en, day_de = get_day_names("wide", locale="en")[i], get_day_names("wide", locale="de")[i]
    n_en, n_de = _count(rng)
    noun_en, noun_de = rng.choice(NOUNS)
    name = rng.choice(NAMES)
    p = _Pair()
    on, day, name_e, saw, count, noun = (p.add("en", t) for t in ("On", day_en + ",", name, "saw", n_en, noun_en))
    am, day_g, sah, name_g, count_g, noun_g = (p.add("de", t) for t in ("Am", day_de, "sah", name, n_de, noun_de))
    for e, g in ((on, am), (day, day_g), (name_e, name_g), (saw, sah), (noun, noun_g)):
        p.link(e, g)
    _link_count(p, count, count_g)
    return p.done()


def _price(rng: random.Random) -> tuple[str, str, str]:
    n_en, n_de = _count(rng)
    item_en, item_de = rng.choice(ITEMS)
    p = _Pair()
    the, item, costs, count, euros = (p.add("en", t) for t in ("The", item_en, "costs", n_en, "euros"))
    item_g, kostet, count_g, euro = (p.add("de", t) for t in (item_de, "kostet", n_de, "Euro"))
    for e, g in ((the, item_g[:1]), (item, item_g[1:]), (costs, kostet), (euros, euro)):
        p.link(e, g)
    _link_count(p, count, count_g)
    return p.done()


def _year(rng: random.Random) -> tuple[str, str, str]:
    year = rng.randint(FIRST_DAY.year, LAST_DAY.year)
    n_en, n_de = _count(rng)
    name = rng.choice(NAMES)
    p = _Pair()  # "In" has no German word
    _, year_e, name_e, wrote, count, letters = (
        p.add("en", t) for t in ("In", f"{year},", name, "wrote", n_en, "letters")
    )  # fmt: skip
    year_g, schrieb, name_g, count_g, briefe = (p.add("de", t) for t in (str(year), "schrieb", name, n_de, "Briefe"))
    for e, g in ((year_e, year_g), (name_e, name_g), (wrote, schrieb), (letters, briefe)):
        p.link(e, g)
    _link_count(p, count, count_g)
    return p.done()


TEMPLATES = [_dated_event, _birth, _place, _weekday, _price, _year]
WEIGHTS = [4, 1, 2, 2, 1, 2]


def generate(sizes: dict[str, int] | None = None, seed: int = DEFAULT_SEED) -> dict[str, list[tuple[str, str]]]:
    """Return ``{split: [(english, german), ...]}``; no English sentence occurs in two splits."""
    return {split: [(en, de) for en, de, _ in triples] for split, triples in generate_aligned(sizes, seed).items()}


def generate_aligned(sizes: dict[str, int] | None = None, seed: int = DEFAULT_SEED) -> dict[str, list[tuple[str, ...]]]:
    """Return ``{split: [(english, german, alignment), ...]}`` (see the module docstring for the alignment)."""
    sizes = dict(DEFAULT_SIZES if sizes is None else sizes)
    rng = random.Random(seed)
    seen: set[str] = set()
    corpus: dict[str, list[tuple[str, ...]]] = {}
    for split in SPLITS:
        triples: list[tuple[str, ...]] = []
        while len(triples) < sizes.get(split, 0):
            en, de, align = rng.choices(TEMPLATES, WEIGHTS)[0](rng)
            if en not in seen:
                seen.add(en)
                triples.append((en, de, align))
        corpus[split] = triples
    return corpus


def write(out_dir: str | Path, sizes: dict[str, int] | None = None, seed: int = DEFAULT_SEED) -> Path:
    """Write ``out_dir/{split}.{en,de,align}``, one sentence (or alignment) a line, and return ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for split, triples in generate_aligned(sizes, seed).items():
        for column, name in enumerate(("en", "de", "align")):
            path = out / f"{split}.{name}"
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text("".join(t[column] + "\n" for t in triples), encoding="utf-8")
            tmp.replace(path)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m nmt.data.synthetic",
        description="Write the embedded English->German corpus as OUT_DIR/{train,val,test}.{en,de}.",
    )
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    for split in SPLITS:
        parser.add_argument(f"--{split}", type=int, default=DEFAULT_SIZES[split], help=f"{split} pairs")
    args = parser.parse_args(argv)
    out = write(args.out_dir, {s: getattr(args, s) for s in SPLITS}, args.seed)
    print(f"wrote {', '.join(f'{getattr(args, s)} {s}' for s in SPLITS)} pairs to {out}")


if __name__ == "__main__":
    main()
