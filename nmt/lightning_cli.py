"""``NmtCLI``: the LightningCLI behind ``nmt fit | validate | test | predict``.

Models are chosen by ``class_path`` and configs composed with repeated ``--config``; the
vocabulary is linked from the data module to the model; best.ckpt (by validation BLEU) and
last.ckpt are written, atomically, and a run killed or interrupted can be resumed.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningCLI

from nmt.callbacks import TranslationSamples
from nmt.checkpointing import AtomicCheckpointIO, FinalCheckpoint, ResumeState, check_checkpoint
from nmt.data.datamodule import TranslationDataModule
from nmt.errors import NmtError
from nmt.models.base import Seq2SeqSystem
from nmt.prediction_writer import PredictionWriter
from nmt.progress_bar import DeviceAwareProgressBar
from nmt.translate import read_checkpoint

DEFAULT_MODEL = "nmt.models.transformer.TransformerSeq2Seq"

# TranslationDataModule.state_dict keeps the position in the epoch, so a run resumed from a
# mid-epoch last.ckpt continues with the next batch (a test holds it bit for bit); Lightning only
# knows about dataloaders that save their own state and would warn of "unreliable results".
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")

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
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.add_lightning_class_args(TranslationSamples, "samples")
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.set_defaults(
            {
                "model": {"class_path": DEFAULT_MODEL},
                # best.ckpt by validation BLEU (and last.ckpt) after each validation ...
                "checkpoint.monitor": "val/bleu",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best",
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": 1,
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.enable_version_counter": False,
                # ... and last.ckpt every 100 steps, so a killed run loses at most 100 steps.
                "last_checkpoint.save_top_k": 0,
                "last_checkpoint.save_last": True,
                "last_checkpoint.every_n_train_steps": 100,
                "last_checkpoint.enable_version_counter": False,
            }
        )
        for name in ("src_vocab_size", "tgt_vocab_size"):
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")
        parser.link_arguments("data.joint_vocab", "model.init_args.share_embeddings", apply_on="instantiate")

    def _prepare_subcommand_parser(self, klass, subcommand: str, **kwargs):
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if any(action.dest == "weights_only" for action in parser._actions):
            parser.set_defaults(weights_only=True)  # resuming and testing never run pickled code
        return parser

    def _parse_ckpt_path(self) -> None:
        # Lightning reads --ckpt_path's hyperparameters (and model class) at start-up: check the file first.
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path and path not in ("best", "last", "hpc", "registry"):
            read_checkpoint(path)
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand, self.config)
        trainer = config.get("trainer", {})
        root = Path(trainer.get("default_root_dir") or "runs")
        _check_writable(root, "--trainer.default_root_dir")
        # One checkpoint folder per run directory, so `--ckpt_path last` finds the previous run's last.ckpt.
        for key in ("checkpoint", "last_checkpoint"):
            if config.get(key) is not None and not config[key].get("dirpath"):
                config[key]["dirpath"] = str(root / "checkpoints")

    def _instantiate_trainer(self, config: dict, callbacks: list):
        config = dict(config)
        plugins = config.get("plugins") or []
        plugins = plugins if isinstance(plugins, list) else [plugins]
        config["plugins"] = [AtomicCheckpointIO(), *plugins]
        dirpath = self._get(self.config, "checkpoint.dirpath") if self.subcommand else None
        extra = [ResumeState()]
        given = config.get("callbacks") or []
        given = [*callbacks, *(given if isinstance(given, list) else [given])]
        if config.get("enable_progress_bar", True) is not False and not any(isinstance(c, ProgressBar) for c in given):
            extra.append(DeviceAwareProgressBar())
        if dirpath:  # the end of training (also by Ctrl-C or an error) leaves a resumable last.ckpt
            extra.append(FinalCheckpoint(dirpath, filename="last"))
        return super()._instantiate_trainer(config, [*callbacks, *extra])

    def _check_ckpt_path(self) -> None:
        path = self.config[self.subcommand].get("ckpt_path")
        if not path and self.subcommand != "fit":  # Lightning would go on with untrained weights
            raise NmtError(
                f"nmt {self.subcommand} needs --ckpt_path: a checkpoint written by nmt fit, "
                "e.g. --ckpt_path RUN/checkpoints/best.ckpt"
            )
        if path == "last":
            last = Path(self.config[self.subcommand]["checkpoint"]["dirpath"]) / "last.ckpt"
            path = str(last) if last.is_file() else None
        if path and path not in ("best", "hpc", "registry"):
            check_checkpoint(path, self.model)

    before_fit = before_validate = before_test = before_predict = _check_ckpt_path


def _check_writable(folder: Path, option: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise NmtError(
            f"{option} {folder} cannot be written ({err.strerror}); choose a folder you can write to."
        ) from None


def run(argv: list[str] | None) -> None:
    """``nmt <subcommand> ...`` for the Lightning subcommands (``argv`` None: sys.argv)."""
    NmtCLI(
        Seq2SeqSystem,
        TranslationDataModule,
        subclass_mode_model=True,
        trainer_defaults=TRAINER_DEFAULTS,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        args=argv,
    )
