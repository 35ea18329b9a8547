"""``TranslationSamples``: at each validation, translate a few fixed validation sentences and
log a source / reference / hypothesis table plus their attention plots to the active logger.

W&B gets a table and images, TensorBoard text and figures; any other logger (the default
CSV logger) gets PNG files and a ``samples.csv`` in its log folder.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import matplotlib.pyplot as plt
from lightning.pytorch import Callback
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from nmt.engines import DecodeOptions
from nmt.engines.native import NmtEngine
from nmt.plotting import attention_figure

log = logging.getLogger(__name__)


class TranslationSamples(Callback):
    """Log ``num_sentences`` validation translations (the first ones of the split) and their attention.

    Args:
        num_sentences: how many (0 turns the callback off).
        plots: also draw attention heatmaps (models without attention give none).
    """

    def __init__(self, num_sentences: int = 4, plots: bool = True):
        self.num_sentences, self.plots = num_sentences, plots

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not self.num_sentences or trainer.sanity_checking or not trainer.is_global_zero:
            return
        text = trainer.datamodule.text("validate")
        sources, refs = text.src[: self.num_sentences], text.tgt[: self.num_sentences]
        was_training = pl_module.training
        pl_module.eval()
        tok = pl_module.tokenizer
        options = DecodeOptions(beam=pl_module.hparams.val_beam, attention=True)
        results = NmtEngine(pl_module.net, tok).translate(sources, options)
        pl_module.train(was_training)
        rows = [[s, r, h[0].text if h else ""] for s, r, h in zip(sources, refs, results)]
        figures = []
        if self.plots:
            for i, (source, hyps) in enumerate(zip(sources, results)):
                if hyps and hyps[0].attention:
                    src_tokens = tok.src_pieces(tok.encode_src([source])[0])[: len(hyps[0].attention[0])]
                    tgt_tokens = (hyps[0].tokens + ["</s>"])[: len(hyps[0].attention)]
                    figures.append((i, attention_figure(hyps[0].attention, src_tokens, tgt_tokens, hyps[0].text)))
        for logger in trainer.loggers:
            self._log(logger, trainer.global_step, rows, figures)
        for _, fig in figures:
            plt.close(fig)

    def _log(self, logger, step: int, rows: list[list[str]], figures: list) -> None:
        columns = ["source", "reference", "hypothesis"]
        if isinstance(logger, WandbLogger):
            logger.log_table(key="val/samples", columns=columns, data=rows, step=step)
            if figures:
                logger.log_image(key="val/attention", images=[f for _, f in figures], step=step)
        elif isinstance(logger, TensorBoardLogger):
            table = "\n".join(" | ".join(r) for r in [columns, ["---"] * 3, *rows])
            logger.experiment.add_text("val/samples", table, step)
            for i, fig in figures:
                logger.experiment.add_figure(f"val/attention/{i}", fig, step, close=False)
        elif logger.log_dir:
            folder = Path(logger.log_dir)
            (folder / "attention").mkdir(parents=True, exist_ok=True)
            new = not (folder / "samples.csv").exists()
            with open(folder / "samples.csv", "a", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                if new:
                    writer.writerow(["step", *columns])
                writer.writerows([step, *r] for r in rows)
            for i, fig in figures:
                fig.savefig(folder / "attention" / f"step{step:07d}-{i}.png", dpi=80)
