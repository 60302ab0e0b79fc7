"""benchmarks/inference_speed.py: finished runs restored from their checkpoints and timed side by
side at their last task; passes per image come from the restored gates."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from artsy.config import load_config
from artsy.runner import start_run

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("inference_speed",
                                              REPO / "benchmarks/inference_speed.py")
inference_speed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(inference_speed)
torch.set_num_threads(1)


def test_side_by_side_timing_of_finished_runs(tmp_path):
    runs = [start_run(load_config("tiny-synthetic", [f"run.out_dir={tmp_path}",
                                                      f"synapse.gate={g}", f"run.name={g}"]),
                      progress=False).run_dir.path for g in ("none", "oracle")]
    out = tmp_path / "speed.json"
    assert inference_speed.main([*map(str, runs), "--repeats", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())["runs"]
    none, oracle = report[str(runs[0])], report[str(runs[1])]
    assert none["speedup_vs_first"] == 1.0 and len(none["times_s"]) == 2
    assert none["backbone_passes_per_image"] == pytest.approx(3.0)  # EASE: every sub-network
    assert oracle["backbone_passes_per_image"] == pytest.approx(1.0)  # only the true task's
    assert oracle["images_per_s"] == pytest.approx(oracle["n_test"] / oracle["median_s"])
