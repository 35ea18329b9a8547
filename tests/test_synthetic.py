import re

from nmt.data import synthetic


def test_deterministic_sizes_and_disjoint_splits():
    a = synthetic.generate({"train": 300, "val": 50, "test": 50}, seed=7)
    b = synthetic.generate({"train": 300, "val": 50, "test": 50}, seed=7)
    assert a == b
    assert {k: len(v) for k, v in a.items()} == {"train": 300, "val": 50, "test": 50}
    sources = [set(en for en, _ in pairs) for pairs in a.values()]
    assert not (sources[0] & sources[1]) and not (sources[0] & sources[2]) and not (sources[1] & sources[2])
    assert synthetic.generate({"train": 300}, seed=8)["train"] != a["train"]


def test_german_numbers_and_dates_are_reordered():
    pairs = dict(synthetic.generate({"train": 3000}, seed=1)["train"])
    dated = next(en for en in pairs if en.startswith("On March ") and "," in en.split()[2])
    en_words, de = dated.split(), pairs[dated]
    # "On March 21, 1987, ..." -> "Am 21. März 1987 ..."
    day, year = en_words[2].rstrip(","), en_words[3].rstrip(",")
    assert de.startswith(f"Am {day}. März {year} ")
    twenty_one = [en for en in pairs if "twenty-one" in en and "hundred" not in en]
    assert twenty_one and all("einundzwanzig" in pairs[en] for en in twenty_one)


def test_default_sizes_meet_the_minimum():
    assert synthetic.DEFAULT_SIZES == {"train": 20_000, "val": 1_000, "test": 1_000}


def test_cli_writes_plain_files(tmp_path):
    synthetic.main([str(tmp_path), "--train", "20", "--val", "5", "--test", "5"])
    for split, n in (("train", 20), ("val", 5), ("test", 5)):
        en = (tmp_path / f"{split}.en").read_text(encoding="utf-8").splitlines()
        de = (tmp_path / f"{split}.de").read_text(encoding="utf-8").splitlines()
        assert len(en) == len(de) == n


def test_gold_alignments_link_the_words_that_translate_each_other():
    triples = synthetic.generate_aligned({"train": 400}, seed=5)["train"]
    for en, de, align in triples:
        en_words, de_words = en.split(), de.split()
        links = [(int(i), int(j), sep == "-") for i, sep, j in (re.match(r"(\d+)([-p])(\d+)", t).groups()
                                                                for t in align.split())]  # fmt: skip
        assert all(i < len(en_words) and j < len(de_words) for i, j, _ in links)
        sure = {(en_words[i].strip(".,"), de_words[j].strip(".,")) for i, j, s in links if s}
        if en.startswith("On ") and "," in en_words[2]:  # "On March 21, 1987, ..." - "Am 21. März 1987 ..."
            assert ("On", "Am") in sure and (en_words[1], de_words[2]) in sure and (en_words[2].strip(","),
                    de_words[1].strip(".")) in sure  # fmt: skip
        if en.startswith("The "):  # "The book costs five euros." - "Das Buch kostet fünf Euro."
            assert ("costs", "kostet") in sure and ("euros", "Euro") in sure
    line = next(t for t in triples if "hundred and" in t[0])
    i = line[0].split().index("and")
    assert f"{i}p" in line[2]  # "and" of "four hundred and twenty-one" is only a possible link
    assert synthetic.generate({"train": 50}, seed=5)["train"] == [(en, de) for en, de, _ in triples[:50]]
