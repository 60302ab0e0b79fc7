"""benchmarks/frozen_separability.py: what read-outs of the frozen feature h0 tell apart on
held-out training images, at several sizes and stage counts."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("frozen_separability",
                                              REPO / "benchmarks/frozen_separability.py")
frozen_separability = importlib.util.module_from_spec(spec)
spec.loader.exec_module(frozen_separability)

NOISY = ["data.synthetic.noise=3.0"]  # far from 100 % task-id, so the read-outs differ
TINY = ["--config", "tiny-synthetic", "--sizes", "16", "--stages", "0", "1"]


def test_h0_at_k_stages_keeps_the_first_block_and_the_last_k_stages():
    # E_0(x) of width 2, then three stages of widths 1, 2, 1, as frozen_feature(x, 3) lays them out
    widths = [2, 1, 2, 1]
    h = np.array([[10.0, 11.0, 20.0, 30.0, 31.0, 40.0]])
    assert frozen_separability.at_stages(h, widths, 0).tolist() == [[10.0, 11.0]]
    assert frozen_separability.at_stages(h, widths, 1).tolist() == [[10.0, 11.0, 40.0]]
    assert frozen_separability.at_stages(h, widths, 2).tolist() == [[10.0, 11.0, 30.0, 31.0,
                                                                      40.0]]
    assert frozen_separability.at_stages(h, widths, 3).tolist() == h.tolist()
    unit = frozen_separability.unit_blocks(np.array([[3.0, 4.0, -2.0, 0.0, 0.0]]), [2, 1, 2])
    assert unit[0].tolist() == pytest.approx([0.6, 0.8, -1.0, 0.0, 0.0])  # a zero block stays 0


def test_every_read_out_is_scored_per_seed_and_on_the_mean(tmp_path):
    out = tmp_path / "sep.json"
    assert frozen_separability.main([*TINY, "--seeds", "3", "4", "--out", str(out), *NOISY]) == 0
    result = json.loads(out.read_text())
    assert result["setting"]["evaluated_on"].startswith("held-out")
    runs = result["per_seed"]["16"]
    assert set(runs) == {"3", "4"}
    for k in (0, 1):
        key = f"frozen_stages={k}"
        for metric in frozen_separability.METRICS:
            values = [runs[s][key][metric] for s in ("3", "4")]
            assert all(0 <= v <= 100 for v in values)
            assert result["mean"]["16"][key][metric] == pytest.approx(np.mean(values))
        # the logistic read-out names a class, so its task is right wherever its class is
        row = runs["3"][key]
        assert row["logistic_class_accuracy"] <= row["logistic_task_id_accuracy"]
    assert runs["3"]["frozen_stages=1"]["width"] > runs["3"]["frozen_stages=0"]["width"]


def test_a_mirror_identical_to_its_image_leaves_the_ridge_read_out_unchanged(tmp_path,
                                                                           monkeypatch):
    # the same features twice double the Gram matrix, the class sums and lambda (a multiple of
    # the Gram's mean diagonal) alike: the scale-free ridge solution is the same
    monkeypatch.setattr(frozen_separability, "mirrored", lambda transform: transform)
    out = tmp_path / "sep.json"
    assert frozen_separability.main([*TINY, "--seeds", "3", "--out", str(out), *NOISY]) == 0
    for row in json.loads(out.read_text())["per_seed"]["16"]["3"].values():
        if isinstance(row, dict):
            for m in ("class", "task_id"):
                assert row[f"ridge_mirrored_{m}_accuracy"] == pytest.approx(
                    row[f"ridge_{m}_accuracy"])


@pytest.mark.parametrize("args, message", [
    (["--stages", "0", "5"], "--stages 0 5: this backbone has 1 stage(s)"),
    (["data.bogus=1"], "unknown config key 'data.bogus'"),
])
def test_bad_input_is_one_line_with_exit_2_and_nothing_written(tmp_path, capsys, args, message):
    out = tmp_path / "sep.json"
    argv = ["--config", "tiny-synthetic", "--sizes", "16", "--seeds", "3", "--out", str(out)]
    assert frozen_separability.main([*argv, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
