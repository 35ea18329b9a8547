"""The ``nmt`` command.

``nmt fit | validate | test | predict`` are LightningCLI subcommands (:mod:`nmt.lightning_cli`);
the others are ours (:mod:`nmt.commands`) and start without importing Lightning. Mistakes a user
can fix (:class:`~nmt.errors.NmtError`) print one message, no traceback, and exit with status 2.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from nmt.errors import NmtError
from nmt.hardware import bound_onednn_kernel_cache

LIGHTNING = {
    "fit": "train a model (a run folder with best.ckpt and last.ckpt; resume with --ckpt_path last)",
    "validate": "score a checkpoint on the validation split",
    "test": "score a checkpoint on the test split: BLEU, chrF and TER with sacreBLEU signatures",
    "predict": "translate the test split of a data config on every device of the trainer, into one file",
}
#: Our own subcommands: module in nmt.commands, one-line description.
COMMANDS = {
    "translate": ("translate", "translate text with a checkpoint (or an ensemble): greedy, beam search or sampling"),
    "score": ("score", "the log-probability of given translations (rescoring, filtering)"),
    "plot-attention": ("plot_attention", "draw the attention behind one translation"),
    "average": ("average", "average the weights of checkpoints of one run"),
    "serve": ("serve", "translate over HTTP (a JSON API), batching concurrent requests"),
    "export": (
        "export",
        "a Transformer checkpoint as a CTranslate2 model (int8 for fast CPU inference) or a Hugging Face folder",
    ),
    "import": (
        "import_model",
        "a Hugging Face MarianMT (OPUS-MT) model as an nmt checkpoint, to translate or fine-tune",
    ),
    "compare": ("compare", "train the model families on the same data and budget, and report why attention wins"),
}

USAGE = "usage: nmt <command> [options]   (nmt <command> --help for its options)\n\ncommands:\n"


def _help() -> str:
    rows = {**LIGHTNING, **{name: text for name, (_, text) in COMMANDS.items()}}
    width = max(map(len, rows)) + 2
    return USAGE + "".join(f"  {name:<{width}}{text}\n" for name, text in rows.items())


def _configure_logging() -> None:
    logger = logging.getLogger("nmt")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[nmt] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _lightning(argv: list[str] | None) -> None:
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from nmt.lightning_cli import build_cli

    try:
        build_cli(argv)
    except MisconfigurationException as err:  # e.g. more devices than the machine has
        raise NmtError(f"{err} See `nmt fit --help` for the --trainer options.") from None
    except SIGTERMException:  # e.g. a scheduler preempting the job (Lightning would exit with status 0)
        raise NmtError(
            "Stopped by SIGTERM; last.ckpt holds the last step trained. Run the same command with "
            "--ckpt_path last to continue."
        ) from None


def main(argv: list[str] | None = None) -> None:
    explicit = argv is not None
    argv = list(argv) if explicit else sys.argv[1:]
    _configure_logging()
    bound_onednn_kernel_cache()
    try:
        if not argv or argv[0] in ("-h", "--help"):
            print(_help(), end="")
            if not argv:
                sys.exit(2)
        elif argv[0] in COMMANDS:
            importlib.import_module(f"nmt.commands.{COMMANDS[argv[0]][0]}").main(argv[1:])
        elif argv[0] in LIGHTNING or argv[0].startswith("-"):
            _lightning(argv if explicit else None)
        else:
            raise NmtError(f"unknown command '{argv[0]}'; the commands are {', '.join([*LIGHTNING, *COMMANDS])}.")
    except NmtError as err:
        print(f"nmt: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # nmt fit handles Ctrl-C itself (it saves last.ckpt); the other commands stop here
        print("nmt: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (`nmt translate ... | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
