"""The ``-c FILE`` option shared by the subcommands that read the configuration."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from daemon.config.model import Config

EXAMPLE = "config/rmxdiag.example.yaml"  # in the rmxdiag sources (the README's install copies it)


def add_config(parser: argparse.ArgumentParser) -> None:
    """``-c/--config FILE``; default ``$RMXDIAG_CONFIG``, then ``/etc/rmxdiag/rmxdiag.yaml``."""
    parser.add_argument("-c", "--config", type=Path, default=None, metavar="FILE",
                        help="configuration file (default: $RMXDIAG_CONFIG, else /etc/rmxdiag/rmxdiag.yaml)")


def config_path(args: argparse.Namespace) -> Path:
    """The configuration file the user chose (flag, environment, default)."""
    from daemon.config.load import DEFAULT_PATH

    chosen: Path | None = args.config
    if chosen is None:
        env = os.environ.get("RMXDIAG_CONFIG")
        chosen = Path(env) if env else DEFAULT_PATH
    return chosen


def load(args: argparse.Namespace) -> Config:
    """The validated configuration (``ConfigError`` -- an ``InputError`` -- when it is not).

    With no -c and no $RMXDIAG_CONFIG and nothing at the default path, the error says all three
    ways to give one and where the documented example is, instead of just "no such file".
    """
    from daemon.config.load import ConfigError, load_config

    path = config_path(args)
    if args.config is None and not os.environ.get("RMXDIAG_CONFIG") and not path.exists():
        raise ConfigError(f"no configuration: give one with -c FILE or $RMXDIAG_CONFIG, or create {path} "
                          f"(start from {EXAMPLE}, which documents every key)")
    return load_config(path)
