"""The errors that mean "the input is wrong", and how synsim's command lines report them.

The API refuses a non-physical value with a ValueError at the layer that owns it (the parameter
dataclasses, `Circuit`, `Stimulus`, the protocols, the rule, `synsim.io`), one line naming the
argument, the value and the allowed range (docs/model.md §10.5). The command lines
(`python -m synsim.figures`, `synsim.crosscheck`, `synsim.demo`) catch `BAD_INPUT` in `main` and
print `prog: message` on one line with exit code 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import sys


def one_line(message: object) -> str:
    """A message (or an error's) on one line, as the command lines print it."""
    return " ".join(str(message).split())


class SynsimError(Exception):
    """Bad input to a synsim command line or file: reported in one line, exit code 2."""


class DataFileError(SynsimError, ValueError):
    """A file is not a readable synsim netCDF (text, truncated, or not written by synsim)."""


class OutputError(SynsimError, OSError):
    """An output path cannot be written (under a file, a directory where a file is expected, no
    permission)."""


class UsageError(SynsimError, ValueError):
    """A command-line argument is wrong in a way argparse cannot tell (e.g. --from DIR holds no
    synsim run)."""


# What the command lines report in one line with exit code 2: the errors above and the operating
# system's refusals (a missing file, no permission).
BAD_INPUT = (SynsimError, OSError)


def report(prog: str, error: BaseException) -> int:
    """Print `prog: message` on one line on stderr; the exit code of bad input (2)."""
    print(f"{prog}: {one_line(error)}", file=sys.stderr)
    return 2
