"""artsy.runner, the Python API under the CLI: start, resume and several seeds."""

import json

import numpy as np
import pytest
import torch

from artsy import seeds
from artsy.config import load_config
from artsy.errors import RunError
from artsy.metrics import without_timings
from artsy.run import main
from artsy.runner import is_seeds_dir, resume_run, resume_seeds, run_seeds, start_run

torch.set_num_threads(1)


def tiny(out, *overrides):
    return load_config("tiny-synthetic", [f"run.out_dir={out}", "synapse.gate=mlp", *overrides])


def comparable(metrics):
    d = without_timings(metrics.to_dict())
    d.pop("name")
    return d


def test_start_and_resume_return_the_run_directory_and_metrics(tmp_path):
    first = start_run(tiny(tmp_path / "a"), stop_after=1, progress=False)
    assert first.run_dir.config.is_file() and not first.done
    assert len(first.metrics.rows) == 1 and first.run_dir.checkpoint(0).is_file()
    resumed = resume_run(first.run_dir, progress=False)
    assert resumed.done and resumed.run_dir == first.run_dir
    whole = start_run(tiny(tmp_path / "b"), progress=False)
    assert comparable(resumed.metrics) == comparable(whole.metrics)
    assert json.loads(whole.run_dir.metrics_json.read_text())["last"] == whole.metrics.summary()[
        "last"]


def test_explicit_run_directory_and_default_name(tmp_path):
    result = start_run(tiny(tmp_path, "run.name=run"), name="from-file", progress=False,
                       run_dir=tmp_path / "mine")
    assert result.run_dir.path == tmp_path / "mine" and result.done
    named = start_run(tiny(tmp_path / "out", "run.name=run"), name="from-file", stop_after=1,
                      progress=False)
    assert named.run_dir.path.name.startswith("from-file-")


@pytest.mark.parametrize("stop_after", [0, -1])
def test_stop_after_must_be_positive(tmp_path, stop_after):
    with pytest.raises(RunError, match="--stop-after must be at least 1"):
        start_run(tiny(tmp_path), stop_after=stop_after)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_seed_config_changes_class_order_and_training_seed():
    cfg = seeds.seed_config(load_config("tiny-synthetic"), 7)
    assert cfg.run.seed == 7 and cfg.data.seed == 7


def test_summarize_mean_sample_std_and_every_seed():
    s = seeds.summarize({1: {"avg": 50.0, "last": 40.0}, 2: {"avg": 60.0, "last": 44.0}},
                        keys=("avg", "last"))
    assert s["avg"]["mean"] == 55.0 and s["avg"]["std"] == pytest.approx(np.std([50, 60], ddof=1))
    assert s["last"]["per_seed"] == {1: 40.0, 2: 44.0}
    single = seeds.summarize({3: {"avg": 1.0}}, keys=("avg",))
    assert single["avg"] == {"mean": 1.0, "std": 0.0, "per_seed": {3: 1.0}}


def test_several_seeds_resume_to_the_uninterrupted_summary(tmp_path):
    cfg = tiny(tmp_path / "whole", "seeds=[1, 2]")
    whole = run_seeds(cfg, progress=False)
    assert whole.done and set(whole.runs) == {1, 2} and is_seeds_dir(whole.path)
    for seed, result in whole.runs.items():
        run_cfg = load_config(result.run_dir.config)
        assert (run_cfg.run.seed, run_cfg.data.seed) == (seed, seed)
        assert result.run_dir.path == whole.path / f"seed-{seed}"
    orders = [r.metrics.meta["class_order"] for r in whole.runs.values()]
    assert orders[0] != orders[1]  # the seed draws the class order too
    avgs = [r.metrics.summary()["avg"] for r in whole.runs.values()]
    assert whole.summary["avg"]["mean"] == pytest.approx(np.mean(avgs))
    assert whole.summary["avg"]["std"] == pytest.approx(np.std(avgs, ddof=1))
    written = json.loads((whole.path / "summary.json").read_text())
    assert written["seeds_done"] == [1, 2] and set(written["summary"]) == set(seeds.KEYS)

    part = run_seeds(tiny(tmp_path / "part", "seeds=[1, 2]"), stop_after=1, progress=False)
    assert not part.done and json.loads((part.path / "summary.json").read_text())[
        "seeds_done"] == []
    resumed = resume_seeds(part.path, progress=False)
    assert resumed.done
    for seed in (1, 2):
        assert comparable(resumed.runs[seed].metrics) == comparable(whole.runs[seed].metrics)
    for key in ("avg", "last", "forgetting", "mean_gate_accuracy"):
        assert resumed.summary[key] == whole.summary[key]


def test_cli_seeds_and_resume_of_a_multi_seed_directory(tmp_path, capsys):
    args = ["tiny-synthetic", f"run.out_dir={tmp_path}", "synapse.gate=none", "seeds=[5]"]
    assert main([*args, "--seeds", "--stop-after", "1"]) == 0
    (parent,) = tmp_path.glob("tiny-synthetic-seeds-*")
    assert main(["--resume", str(parent)]) == 0
    out = capsys.readouterr().out
    assert "seeds finished: 1 of 1" in out and "avg" in out
    assert json.loads((parent / "summary.json").read_text())["seeds_done"] == [5]


def test_a_finished_run_resumes_without_relearning(tmp_path, capsys):
    done = start_run(tiny(tmp_path, "run.save_checkpoints=false"), progress=False)
    again = resume_run(done.run_dir, progress=False)
    assert "are done" in capsys.readouterr().out
    assert comparable(again.metrics) == comparable(done.metrics)


def test_a_stopped_run_without_checkpoints_is_refused(tmp_path):
    part = start_run(tiny(tmp_path, "run.save_checkpoints=false"), stop_after=1, progress=False)
    before = part.run_dir.metrics_json.read_bytes()
    with pytest.raises(RunError, match="run.save_checkpoints=false and stopped after 1 of 3"):
        resume_run(part.run_dir)
    assert part.run_dir.metrics_json.read_bytes() == before  # nothing already written is lost


def test_multi_seed_stop_hint_names_the_multi_seed_directory(tmp_path, capsys):
    part = run_seeds(tiny(tmp_path, "seeds=[1, 2]"), stop_after=1, progress=False)
    hints = [line for line in capsys.readouterr().out.splitlines() if "--resume" in line]
    assert len(hints) == 2 and all(line.endswith(f"--resume {part.path}") for line in hints)
    summary = json.loads((part.path / "summary.json").read_text())
    assert summary["summary"]["avg"] == {"mean": None, "std": None, "per_seed": {}}
