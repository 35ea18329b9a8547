"""The ``nmt`` command.

``nmt fit | validate | test | predict`` are LightningCLI subcommands (:mod:`nmt.lightning_cli`);
``nmt translate``, ``nmt plot-attention`` and ``nmt average`` are ours and start without
importing Lightning. Mistakes a user can fix (:class:`~nmt.errors.NmtError`) print one
message, no traceback, and exit with status 2.
"""

from __future__ import annotations

import logging
import sys

from nmt.errors import NmtError
from nmt.hardware import bound_onednn_kernel_cache


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


def _lightning(argv: list[str] | None) -> None:
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from nmt.lightning_cli import run

    try:
        run(argv)
    except MisconfigurationException as err:  # e.g. more devices than the machine has
        raise NmtError(f"{err} See `nmt fit --help` for the --trainer options.") from None


COMMANDS = {"translate": _translate, "plot-attention": _plot_attention, "average": _average}


def main(argv: list[str] | None = None) -> None:
    explicit = argv is not None
    argv = list(argv) if explicit else sys.argv[1:]
    _configure_logging()
    bound_onednn_kernel_cache()
    try:
        if argv and argv[0] in COMMANDS:
            COMMANDS[argv[0]](argv[1:])
        else:
            _lightning(argv if explicit else None)
    except NmtError as err:
        print(f"nmt: error: {err}", file=sys.stderr)
        sys.exit(2)
