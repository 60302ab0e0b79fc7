"""A resume continues only the run that was started: every result-deciding config key, the class
names and the data are checked (artsy.fingerprint); run directories appear whole; a run killed
anywhere resumes to identical metrics and synapse log; SIGTERM stops like Ctrl-C."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from artsy import fingerprint, run
from artsy.config import ConfigError, apply_overrides, load_config, load_run_config
from artsy.errors import RunError
from artsy.metrics import without_timings
from artsy.rundir import RunDir, create_run_dir, new_run_dir
from synsim import io

from ..bad_input import check_cli
from .data.folder_fixtures import write_image_folder
from .test_bad_inputs import edit_config

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
TINY = "tiny-synthetic"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    assert run.main([TINY, f"run.out_dir={out}"]) == 0
    (run_dir,) = out.glob("tiny-synthetic-*")
    return run_dir


def comparable(run_dir) -> dict:
    return without_timings(json.loads(RunDir(run_dir).metrics_json.read_text()))


def same_log(a, b) -> None:
    x, y = io.load(Path(a) / "synapses.nc"), io.load(Path(b) / "synapses.nc")
    assert set(x.data_vars) == set(y.data_vars)
    for name in x.data_vars:
        np.testing.assert_array_equal(x[name].values, y[name].values)


# --- every result-deciding key

def _changed(cfg, key: str, value):
    """A value of `key` that differs from `value` and that the config accepts."""
    if isinstance(value, bool):
        candidates = [not value]
    elif isinstance(value, (int, float)):
        candidates = [value + 1, value / 2, (value + 1) / 2, 2, 1, 0.5, 0]
    elif value is None:
        candidates = [1, 0.5, 50.0, "other"]
    elif isinstance(value, dict):
        candidates = [{**value, "depth": 2}, {"x": 1}]
    elif isinstance(value, list):
        candidates = [value[::-1], [*value, value[-1] + 1] if value else [1]]
    else:
        candidates = ["identity", "none", "mlp", "oracle", "cifar10", "adam", "constant", "fp16",
                      "gaussian", "new_only", "lda", "own_prototype", "ranpac", "cuda", "b0",
                      "backbone", "vit_small_patch16_224", "other"]
    for candidate in candidates:
        if candidate == value:
            continue
        try:
            apply_overrides(cfg, [f"{key}={json.dumps(candidate)}"])
        except ConfigError:
            continue
        return candidate
    raise AssertionError(f"no other valid value found for {key} (value {value!r})")


def deciding_keys():
    return sorted(fingerprint.deciding_config(load_config(TINY)))


def test_the_keys_that_cannot_change_results_are_few_and_explained():
    flat = fingerprint.flat_config(load_config(TINY))
    assert set(fingerprint.NOT_DECIDING) <= set(flat)
    assert len(deciding_keys()) >= 50 and len(fingerprint.NOT_DECIDING) <= 10


@pytest.mark.parametrize("key", deciding_keys())
def test_resume_refuses_each_changed_result_deciding_key(key, finished, tmp_path, capsys):
    run_dir = Path(shutil.copytree(finished, tmp_path / "run"))
    cfg = load_run_config(run_dir / "config.yaml")
    value = fingerprint.flat_config(cfg)[key]
    edit_config(run_dir, key, _changed(cfg, key, value))
    line = check_cli(run.main, ["--resume", str(run_dir)], capsys, [key, "start a new run"],
                     watched=[run_dir])
    assert "now but the run started with" in line


@pytest.mark.parametrize("key, value", [("run.out_dir", "elsewhere"), ("run.name", "renamed"),
                                        ("run.save_checkpoints", True), ("seeds", [1, 2])])
def test_resume_accepts_keys_that_cannot_change_results(key, value, finished, tmp_path):
    run_dir = Path(shutil.copytree(finished, tmp_path / "run"))
    RunDir(run_dir).checkpoint(2).unlink()  # task 2 is learned again
    edit_config(run_dir, key, value)
    assert run.main(["--resume", str(run_dir)]) == 0
    expected, got = comparable(finished), comparable(run_dir)
    expected.pop("name"), got.pop("name")
    assert got == expected


def test_resume_refuses_another_device_type(finished, tmp_path, capsys):
    copy = Path(shutil.copytree(finished, tmp_path / "run"))
    RunDir(copy).checkpoint(2).unlink()  # task 2 is to be learned again
    record = json.loads(RunDir(copy).fingerprint.read_text())
    assert record["device"] == {"type": "cpu", "amp": "none"}
    record["device"] = {"type": "cuda", "amp": "bf16"}  # as if started on a GPU
    RunDir(copy).fingerprint.write_text(json.dumps(record))
    check_cli(run.main, ["--resume", str(copy)], capsys, ["runs on cpu", "started on cuda",
                                                          "train.device"], watched=[copy])


def test_keys_added_to_the_schema_later_keep_old_runs_resumable(monkeypatch):
    """A run fingerprinted before a key existed resumes when its config gets the key's
    old-behaviour value (ADDED_KEYS), and refuses any other value."""
    cfg = load_config(TINY)
    current = fingerprint.config_fingerprint(cfg)
    before = {**current, "config": {k: v for k, v in current["config"].items()
                                    if k != "synapse.ngai.pre"}}
    monkeypatch.setitem(fingerprint.SCHEMA_CHANGES, "synapse.ngai.pre",
                        current["config"]["synapse.ngai.pre"])
    assert fingerprint.difference(before, current) is None
    monkeypatch.setitem(fingerprint.SCHEMA_CHANGES, "synapse.ngai.pre", "mlp")
    assert "synapse.ngai.pre" in fingerprint.difference(before, current)


# --- the data: renamed classes, replaced images

@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("folder")
    root = write_image_folder(base / "images", n_train=4, n_test=2)
    out = base / "runs"
    assert run.main([TINY, "data.name=imagefolder", f"data.root={root}", "data.init_cls=1",
                     "data.increment=1", f"run.out_dir={out}", "--stop-after", "1"]) == 0
    (run_dir,) = out.glob("tiny-synthetic-*")
    return root, run_dir


def _copy_folder_run(folder_run, tmp_path):
    root, run_dir = folder_run
    new_root = Path(shutil.copytree(root, tmp_path / "images"))
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    cfg = yaml.safe_load((copy / "config.yaml").read_text())
    cfg["data"]["root"] = str(new_root)  # data.root may move: the content is what counts
    (copy / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return new_root, copy


def test_resume_refuses_a_renamed_class(folder_run, tmp_path, capsys):
    root, copy = _copy_folder_run(folder_run, tmp_path)
    for split in ("train", "test"):
        (root / split / "bee").rename(root / split / "wasp")
    check_cli(run.main, ["--resume", str(copy)], capsys, ["class names changed", "wasp"],
              watched=[copy])


def test_resume_refuses_changed_images(folder_run, tmp_path, capsys):
    root, copy = _copy_folder_run(folder_run, tmp_path)
    image = sorted((root / "train" / "ant").glob("*.png"))[0]
    from PIL import Image

    Image.new("RGB", (9, 9), (1, 2, 3)).save(image)  # another image under the same name
    check_cli(run.main, ["--resume", str(copy)], capsys, ["train images differ"], watched=[copy])


def test_resume_of_moved_unchanged_data_continues(folder_run, tmp_path):
    _, copy = _copy_folder_run(folder_run, tmp_path)
    assert run.main(["--resume", str(copy)]) == 0
    assert comparable(copy)["tasks_done"] == 3


def test_a_multi_seed_run_refuses_a_changed_parent_config(tmp_path, capsys):
    assert run.main([TINY, f"run.out_dir={tmp_path}", "seeds=[5]", "--seeds",
                     "--stop-after", "1"]) == 0
    (parent,) = tmp_path.glob("tiny-synthetic-seeds-*")
    edit_config(parent, "train.epochs", 3)
    check_cli(run.main, ["--resume", str(parent)], capsys, ["train.epochs", "3", "1"],
              watched=[parent])


def test_a_run_of_an_older_version_resumes_with_a_note(finished, tmp_path, capsys):
    copy = Path(shutil.copytree(finished, tmp_path / "run"))
    RunDir(copy).fingerprint.unlink()
    RunDir(copy).checkpoint(2).unlink()
    assert run.main(["--resume", str(copy)]) == 0
    assert "cannot be checked" in capsys.readouterr().out
    assert comparable(copy) == comparable(finished)


# --- run directories appear whole; temporaries are cleaned

def test_a_run_directory_appears_whole_or_not_at_all(tmp_path):
    def fail(staging):
        (staging.path / "config.yaml").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        new_run_dir(tmp_path, "x", fail)
    assert list(tmp_path.iterdir()) == []  # neither the run directory nor its staging copy
    made = create_run_dir(tmp_path / "y", lambda s: (s.path / "config.yaml").write_text("ok"))
    assert (made.path / "config.yaml").read_text() == "ok"
    assert oct(made.path.stat().st_mode & 0o777) != oct(0o700)  # not mkdtemp's private mode
    with pytest.raises(RunError, match="exists already"):
        create_run_dir(tmp_path / "y", lambda s: None)


def test_stale_staging_directories_are_removed(tmp_path):
    stale = tmp_path / ".x-20260101-000000.abcd.tmp"
    stale.mkdir()
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".y-20260101-000000.efgh.tmp"  # maybe another process's: kept
    fresh.mkdir()
    new_run_dir(tmp_path, "z")
    assert not stale.exists() and fresh.exists()


def test_resume_removes_temporaries_left_by_a_kill(finished, tmp_path):
    copy = Path(shutil.copytree(finished, tmp_path / "run"))
    RunDir(copy).checkpoint(2).unlink()
    left = [copy / ".metrics.json.k3j2.tmp", copy / "checkpoints" / ".task_02.pt.x8a1.tmp"]
    for p in left:
        p.write_bytes(b"half a file")
    assert RunDir(copy).temporaries()
    assert run.main(["--resume", str(copy)]) == 0
    assert not any(p.exists() for p in left) and not RunDir(copy).temporaries()
    assert comparable(copy) == comparable(finished)


def test_resume_from_scratch_replaces_a_damaged_log(finished, tmp_path):
    copy = Path(shutil.copytree(finished, tmp_path / "run"))
    shutil.rmtree(RunDir(copy).checkpoints)
    (copy / "synapses.nc").write_bytes(b"garbage")
    assert run.main(["--resume", str(copy)]) == 0  # relearns every task, rebuilds the log
    assert comparable(copy) == comparable(finished)
    same_log(copy, finished)


# --- kills and signals (child processes)

KILLER = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from artsy import checkpoint, synapse_log
    from artsy.run import main
    where, n = sys.argv[1], int(sys.argv[2])
    calls = {"n": 0}

    def kill_on_call(module, name, before=True):
        original = getattr(module, name)
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if before and calls["n"] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            out = original(*args, **kwargs)
            if not before and calls["n"] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        setattr(module, name, wrapper)

    if where == "log":  # after task n-1's metrics, before its log
        kill_on_call(synapse_log.SynapseLog, "append_task")
    elif where == "checkpoint-write":  # in the middle of task n-1's checkpoint: a temporary left
        original_save = torch.save
        def half_save(obj, f, *a, **k):
            calls["n"] += 1
            if calls["n"] == n:
                open(f, "wb").write(b"half a checkpoint")
                os.kill(os.getpid(), signal.SIGKILL)
            return original_save(obj, f, *a, **k)
        torch.save = half_save
    elif where == "staging":  # while the run directory is being made
        import artsy.fingerprint as fp
        kill_on_call(fp, "save")
    sys.exit(main(sys.argv[3:]))
""")


def _child(args, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", KILLER, *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.parametrize("where, n", [("log", 2), ("checkpoint-write", 1), ("checkpoint-write", 3),
                                      ("staging", 1)])
def test_a_killed_run_resumes_to_the_uninterrupted_result(where, n, finished, tmp_path):
    out = tmp_path / "runs"
    child = _child([where, str(n), TINY, f"run.out_dir={out}"])
    _, err = child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL, err
    made = [p for p in out.glob("*") if not p.name.startswith(".")]
    if where == "staging":  # killed before the rename: no run directory, nothing to resume
        assert made == []
        return
    (run_dir,) = made
    assert (run_dir / "config.yaml").is_file() and (run_dir / "fingerprint.json").is_file()
    assert run.main(["--resume", str(run_dir)]) == 0
    assert comparable(run_dir) == comparable(finished)
    same_log(run_dir, finished)
    assert not RunDir(run_dir).temporaries()


def test_sigterm_stops_like_ctrl_c_and_names_the_directory(finished, tmp_path):
    out = tmp_path / "runs"
    child = _child(["none", "0", TINY, f"run.out_dir={out}", "train.epochs=300"])
    deadline = time.time() + 240
    while not list(out.glob("tiny-synthetic-*/config.yaml")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # task 0 trains for 300 epochs: the signal lands in training
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    (run_dir,) = out.glob("tiny-synthetic-*")
    assert child.returncode == 143, err
    assert f"stopped (SIGTERM); continue with python -m artsy.run --resume {run_dir}" in err
    assert "Traceback" not in err


def test_ctrl_c_while_importing_is_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen([sys.executable, "-m", "artsy.run", TINY, f"run.out_dir={tmp_path}"],
                             cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # importing torch takes seconds
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    # 130, or death by SIGINT when the interrupt landed in a C extension's PyRun_* call (CPython
    # then re-raises the signal at exit); a shell shows both as $? = 130
    assert child.returncode in (130, -signal.SIGINT), err
    assert "Traceback" not in err and "interrupted" in err
