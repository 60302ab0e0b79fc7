"""benchmarks/ease_subspaces.py: how close each EASE sub-network puts its own and foreign inputs
to its own classes' prototypes, trained against frozen, on held-out training images."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from artsy.runner import start_run

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("ease_subspaces",
                                              REPO / "benchmarks/ease_subspaces.py")
ease_subspaces = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ease_subspaces)

# noisy enough that Last is far from 100 %; alpha 0: no
# cross-subspace share in EASE's logits
NOISY = ["train.lr=0.5", "data.synthetic.noise=3.0", "prototypes.alpha=0"]


def test_each_sub_network_scores_an_input_against_its_own_tasks_classes_only():
    # classes 0, 1 belong to task 0 and class 2 to task 1; prototypes (class, subspace, dim)
    prototypes = torch.tensor([[[1.0, 0.0], [0.0, 1.0]],
                               [[0.0, 1.0], [1.0, 0.0]],
                               [[1.0, 1.0], [1.0, 0.0]]])
    class_task = torch.tensor([0, 0, 1])
    feats = [torch.tensor([[1.0, 0.0], [0.0, 2.0]]),  # sub-network 0
             torch.tensor([[0.0, 1.0], [3.0, 0.0]])]  # sub-network 1
    scores = ease_subspaces.subspace_scores(feats, prototypes, class_task)
    # input 0: subspace 0 sees classes 0, 1 at cos 1, 0; subspace 1 sees class 2 at cos 0
    assert scores.tolist() == [[1.0, 0.0], [1.0, 1.0]]
    own, foreign = ease_subspaces.own_and_foreign(torch.tensor([[0.9, 0.2, 0.5],
                                                                [0.1, 0.8, 0.3]]),
                                                  torch.tensor([0, 2]))
    assert own.tolist() == pytest.approx([0.9, 0.3])
    assert foreign.tolist() == pytest.approx([0.5, 0.8])
    # standardised: (0.9 - 0.95) / 0.05 = -1 against (0.8 - 0.5) / 0.1 = 3 picks sub-network 1,
    # though its raw score is lower
    chosen = ease_subspaces.standardised_choice(torch.tensor([[0.9, 0.8]]),
                                                torch.tensor([0.95, 0.5]), torch.tensor([0.05, 0.1]))
    assert chosen.tolist() == [1]


def test_trained_and_frozen_runs_on_the_held_out_split_write_json_table_and_figure(tmp_path):
    out = tmp_path / "ease.json"
    assert ease_subspaces.main(["--config", "tiny-synthetic", "--seeds", "3", "--out", str(out),
                                *NOISY]) == 0
    result = json.loads(out.read_text())
    assert set(result["summary"]) == {"frozen", "trained"}
    m = {name: runs["3"] for name, runs in result["per_seed"].items()}
    for name, row in m.items():
        assert row["margin"] == pytest.approx(row["own"] - row["foreign"], abs=1e-12)
        # with alpha 0 EASE's logit is the own-subspace cosine alone: its task choice is wrong
        # exactly where a foreign sub-network scores the input higher than its own
        assert row["foreign_wins"] == pytest.approx(100 - row["task_id"])
        assert row["margin_std"] > 0
        assert 0 <= row["accuracy_standardised"] <= row["task_id_standardised"] <= 100
        assert -1.0 <= row["foreign"] <= 1.0 and -1.0 <= row["own"] <= 1.0
        # the held-out split: 12 of tiny-synthetic's 24 training images per class, 6 classes
        assert row["images"] == 6 * 12
    assert m["trained"]["own"] != m["frozen"]["own"]  # the sub-networks moved
    # the prediction scored here is the learner's own: the same Last as a run with gate none
    for name, extra in ease_subspaces.VARIANTS.items():
        cfg = ease_subspaces.variant_config(
            "tiny-synthetic", [*NOISY, *extra, f"run.out_dir={tmp_path / name}"], seed=3)
        run = start_run(cfg, progress=False)
        assert m[name]["accuracy"] == pytest.approx(run.metrics.summary()["last"])
    assert out.with_suffix(".md").read_text().count("\n") == 2 + 2
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bad_override_is_refused_in_one_line_before_any_run(tmp_path, capsys):
    out = tmp_path / "ease.json"
    assert ease_subspaces.main(["--config", "tiny-synthetic", "--out", str(out),
                                "train.lr=fast"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "train.lr" in err
    assert not out.exists()
