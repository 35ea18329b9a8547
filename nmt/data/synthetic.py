"""The embedded default corpus: generated English -> German number and date sentences.

Deterministic for a seed, offline, and small enough that a model learns it on a laptop
CPU in minutes. Its alignments are deliberately not monotonic, so attention plots show
something worth seeing:

- German spells units before tens: "twenty-one" -> "einundzwanzig" (num2words).
- German dates put the day first: "March 21, 1987" -> "21. März 1987" (Babel).
- German main clauses are verb-second: "In 1987, Anna wrote ..." -> "1987 schrieb Anna ...",
  and separable particles go to the end: "... people arrived" -> "kamen ... Menschen an".

Usage: ``python -m nmt.data.synthetic OUT_DIR`` writes ``OUT_DIR/{train,val,test}.{en,de}``.
"""

from __future__ import annotations

import argparse
import datetime
import random
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


def _count(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(2, 999)
    return num2words(n, lang="en"), num2words(n, lang="de")


def _date(rng: random.Random) -> tuple[str, str]:
    day = FIRST_DAY + datetime.timedelta(days=rng.randint(0, (LAST_DAY - FIRST_DAY).days))
    return format_date(day, "MMMM d, y", locale="en"), format_date(day, "d. MMMM y", locale="de")


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _dated_event(rng: random.Random) -> tuple[str, str]:
    (date_en, date_de), (n_en, n_de) = _date(rng), _count(rng)
    noun_en, noun_de = rng.choice(NOUNS)
    verb_en, verb_de, tail_de = rng.choice(VERBS)
    return (
        f"On {date_en}, {n_en} {noun_en} {verb_en}.",
        _join(f"Am {date_de}", verb_de, n_de, noun_de, tail_de) + ".",
    )


def _birth(rng: random.Random) -> tuple[str, str]:
    date_en, date_de = _date(rng)
    name = rng.choice(NAMES)
    return f"{name} was born on {date_en}.", f"{name} wurde am {date_de} geboren."


def _place(rng: random.Random) -> tuple[str, str]:
    n_en, n_de = _count(rng)
    noun_en, noun_de = rng.choice(NOUNS)
    place_en, place_de = rng.choice(PLACES)
    return f"There are {n_en} {noun_en} in the {place_en}.", f"{place_de} gibt es {n_de} {noun_de}."


def _weekday(rng: random.Random) -> tuple[str, str]:
    i = rng.randrange(7)
    day_en, day_de = get_day_names("wide", locale="en")[i], get_day_names("wide", locale="de")[i]
    n_en, n_de = _count(rng)
    noun_en, noun_de = rng.choice(NOUNS)
    name = rng.choice(NAMES)
    return f"On {day_en}, {name} saw {n_en} {noun_en}.", f"Am {day_de} sah {name} {n_de} {noun_de}."


def _price(rng: random.Random) -> tuple[str, str]:
    n_en, n_de = _count(rng)
    item_en, item_de = rng.choice(ITEMS)
    return f"The {item_en} costs {n_en} euros.", f"{item_de} kostet {n_de} Euro."


def _year(rng: random.Random) -> tuple[str, str]:
    year = rng.randint(FIRST_DAY.year, LAST_DAY.year)
    n_en, n_de = _count(rng)
    name = rng.choice(NAMES)
    return f"In {year}, {name} wrote {n_en} letters.", f"{year} schrieb {name} {n_de} Briefe."


TEMPLATES = [_dated_event, _birth, _place, _weekday, _price, _year]
WEIGHTS = [4, 1, 2, 2, 1, 2]


def generate(sizes: dict[str, int] | None = None, seed: int = DEFAULT_SEED) -> dict[str, list[tuple[str, str]]]:
    """Return ``{split: [(english, german), ...]}``; no English sentence occurs in two splits."""
    sizes = dict(DEFAULT_SIZES if sizes is None else sizes)
    rng = random.Random(seed)
    seen: set[str] = set()
    corpus: dict[str, list[tuple[str, str]]] = {}
    for split in SPLITS:
        pairs: list[tuple[str, str]] = []
        while len(pairs) < sizes.get(split, 0):
            en, de = rng.choices(TEMPLATES, WEIGHTS)[0](rng)
            if en not in seen:
                seen.add(en)
                pairs.append((en, de))
        corpus[split] = pairs
    return corpus


def write(out_dir: str | Path, sizes: dict[str, int] | None = None, seed: int = DEFAULT_SEED) -> Path:
    """Write ``out_dir/{split}.{en,de}``, one sentence a line, and return ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for split, pairs in generate(sizes, seed).items():
        for side, lang in enumerate(("en", "de")):
            path = out / f"{split}.{lang}"
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text("".join(p[side] + "\n" for p in pairs), encoding="utf-8")
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
