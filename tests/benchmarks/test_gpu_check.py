"""benchmarks/gpu_check.py (`make gpu-check`): without a GPU it says so, runs nothing and exits
0; its artsy setting is a valid CIFAR-100-shaped 2-task config."""

import importlib.util
from pathlib import Path

import pytest
import torch

from artsy.config import load_config

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks/gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_so_and_runs_nothing(tmp_path, capsys):
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--out", str(out)]) == 0
    assert "no CUDA GPU is present" in capsys.readouterr().out
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_its_artsy_setting_is_cifar100_shaped_in_two_tasks():
    cfg = load_config("cifar100", gpu_check.ARTSY_OVERRIDES)
    assert cfg.data.synthetic.n_classes == 100 and cfg.data.image_size == 224
    assert cfg.data.init_cls + cfg.data.increment == 100
    assert cfg.backbone.name == "vit_base_patch16_224" and not cfg.backbone.pretrained
    assert sum(gpu_check.LIMIT_S.values()) <= 8 * 60


def test_bad_skip_list_is_one_line_and_exit_2(capsys):
    assert gpu_check.main(["--skip", "tests,nonsense"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
