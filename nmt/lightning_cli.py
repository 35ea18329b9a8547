"""``NmtCLI``: the LightningCLI behind ``nmt fit | validate | test | predict``.

The model is :class:`~nmt.system.Seq2SeqSystem`; its network is chosen with
``model.net.class_path`` and configs are composed with repeated ``--config``. The data module's
vocabulary is linked into the network. ``best.ckpt`` (by validation BLEU) and ``last.ckpt`` are
written atomically, and a run killed or interrupted resumes exactly with ``--ckpt_path last``.
Only public LightningCLI hooks are overridden (``add_arguments_to_parser``, ``parse_arguments``,
``before_instantiate_classes``, ``instantiate_trainer``, ``before_<subcommand>``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningCLI

from nmt.callbacks import (
    AtomicCheckpointIO,
    DeviceAwareProgressBar,
    EarlyStopping,
    LastCheckpoint,
    PredictionWriter,
    ResumeState,
    TranslationSamples,
)
from nmt.checkpoint import Checkpoint
from nmt.data.datamodule import TranslationDataModule
from nmt.errors import NmtError
from nmt.system import Seq2SeqSystem

log = logging.getLogger("nmt")

DEFAULT_NET = "nmt.networks.TransformerNet"
SPECIAL_CKPT_PATHS = ("best", "last", "hpc", "registry")

# TranslationDataModule.state_dict keeps the position in the epoch, so a run resumed from a
# mid-epoch last.ckpt continues with the next batch (a test holds it bit for bit); Lightning only
# knows about dataloaders that save their own state and would warn of "unreliable results".
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
# nmt chooses the CSV logger on purpose (TensorBoard is optional); Lightning's note about it is not the user's business.
warnings.filterwarnings("ignore", message=".*`tensorboardX` has been removed as a dependency")
# build_cli(argv) is meant to parse argv, whatever the process's own arguments are (the benchmark, tests).
warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
# Lightning's own use of torch.utils._pytree.LeafSpec, deprecated by PyTorch.
warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)


class _NoTips(logging.Filter):
    """Drops Lightning's advertisement of its cloud logger (printed at every fit)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_NoTips())

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
        # The checkpoint callbacks are added by instantiate_trainer, unless checkpointing is off.
        parser.add_class_arguments(ModelCheckpoint, "checkpoint", fail_untyped=False, sub_configs=True)
        parser.add_class_arguments(LastCheckpoint, "last_checkpoint", sub_configs=True)
        parser.add_class_arguments(EarlyStopping, "early_stopping", sub_configs=True)
        parser.add_argument("--init_from", type=str | None, default=None,
                            help="nmt fit: start from this checkpoint's weights and tokenizer, with a new optimizer, "
                            "schedule and step count (--ckpt_path resumes a run instead)")  # fmt: skip
        parser.add_lightning_class_args(TranslationSamples, "samples")
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.set_defaults(
            {
                "model.net": {"class_path": DEFAULT_NET},
                # best.ckpt: the highest validation BLEU.
                "checkpoint.monitor": "val/bleu",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best",
                "checkpoint.save_top_k": 1,
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.enable_version_counter": False,
            }
        )
        for name in ("src_vocab_size", "tgt_vocab_size"):
            parser.link_arguments(f"data.{name}", f"model.net.init_args.{name}", apply_on="instantiate")
        parser.link_arguments("data.joint_vocab", "model.net.init_args.share_embeddings", apply_on="instantiate")
        for name in ("pad", "bos", "eos"):  # an imported tokenizer's special ids (--init_from, --data.tokenizer)
            parser.link_arguments("data.specials", f"model.net.init_args.{name}_id", lambda s, n=name: getattr(s, n),
                                  apply_on="instantiate")  # fmt: skip

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        # Lightning next reads --ckpt_path's hyperparameters into the config: check the file first.
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        path = config.get("ckpt_path") if config else None
        init = config.get("init_from") if config else None
        if init:
            if subcommand != "fit":
                raise NmtError(f"--init_from applies to nmt fit; nmt {subcommand} takes --ckpt_path.")
            if path:
                raise NmtError("--init_from starts a new training from a checkpoint's weights and --ckpt_path resumes "
                               "a run: give one of them.")  # fmt: skip
            Checkpoint.read(init)
            if not config["data"].get("tokenizer"):
                config["data"]["tokenizer"] = init  # encode the new corpus with the checkpoint's SentencePiece
        if not path or path in SPECIAL_CKPT_PATHS:
            return
        theirs = Checkpoint.read(path).network_name
        ours = config["model"]["net"]["class_path"].rsplit(".", 1)[-1]
        if theirs != ours:
            log.warning(
                "%s holds a %s: nmt %s uses it with its own network settings, not the config's %s.",
                path, theirs, subcommand, ours,
            )  # fmt: skip

    def before_instantiate_classes(self) -> None:
        config = self.config.get(str(self.subcommand), self.config)
        root = Path(config["trainer"].get("default_root_dir") or "runs")
        _check_writable(root, "--trainer.default_root_dir")
        # One checkpoint folder per run directory, so `--ckpt_path last` finds the previous run's last.ckpt.
        for key in ("checkpoint", "last_checkpoint"):
            if not config[key].get("dirpath"):
                config[key]["dirpath"] = str(root / "checkpoints")
        if config.get("ckpt_path") == "last":
            last = Path(config["last_checkpoint"]["dirpath"]) / "last.ckpt"
            if not last.is_file():
                raise NmtError(f"--ckpt_path last: there is no last.ckpt in {last.parent}; start without --ckpt_path.")
            config["ckpt_path"] = str(last)

    def instantiate_trainer(self, **kwargs):
        config = self.config_init.get(str(self.subcommand), self.config_init)
        trainer = config["trainer"]
        given = _as_list(trainer.get("callbacks"))
        extra = [ResumeState()]
        if trainer.get("enable_checkpointing") is not False:
            extra += [config["checkpoint"], config["last_checkpoint"]]
        if config["early_stopping"].enabled:
            extra.append(config["early_stopping"])
        if trainer.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in given):
            extra.append(DeviceAwareProgressBar())
        plugins = [AtomicCheckpointIO(), *_as_list(trainer.get("plugins"))]
        return super().instantiate_trainer(callbacks=[*given, *extra], plugins=plugins, **kwargs)

    def _check_ckpt_path(self) -> None:
        path = self.config[self.subcommand].get("ckpt_path")
        if not path and self.subcommand != "fit":  # Lightning would go on with untrained weights
            raise NmtError(
                f"nmt {self.subcommand} needs --ckpt_path: a checkpoint written by nmt fit, "
                "e.g. --ckpt_path RUN/checkpoints/best.ckpt"
            )
        if path and path not in SPECIAL_CKPT_PATHS:
            Checkpoint.read(path).check_fits(self.model.net)

    def before_fit(self) -> None:
        self._check_ckpt_path()
        init = self.config["fit"].get("init_from")
        if init:
            start = Checkpoint.read(init)
            start.fit_into(self.model.net)
            step = start.step
            log.info(
                "starting from the weights of %s (step %d); optimizer, schedule and steps start afresh", init, step
            )
        world = self.trainer.world_size
        if world == 1:
            return
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if self.trainer.strategy.root_device.type == "cpu" and world > cores:
            log.warning("%d training processes on %d CPU cores: fine to test DDP, slow to train.", world, cores)
        batches = self.datamodule.train_batches()
        if batches < world:
            raise NmtError(
                f"{world} processes but one epoch has only {batches} training batch(es) of --data.max_tokens "
                f"{self.datamodule.hparams.max_tokens}: every process needs at least one. Use at most {batches} "
                "devices (--trainer.devices / --trainer.num_nodes) or a smaller --data.max_tokens."
            )

    before_validate = before_test = before_predict = _check_ckpt_path


def _as_list(value) -> list:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def _check_writable(folder: Path, option: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise NmtError(
            f"{option} {folder} cannot be written ({err.strerror}); choose a folder you can write to."
        ) from None


def build_cli(argv: list[str] | None, run: bool = True, callbacks: list | None = None) -> NmtCLI:
    """``nmt <subcommand> ...`` for the Lightning subcommands (``argv`` None: sys.argv). ``run=False``:
    parse ``argv`` as fit's options and build data module, model and trainer without running anything,
    with ``callbacks`` added to the trainer's (what ``scripts/benchmark.py`` does)."""
    return NmtCLI(
        Seq2SeqSystem,
        TranslationDataModule,
        subclass_mode_model=False,
        trainer_defaults={**TRAINER_DEFAULTS, "callbacks": callbacks or []},
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        args=argv,
        run=run,
    )
