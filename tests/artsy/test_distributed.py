"""One run on two processes (torch.distributed, gloo on the CPU; docs/architecture.md §5.8): the
single-process result up to float rounding, rank 0 the only writer, resume under two processes,
and a bad input on one rank ending both with exit code 2.

The two-process runs are real process groups: `torch.distributed.run --standalone` (torchrun) for
the full run, and two plain `python -m artsy.run` processes with torchrun's environment (RANK,
WORLD_SIZE, MASTER_ADDR, ...) for the others, so that each rank's exit code and output can be read.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from artsy import distributed
from artsy.metrics import without_timings
from artsy.rundir import RunDir
from artsy.run import main
from synsim import io

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
TINY = "tiny-synthetic"
# Nothing random that differs between ranks (crops, flips, dropout); a batch of 47 of the 48 images
# per task: the first batch splits 23 / 24 and the second (1 image) leaves rank 0 an empty slice
EXACT = ["train.augment=false", "adapter.dropout=0", "train.batch_size=47", "train.epochs=2"]
LAUNCH_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
              "MASTER_PORT", "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID")
ENV = {**{k: v for k, v in os.environ.items() if k not in LAUNCH_ENV}, "HF_HUB_OFFLINE": "1",
       "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1",
       distributed.TIMEOUT_ENV: "120"}  # a stuck collective fails in 2 minutes, not 30


def comparable(run_dir) -> dict:
    d = without_timings(json.loads(RunDir(run_dir).metrics_json.read_text()))
    for key in ("name", "processes"):
        d.pop(key, None)
    return d


def assert_close(a, b, path="metrics", rtol=1e-6):
    """Equal, floats to `rtol`: float32 rounding of features computed in other batches (measured
    here: 5e-11; docs/architecture.md §5.8). An accuracy differs by a whole image or not at all."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}", rtol)
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{i}]", rtol)
    elif isinstance(a, float) and isinstance(b, float):
        assert b == pytest.approx(a, rel=rtol, abs=1e-9), path
    else:
        assert a == b, path


class Launch:
    """Processes started now and read later, so that the independent launches run at once."""

    def __init__(self, commands: list[list[str]], envs: list[dict]) -> None:
        self.started = time.monotonic()
        self.procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
                      for cmd, env in zip(commands, envs)]
        self.results = None

    def wait(self, timeout=300) -> list[tuple[int, str, str]]:
        """[(exit code, stdout, stderr)] of each process; then `seconds` is the wall time."""
        if self.results is None:
            try:
                results = []
                for p in self.procs:
                    out, err = p.communicate(timeout=timeout)
                    results.append((p.returncode, out, err))
                self.results = results
            finally:
                for p in self.procs:  # only after a timeout: none may outlive the test
                    if p.poll() is None:
                        p.kill()
                        p.communicate()
            self.seconds = time.monotonic() - self.started
        return self.results


def torchrun(*args) -> Launch:
    """`torchrun --standalone --nproc_per_node=2 -m artsy.run ARGS` (one process: the agent)."""
    return Launch([[sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node=2", "-m", "artsy.run", *args]], [ENV])


_GIVEN_PORTS: set[int] = set()


def free_port() -> int:
    """A free port not handed out before in this session: the OS may return a just-released
    port twice, and two launches on one port join each other's process group."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def two_ranks(args0, args1=None) -> Launch:
    """Ranks 0 and 1 of one process group, started with the environment torchrun gives them."""
    env = {**ENV, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port())}
    return Launch([[sys.executable, "-m", "artsy.run", *args]
                   for args in (args0, args0 if args1 is None else args1)],
                  [{**env, "RANK": str(r), "LOCAL_RANK": str(r)} for r in range(2)])


# --- the batches: every global batch is the single-process one

@pytest.mark.parametrize("n, batch, world", [(48, 16, 2), (48, 47, 2), (10, 4, 3), (5, 8, 2),
                                             (1, 4, 2)])
def test_rank_slices_make_the_single_process_batches(n, batch, world):
    data = list(range(n))  # a dataset of its own indices
    single = DataLoader(data, batch_size=batch, shuffle=True,
                        generator=torch.Generator().manual_seed(7))
    expected = [b.tolist() for _ in range(2) for b in single]  # two epochs
    per_rank = []
    for r in range(world):
        generator = torch.Generator().manual_seed(7)
        sampler = distributed.GlobalBatchSlices(data, batch, generator, r, world)
        loader = DataLoader(data, batch_sampler=sampler, generator=generator)
        got = [b.tolist() for _ in range(2) for b in loader]
        plan = sampler.plan() * 2
        assert len(got) == len(plan) == len(expected)
        for b, (size, mine) in zip(got, plan):
            assert len(b) == max(mine, 1)  # an empty slice runs one stand-in image
        per_rank.append([b[:mine] for b, (_, mine) in zip(got, plan)])
        assert [size for size, _ in plan] == [len(b) for b in expected]
    joined = [sum((per_rank[r][k] for r in range(world)), []) for k in range(len(expected))]
    assert joined == expected


def test_blocks_cover_every_image_once_in_order():
    for n, k in ((0, 2), (1, 2), (7, 3), (48, 2), (5, 8)):
        blocks = [distributed.bounds(n, k, r) for r in range(k)]
        assert blocks[0][0] == 0 and blocks[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
        assert max(hi - lo for lo, hi in blocks) - min(hi - lo for lo, hi in blocks) <= 1


def test_one_process_is_left_as_it_was():
    assert not distributed.launched() and not distributed.active()
    assert distributed.agree(lambda: 3, share=True) == 3 and distributed.all_sum(5) == 5
    assert distributed.concat([torch.ones(2), torch.zeros(1)]).tolist() == [1, 1, 0]


def test_a_rank_leaves_without_finalising_python(monkeypatch):
    """DDP keeps gloo's threads alive past destroy_process_group; one releasing tensors while
    Python finalises aborted 3 of 24 two-rank launches (artsy.run.exit_process)."""
    from artsy import run

    left = []
    monkeypatch.setattr(run.os, "_exit", left.append)
    monkeypatch.setattr(distributed, "launched", lambda: True)
    run.exit_process(3)
    assert left == [3]
    monkeypatch.setattr(distributed, "launched", lambda: False)  # one process: a normal exit
    with pytest.raises(SystemExit) as e:
        run.exit_process(2)
    assert e.value.code == 2 and left == [3]


# --- end to end: the independent launches run at once (a few seconds of work each, mostly
# importing torch)

@pytest.fixture(scope="module")
def launches(tmp_path_factory):
    dirs = {k: tmp_path_factory.mktemp(k) for k in ("single", "pair", "stopped", "bad")}
    started = {
        "pair": torchrun(TINY, f"run.out_dir={dirs['pair']}", *EXACT),
        "stopped": two_ranks([TINY, f"run.out_dir={dirs['stopped']}", *EXACT,
                              "--stop-after", "1"]),
        "bad": two_ranks([TINY, f"run.out_dir={dirs['bad']}"],
                         [TINY, f"run.out_dir={dirs['bad']}", "train.epochz=2"]),
    }
    assert main([TINY, f"run.out_dir={dirs['single']}", *EXACT]) == 0  # meanwhile, here
    started["stopped"].wait()
    stopped = list(dirs["stopped"].glob("tiny-synthetic-*"))
    if len(stopped) == 1:  # else the test reading it fails
        started["resumed"] = two_ranks(["--resume", str(stopped[0])])
    return dirs, started


def one_dir(path: Path) -> Path:
    (run_dir,) = path.glob("tiny-synthetic-*")
    return run_dir


def test_two_processes_give_the_single_process_result(launches):
    dirs, started = launches
    ((code, _, err),) = started["pair"].wait()
    assert code == 0, err[-3000:]
    single, pair = one_dir(dirs["single"]), one_dir(dirs["pair"])
    assert_close(comparable(single), comparable(pair))
    x, y = io.load(single / "synapses.nc"), io.load(pair / "synapses.nc")
    assert set(x.data_vars) == set(y.data_vars)
    for name in x.data_vars:
        np.testing.assert_allclose(y[name].values.astype(float), x[name].values.astype(float),
                                   rtol=1e-5, atol=1e-6, err_msg=name)


def test_rank_0_alone_writes_and_prints(launches):
    dirs, started = launches
    ((code, out, err),) = started["pair"].wait()
    assert code == 0, err[-3000:]
    run_dir = RunDir(one_dir(dirs["pair"]))
    assert list(dirs["pair"].iterdir()) == [run_dir.path]  # no second directory, no staging
    assert sorted(p.name for p in run_dir.path.iterdir()) == [
        "checkpoints", "config.yaml", "fingerprint.json", "metrics.csv", "metrics.json",
        "synapses.nc"]
    assert sorted(run_dir.checkpoint_tasks()) == [0, 1, 2] and not run_dir.temporaries()
    assert out.count("run directory:") == 1 and out.count("after task 2 of 2") == 1
    assert json.loads(run_dir.metrics_json.read_text())["processes"] == 2
    assert json.loads(run_dir.fingerprint.read_text())["processes"] == 2


def test_resume_on_two_processes_gives_the_uninterrupted_result(launches, capsys):
    dirs, started = launches
    first = started["stopped"].wait()
    assert [code for code, _, _ in first] == [0, 0], first[0][2][-3000:] + first[1][2][-3000:]
    assert first[1][1] == ""  # rank 1 prints nothing
    assert "continue with torchrun --nproc_per_node=2 -m artsy.run --resume" in first[0][1]
    run_dir = one_dir(dirs["stopped"])
    second = started["resumed"].wait()
    assert [code for code, _, _ in second] == [0, 0], second[0][2][-3000:]
    assert second[1][1] == "" and "resuming" in second[0][1]
    assert sorted(RunDir(run_dir).checkpoint_tasks()) == [0, 1, 2]
    started["pair"].wait()
    uninterrupted = one_dir(dirs["pair"])
    assert comparable(run_dir) == comparable(uninterrupted)  # same K: identical
    x, y = io.load(uninterrupted / "synapses.nc"), io.load(run_dir / "synapses.nc")
    for name in x.data_vars:
        np.testing.assert_array_equal(x[name].values, y[name].values)
    # one process cannot continue it: its random streams are not those of two
    assert main(["--resume", str(run_dir)]) == 2
    assert "started on 2" in capsys.readouterr().err


def test_a_bad_input_on_one_rank_ends_both_with_one_line(launches):
    dirs, started = launches
    results = started["bad"].wait()
    assert [code for code, _, _ in results] == [2, 2], results
    (_, out0, err0), (_, out1, err1) = results
    lines = [line for line in err0.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: rank 1: "), err0
    assert "train.epochz" in lines[0] and "train.epochs" in lines[0]
    assert err1.strip() == "" and out0 == out1 == ""
    assert list(dirs["bad"].iterdir()) == []  # nothing written
    assert started["bad"].seconds < 100  # no rank waits for a timeout
