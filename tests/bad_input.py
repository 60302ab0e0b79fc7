"""The one check every bad-input case makes (issue: reliability).

A command line given bad input must exit with code 2, print exactly one line on stderr that
names what is wrong (a key, a file) and how to fix it, and leave every file that existed before
byte for byte as it was. An API given bad input raises the documented exception with a one-line
message. Cases are tables of `BadInput` rows; `check_cli` and `check_api` run one row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence


@dataclass(frozen=True)
class BadInput:
    """One bad input: an id, what to run, and the words its one-line message must contain."""

    id: str
    argv: Sequence[str] = ()
    names: Sequence[str] = ()  # e.g. the key or file name, and a word of the fix
    setup: Optional[Callable[[Path], None]] = field(default=None, compare=False)


def tree_hashes(*roots: Path) -> dict[str, str]:
    """sha256 of every regular file under `roots` (a file root is hashed itself)."""
    out = {}
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_one_line(message: str, names: Sequence[str]) -> str:
    """The message is one non-empty line that contains every word of `names`."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{message}"
    line = lines[0]
    assert "Traceback" not in line, line
    for word in names:
        assert word.lower() in line.lower(), f"{word!r} not named in: {line}"
    return line


def check_cli(main: Callable[[Sequence[str]], int], argv: Sequence[str], capsys,
              names: Sequence[str] = (), watched: Sequence[Path] = ()) -> str:
    """Run a CLI's main in-process: exit code 2, one line on stderr naming `names`, every file
    under `watched` unchanged. Returns the line."""
    before = tree_hashes(*watched)
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse's own usage errors exit 2 from inside main
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, f"exit code {code!r}, stderr:\n{err}"
    if err.lstrip().startswith("usage:"):  # argparse: usage line(s) then "prog: error: ..."
        err = err.strip().splitlines()[-1]
    line = assert_one_line(err, names)
    after = tree_hashes(*watched)
    assert {k: after.get(k) for k in before} == before, "a file that existed before changed"
    return line


def check_api(call: Callable[[], object], exception: type[BaseException],
              names: Sequence[str] = ()) -> str:
    """`call()` raises `exception` with a one-line message naming `names`. Returns the line."""
    try:
        call()
    except exception as e:
        return assert_one_line(str(e), names)
    raise AssertionError(f"no {exception.__name__} raised")
