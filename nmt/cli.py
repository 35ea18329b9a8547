"""The ``nmt`` command.

``nmt fit | validate | test | predict`` are LightningCLI subcommands (models chosen by
``class_path``, configs composed with repeated ``--config``); ``nmt translate``,
``nmt plot-attention`` and ``nmt average`` are ours.
Mistakes a user can fix (:class:`~nmt.errors.NmtError`) print one message, no traceback,
and exit with status 2.
"""

from __future__ import annotations

import logging
import sys

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from nmt.callbacks import TranslationSamples
from nmt.data.datamodule import TranslationDataModule
from nmt.errors import NmtError
from nmt.models.base import Seq2SeqSystem

DEFAULT_MODEL = "nmt.models.transformer.TransformerSeq2Seq"

TRAINER_DEFAULTS = {
    "default_root_dir": "runs",
    "max_steps": 800,
    "val_check_interval": 400,
    "check_val_every_n_epoch": None,
    "gradient_clip_val": 1.0,
    "use_distributed_sampler": False,  # the token-budget sampler shards by rank itself
}


class NmtCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(TranslationSamples, "samples")
        parser.set_defaults(
            {
                "model": {"class_path": DEFAULT_MODEL},
                "checkpoint.monitor": "val/bleu",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best",
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": 1,
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        for name in ("src_vocab_size", "tgt_vocab_size"):
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")
        parser.link_arguments("data.joint_vocab", "model.init_args.share_embeddings", apply_on="instantiate")


def _configure_logging() -> None:
    logger = logging.getLogger("nmt")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[nmt] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _translate(argv: list[str]) -> None:
    from nmt.translate import main

    main(argv)


def _plot_attention(argv: list[str]) -> None:
    from nmt.plotting import main

    main(argv)


def _average(argv: list[str]) -> None:
    from nmt.average import main

    main(argv)


COMMANDS = {"translate": _translate, "plot-attention": _plot_attention, "average": _average}


def main(argv: list[str] | None = None) -> None:
    explicit = argv is not None
    argv = list(argv) if explicit else sys.argv[1:]
    _configure_logging()
    try:
        if argv and argv[0] in COMMANDS:
            COMMANDS[argv[0]](argv[1:])
        else:
            NmtCLI(
                Seq2SeqSystem,
                TranslationDataModule,
                subclass_mode_model=True,
                trainer_defaults=TRAINER_DEFAULTS,
                seed_everything_default=0,
                save_config_kwargs={"overwrite": True},
                args=argv if explicit else None,
            )
    except NmtError as err:
        print(f"nmt: error: {err}", file=sys.stderr)
        sys.exit(2)
