"""synsim.files: an atomic write replaces the target whole or not at all, and leaves no temp file."""

import json
import os

import pytest

from synsim import files


def test_write_text_and_json_replace_the_target(tmp_path):
    path = tmp_path / "sub" / "out.json"
    files.write_json(path, {"a": 1})
    files.write_json(path, {"b": [1, 2]})
    assert json.loads(path.read_text()) == {"b": [1, 2]} and path.read_text().endswith("\n")
    assert os.listdir(path.parent) == ["out.json"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    files.write_text(path, "plain")
    assert path.read_text() == "plain"


def test_a_failed_write_keeps_the_old_content_and_no_temporary_file(tmp_path):
    path = tmp_path / "keep.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="interrupted"):
        with files.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["keep.txt"]
