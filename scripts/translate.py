#!/usr/bin/env python
"""Translate with an nmt checkpoint; the same as `nmt translate` (see `--help`)."""

from nmt.cli import main

if __name__ == "__main__":
    import sys

    main(["translate", *sys.argv[1:]])
