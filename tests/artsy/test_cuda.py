"""On a CUDA GPU (marked `cuda`: skipped elsewhere; `make gpu-check` runs them): bf16 autocast
training and evaluation give a finished run whose accuracy matches the CPU run's within what
bf16 rounding can move, report the GPU's peak memory, and resume to the uninterrupted metrics."""

import math

import pytest

from artsy.config import load_config
from artsy.runner import resume_run, start_run

pytestmark = pytest.mark.cuda


def tiny(out, *overrides):
    return load_config("tiny-synthetic", [f"run.out_dir={out}", *overrides])


@pytest.mark.parametrize("gate", ["none", "ngai"])
def test_bf16_training_and_evaluation_on_cuda(gate, tmp_path):
    gpu = start_run(tiny(tmp_path / "gpu", f"synapse.gate={gate}", "train.device=cuda",
                         "train.amp=bf16"), progress=False).metrics
    cpu = start_run(tiny(tmp_path / "cpu", f"synapse.gate={gate}"), progress=False).metrics
    assert gpu.summary()["tasks_done"] == 3
    for row in gpu.rows:
        assert row["peak_cuda_mib"] > 0 and math.isfinite(row["accuracy"])
    # bf16 keeps 8 bits of mantissa: the tiny run's accuracies may move by a few test images
    assert abs(gpu.summary()["last"] - cpu.summary()["last"]) <= 15


def test_a_cuda_run_resumes_to_the_uninterrupted_metrics(tmp_path):
    """Identical on the CPU (tests/artsy/test_run.py); on CUDA cuBLAS may pick other kernels in a
    new process, so the curve may move by at most one test image per task."""
    cfg = tiny(tmp_path, "train.device=cuda", "train.amp=bf16")
    whole = start_run(cfg, progress=False, run_dir=tmp_path / "whole").metrics
    part = start_run(cfg, stop_after=1, progress=False, run_dir=tmp_path / "part")
    resumed = resume_run(part.run_dir, progress=False).metrics
    assert resumed.summary()["tasks_done"] == whole.summary()["tasks_done"] == 3
    for a, b in zip(resumed.rows, whole.rows):
        assert abs(a["accuracy"] - b["accuracy"]) <= 100 / a["n_test"] + 1e-9
