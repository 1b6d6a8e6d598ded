"""``zerodl`` entry point: one sub-command per app module.

Each app module in ``apps/`` defines ``add_parser(subparsers)`` (which
registers its arguments, every one with a help text and its default) and
sets ``func`` on its parser to a ``run(args) -> int`` function. Modules are
imported only when needed so ``zerodl --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

#: (sub-command, module under ``apps``) in the order ``--help`` lists them.
APPS = [
    ("demo", "apps.demo"),
    ("augment", "apps.augment"),
    ("dqn", "apps.dqn"),
    ("classify", "apps.classify"),
    ("hpo", "apps.hpo"),
    ("predict", "apps.predict"),
    ("finetune", "apps.finetune"),
]


#: Environment variables that size the BLAS/OpenMP thread pools; read once when NumPy loads.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: Apps whose matrices are so small (DQN's 64x256 MLP batches) that extra BLAS
#: threads only add synchronisation: measured 3000 vs 240 steps/s on a busy 2-core machine.
SINGLE_THREAD_APPS = {"dqn"}


def configure_threads(argv) -> None:
    """Set BLAS thread counts from ``zerodl --threads N`` (or the app's default) before NumPy loads."""
    threads, explicit = None, False
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            threads, explicit = argv[i + 1], True
        elif arg.startswith("--threads="):
            threads, explicit = arg.split("=", 1)[1], True
        elif not arg.startswith("-"):
            if threads is None and arg in SINGLE_THREAD_APPS:
                threads = "1"
            break
    if threads is None or not str(threads).isdigit() or int(threads) < 1 or "numpy" in sys.modules:
        return  # argparse reports a malformed value; an imported NumPy can no longer be changed
    for var in THREAD_VARIABLES:
        if explicit:
            os.environ[var] = str(threads)
        else:
            os.environ.setdefault(var, str(threads))


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default and keeps description line breaks."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zerodl",
        description="zerodl: deep learning and DQN from scratch in NumPy.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads for the run (default: the BLAS library's own choice, "
                             "1 for dqn whose small matrices gain nothing from threads)")
    sub = parser.add_subparsers(dest="app", metavar="APP")
    sub.required = True
    for _, module_name in APPS:
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    configure_threads(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
