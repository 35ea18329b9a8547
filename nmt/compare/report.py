"""The ``nmt compare`` report: ``report.json``, ``report.md``, ``report.html`` and ``figures/*.png``.

Every number in the Markdown and HTML tables is printed from ``report.json`` as it is stored there
(the values are rounded once, when they are measured), so the three never disagree.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

#: The table's columns: (key in report.json, heading).
COLUMNS = [
    ("network", "network"),
    ("parameters", "parameters"),
    ("steps", "steps"),
    ("train_seconds", "training s"),
    ("bleu_greedy", "BLEU greedy"),
    ("bleu", "BLEU beam"),
    ("chrf_greedy", "chrF greedy"),
    ("chrf", "chrF beam"),
    ("sentences_per_s", "sentences/s (beam)"),
    ("aer", "AER"),
    ("ece", "ECE (forced)"),
    ("inference_ece", "ECE (beam)"),
]
EXPLAINED = {
    "bleu_by_length.png": "BLEU (beam search) of the test sentences grouped by source length in words; the numbers "
    "under the axis are the sentences in each group. Without attention, quality falls as sentences grow longer "
    "(Bahdanau et al. 2015, figure 2).",
    "gradient_by_distance.png": "How much the last output word depends on each source word: the norm of the "
    "gradient of its log-probability with respect to the word's embedding, by distance from the end of the source "
    "(log scale). Through a recurrent encoder alone it can fade with distance (the Elman cell's vanishing gradient); "
    "attention gives every word a short path, and the curve then shows which words the last output depends on.",
    "reliability.png": "Reliability diagrams: accuracy against confidence in equal-width bins, under teacher forcing "
    "(was the most probable token the reference's?) and for beam-search output (does the token match the "
    "reference in an edit-distance alignment?). The diagonal is perfect calibration.",
}


def cell(key: str, row: dict) -> str:
    value = row.get(key)
    if value is None and key == "aer":
        return "no gold alignments" if row.get("attention") else "no attention"
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table_rows(report: dict) -> list[list[str]]:
    return [[name] + [cell(key, row) for key, _ in COLUMNS] for name, row in report["models"].items()]


def caption(name: str) -> str:
    if name.startswith("attention_"):
        number = name.removeprefix("attention_").removesuffix(".png")
        return (f"Attention on test sentence {number}, each model decoding the reference (teacher forcing), so "
                "the rows agree; the Transformer's is its last decoder layer's cross-attention, averaged over "
                "heads. No panel for a model without attention.")  # fmt: skip
    return EXPLAINED.get(name, name)


# ------------------------------------------------------------------------------- figures
def bleu_by_length_figure(report: dict) -> Figure:
    fig = Figure(figsize=(7, 4.2), dpi=110)
    ax = fig.add_subplot()
    sizes: dict[str, int] = {}
    for name, row in report["models"].items():
        points = row["bleu_by_source_length"]
        ax.plot([p["bucket"] for p in points], [p["bleu"] for p in points], marker="o", label=name)
        sizes.update({p["bucket"]: p["sentences"] for p in points})
    order = sorted(sizes, key=lambda b: int(b.split("-")[0]))
    ax.set_xticks(range(len(order)), labels=[f"{b}\n({sizes[b]})" for b in order], fontsize=8)
    ax.set_xlabel("source length in words (sentences in the group)")
    ax.set_ylabel("BLEU")
    ax.set_title("BLEU by source sentence length", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def gradient_figure(report: dict) -> Figure:
    fig = Figure(figsize=(7, 4.2), dpi=110)
    ax = fig.add_subplot()
    for name, row in report["models"].items():
        values = row["gradient_by_source_distance"]
        if values:
            ax.plot(range(len(values)), values, marker=".", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("distance from the end of the source (words; 0 = the last)")
    ax.set_ylabel("gradient norm of log p(last output word)")
    ax.set_title("Gradient reaching each source embedding", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def reliability_figure(reliability: dict[str, dict[str, list[dict]]]) -> Figure:
    names = list(reliability)
    cols = min(len(names), 4)
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(3.2 * cols, 3.3 * rows), dpi=110)
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
        for kind, bins in reliability[name].items():
            used = [b for b in bins if b["count"]]
            ax.plot([b["confidence"] for b in used], [b["accuracy"] for b in used], marker="o", markersize=3,
                    label=kind)  # fmt: skip
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("confidence", fontsize=8)
        if k % cols == 0:
            ax.set_ylabel("accuracy", fontsize=8)
        if k == 0:
            ax.legend(fontsize=7, loc="upper left")
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def attention_panels(examples: dict[str, tuple]) -> Figure:
    """One heatmap per model for the same sentence (teacher forcing on the reference, so the rows agree)."""
    names = list(examples)
    rows, cols = examples[names[0]][0].shape
    width = max(2.8, 0.22 * cols + 1.6)
    fig = Figure(figsize=(width * len(names), max(2.8, 0.22 * rows + 1.8)), dpi=100)
    for k, name in enumerate(names):
        weights, src, tgt = examples[name]
        ax = fig.add_subplot(1, len(names), k + 1)
        ax.imshow(weights, cmap="viridis", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(src)), labels=src, rotation=90, fontsize=7)
        ax.set_yticks(range(len(tgt)), labels=tgt if k == 0 else [""] * len(tgt), fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("source", fontsize=8)
    fig.tight_layout()
    return fig


def save(fig: Figure, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close("all")
    return path.name


# ------------------------------------------------------------------------------- documents
def markdown(report: dict, figures: list[str]) -> str:
    heads = ["model"] + [h for _, h in COLUMNS]
    lines = [f"# nmt compare: {report['test']['split']} ({report['test']['sentences']} sentences)", "",
             "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]  # fmt: skip
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    lines += ["", *(f"{k}: `{v}`" for k, v in report["signatures"].items()), ""]
    lines += [f"AER: {report['test']['alignment_note']}", ""]
    for name in figures:
        lines += [f"![{name}](figures/{name})", "", caption(name), ""]
    return "\n".join(lines).rstrip() + "\n"


def html_page(report: dict, figures: list[str]) -> str:
    e = html.escape
    heads = ["model"] + [h for _, h in COLUMNS]
    head = "".join(f"<th>{e(h)}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>\n" for row in table_rows(report))
    sigs = "".join(f"<li>{e(k)}: <code>{e(v)}</code></li>" for k, v in report["signatures"].items())
    figs = "".join(
        f'<figure><img src="figures/{e(n)}" alt="{e(n)}"><figcaption>{e(caption(n))}</figcaption></figure>\n'
        for n in figures
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nmt compare</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; font-size: 14px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th:first-child, td:first-child, td:nth-child(2) {{ text-align: left; }}
figure {{ margin: 2em 0; }} img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ font-size: 14px; color: #555; max-width: 900px; }}
</style></head><body>
<h1>nmt compare</h1>
<p>Test split <b>{e(str(report["test"]["split"]))}</b>, {report["test"]["sentences"]} sentences; beam {report["beam"]}.
AER: {e(report["test"]["alignment_note"])}</p>
<table id="models"><thead><tr>{head}</tr></thead><tbody>
{body}</tbody></table>
<ul>{sigs}</ul>
{figs}</body></html>
"""


def write(out: Path, report: dict, reliability: dict, attention: dict[int, dict[str, tuple]]) -> list[Path]:
    """Write the report into ``out``; the paths of the figures."""
    figures = [save(bleu_by_length_figure(report), out / "figures" / "bleu_by_length.png")]
    if any(row["gradient_by_source_distance"] for row in report["models"].values()):
        figures.append(save(gradient_figure(report), out / "figures" / "gradient_by_distance.png"))
    figures.append(save(reliability_figure(reliability), out / "figures" / "reliability.png"))
    for sentence, examples in attention.items():
        if examples:
            figures.append(save(attention_panels(examples), out / "figures" / f"attention_{sentence}.png"))
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "report.md").write_text(markdown(report, figures), encoding="utf-8")
    (out / "report.html").write_text(html_page(report, figures), encoding="utf-8")
    return [out / "figures" / name for name in figures]
