"""``zerodl`` entry point: one sub-command per app module.

Each app module in ``apps/`` defines ``add_parser(subparsers)`` (which
registers its arguments, every one with a help text and its default) and
sets ``func`` on its parser to a ``run(args) -> int`` function. Modules are
imported only when needed so ``zerodl --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: (sub-command, module under ``apps``) in the order ``--help`` lists them.
APPS = [
    ("demo", "apps.demo"),
    ("augment", "apps.augment"),
    ("dqn", "apps.dqn"),
]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default and keeps description line breaks."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zerodl",
        description="zerodl: deep learning and DQN from scratch in NumPy.",
        formatter_class=HelpFormatter,
    )
    sub = parser.add_subparsers(dest="app", metavar="APP")
    sub.required = True
    for _, module_name in APPS:
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
