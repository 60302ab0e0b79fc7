"""artsy.checkpoint: atomic per-task files, the last contiguous task, loading, clean-up."""

import pytest
import torch

from artsy import checkpoint
from artsy.errors import CheckpointError
from artsy.rundir import RunDir


def save(run_dir, task):
    return checkpoint.save(run_dir, task, {"adapters": {"w": torch.full((2,), float(task))}},
                           {"metrics": {"tasks": list(range(task + 1))}, "step_offset": 10 * task,
                            "mlps": {0: {"b": torch.zeros(1)}},
                            "calibration": [{"K": float("nan")}]})


def test_save_load_and_last_task(tmp_path):
    assert checkpoint.last_task(tmp_path) is None
    for t in range(3):
        save(tmp_path, t)
    assert [p.name for p in sorted((tmp_path / "checkpoints").iterdir())] == [
        "task_00.pt", "task_01.pt", "task_02.pt"]  # no temporary files left
    assert checkpoint.last_task(tmp_path) == 2
    increments, state = checkpoint.load(tmp_path, 2)
    assert [float(i["adapters"]["w"][0]) for i in increments] == [0.0, 1.0, 2.0]
    assert state["step_offset"] == 20 and state["metrics"]["tasks"] == [0, 1, 2]


def test_a_gap_ends_the_chain_and_later_files_are_removed(tmp_path):
    for t in (0, 1, 3):
        save(tmp_path, t)
    assert checkpoint.last_task(tmp_path) == 1
    checkpoint.remove_after(tmp_path, 1)
    assert checkpoint.last_task(tmp_path) == 1
    assert not RunDir(tmp_path).checkpoint(3).exists()


def test_unreadable_checkpoint_is_a_one_line_error(tmp_path):
    save(tmp_path, 0)
    RunDir(tmp_path).checkpoint(0).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*task_00.pt") as info:
        checkpoint.load(tmp_path, 0)
    assert "\n" not in str(info.value)
