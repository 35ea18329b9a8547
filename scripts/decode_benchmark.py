#!/usr/bin/env python
"""Decoding speed and quality of one trained Transformer: nmt, an ensemble of two, CTranslate2 float32 and int8.

    python scripts/decode_benchmark.py --ckpt CKPT [--source S --reference R] [--lines 500] [--beam 5] [--rounds 3]

Every engine translates the same ``--lines`` sentences (by default the embedded corpus's test set)
with the same beam, alternating engine after engine for ``--rounds`` rounds: the whole ``nmt translate``
process (start-up and model load included), and the steady state in one process after a warm-up.
With a reference, the BLEU of each engine's output (sacreBLEU) and how many lines equal nmt's.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def steady_seconds(engine: str, ckpt: Path, source: Path, beam: int, work: Path) -> float:
    """Seconds one engine takes to translate ``source`` in this process, after a warm-up."""
    import torch

    from nmt.engines import DecodeOptions, open_engine

    lines = source.read_text(encoding="utf-8").splitlines()
    if engine.startswith("ctranslate2"):
        opened = open_engine("ctranslate2", [work / engine.split()[-1]], torch.device("cpu"))
    else:
        opened = open_engine("nmt", [ckpt] * (2 if "ensemble" in engine else 1), torch.device("cpu"))
    options = DecodeOptions(beam=beam)
    with torch.inference_mode():
        opened.translate(lines[:32], options)
        start = time.perf_counter()
        opened.translate(lines, options)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, type=Path)
    parser.add_argument("--source", type=Path, help="source sentences (default: the embedded test set)")
    parser.add_argument("--reference", type=Path, help="their references, for BLEU")
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("decode_bench.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one steady-state measurement, in its own process
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    if args.child:
        print(steady_seconds(args.child, args.ckpt, args.source, args.beam, args.out))
        return
    import sacrebleu
    import torch

    from nmt.data import synthetic
    from nmt.engines.native import NmtEngine
    from nmt.export import export_ctranslate2
    from nmt.search import length_penalty

    work = Path(tempfile.mkdtemp(prefix="nmt-decode-bench-"))
    if args.source is None:
        synthetic.write(work / "data")
        args.source, args.reference = work / "data" / "test.en", work / "data" / "test.de"
    lines = args.source.read_text(encoding="utf-8").splitlines()[: args.lines]
    refs = args.reference.read_text(encoding="utf-8").splitlines()[: args.lines] if args.reference else None
    src = work / "src.txt"
    src.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    ours = NmtEngine.load([args.ckpt])
    for quantization in ("float32", "int8"):
        export_ctranslate2(ours.net, ours.tokenizer, work / quantization,
                           None if quantization == "float32" else quantization)  # fmt: skip
    engines = {
        "nmt": ["--ckpt", str(args.ckpt)],
        "nmt, ensemble of two": ["--ckpt", str(args.ckpt), str(args.ckpt)],
        "ctranslate2 float32": ["--engine", "ctranslate2", "--ckpt", str(work / "float32")],
        "ctranslate2 int8": ["--engine", "ctranslate2", "--ckpt", str(work / "int8")],
    }
    whole: dict[str, list[float]] = {name: [] for name in engines}
    outputs: dict[str, list[str]] = {}
    for _ in range(args.rounds):
        for name, options in engines.items():
            hyp = work / f"{name.replace(' ', '_').replace(',', '')}.hyp"
            start = time.perf_counter()
            command = [sys.executable, "-m", "nmt", "translate", *options, "--beam", str(args.beam)]
            subprocess.run([*command, "-i", str(src), "-o", str(hyp)], check=True, cwd=REPO)
            whole[name].append(time.perf_counter() - start)
            outputs[name] = hyp.read_text(encoding="utf-8").splitlines()

    greedy = {}
    for name in ("nmt", "ctranslate2 float32"):  # greedy search: the export must give nmt's output line for line
        hyp = work / "greedy.hyp"
        subprocess.run([sys.executable, "-m", "nmt", "translate", *engines[name], "-i", str(src), "-o", str(hyp)],
                       check=True, cwd=REPO)  # fmt: skip
        greedy[name] = hyp.read_text(encoding="utf-8").splitlines()
    greedy_equal = sum(a == b for a, b in zip(greedy["nmt"], greedy["ctranslate2 float32"]))

    # The steady state of each engine in a process of its own (CTranslate2's idle worker threads would
    # otherwise take CPU from PyTorch's), alternating as above; the timing starts after a warm-up.
    steady: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(args.rounds):
        for name in engines:
            child = [sys.executable, __file__, "--child", name, "--ckpt", str(args.ckpt), "--source", str(src),
                     "--beam", str(args.beam), "--out", str(work)]  # fmt: skip
            steady[name].append(float(subprocess.run(child, check=True, capture_output=True, text=True).stdout))

    result = {"ckpt": str(args.ckpt), "lines": len(lines), "beam": args.beam, "rounds": args.rounds,
              "torch_threads": torch.get_num_threads(), "cores": len(os.sched_getaffinity(0)),
              "date": time.strftime("%Y-%m-%d"), "greedy_lines_equal_ctranslate2_float32": greedy_equal,
              "engines": {}}  # fmt: skip
    print(f"\n{len(lines)} sentences, beam {args.beam}, {args.rounds} rounds alternating (median, range)")
    for name in engines:
        row = {"whole_process_s": whole[name], "steady_s": steady[name]}
        if refs is not None:
            row["bleu"] = round(sacrebleu.corpus_bleu(outputs[name], [refs]).score, 2)
        row["lines_equal_to_nmt"] = sum(a == b for a, b in zip(outputs[name], outputs["nmt"]))
        result["engines"][name] = row
        bleu = f"  BLEU {row['bleu']:.2f}" if "bleu" in row else ""
        print(f"{name:<24} whole process {statistics.median(whole[name]):6.2f} s ({min(whole[name]):.2f}-"
              f"{max(whole[name]):.2f})  steady {statistics.median(steady[name]):6.2f} s  "
              f"{len(lines) / statistics.median(steady[name]):6.1f} sentences/s{bleu}  "
              f"{row['lines_equal_to_nmt']}/{len(lines)} lines as nmt's")  # fmt: skip
    print(f"greedy search: {greedy_equal}/{len(lines)} lines of CTranslate2 float32 equal to nmt's")
    # Where the float32 export's beam output differs, nmt's own length-normalised score of both outputs
    # tells a near tie (numerics of fused kernels decide it) from a search error.
    differ = [i for i, (a, b) in enumerate(zip(outputs["nmt"], outputs["ctranslate2 float32"])) if a != b]
    scores = ours.score([lines[i] for i in differ] * 2,
                        [outputs[e][i] for e in ("nmt", "ctranslate2 float32") for i in differ])  # fmt: skip
    penalty = ours.net.length_penalty
    mean = [sum(s) / length_penalty(torch.tensor(len(s)), penalty).item() for s in scores]
    result["float32_beam_differences"] = [
        {"line": i + 1, "nmt": outputs["nmt"][i], "ctranslate2": outputs["ctranslate2 float32"][i],
         "nmt_score_of_nmt": round(mean[k], 4), "nmt_score_of_ctranslate2": round(mean[k + len(differ)], 4)}
        for k, i in enumerate(differ)]  # fmt: skip
    for d in result["float32_beam_differences"]:
        print(
            f"beam line {d['line']}: nmt {d['nmt']!r} ({d['nmt_score_of_nmt']}) / "
            f"ctranslate2 {d['ctranslate2']!r} ({d['nmt_score_of_ctranslate2']})"
        )
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
