"""artsy.rundir: every file name of a run directory, and unique new directories."""

from artsy import rundir
from artsy.rundir import RunDir, new_run_dir


def test_paths_of_a_run_directory(tmp_path):
    d = RunDir(tmp_path)
    assert d.config == tmp_path / "config.yaml" and d.synapse_log == tmp_path / "synapses.nc"
    assert (d.metrics_json.name, d.metrics_csv.name) == ("metrics.json", "metrics.csv")
    assert d.checkpoint(3) == tmp_path / "checkpoints" / "task_03.pt"
    assert d.seed_run(1994).path == tmp_path / "seed-1994"
    assert d.seeds_summary == tmp_path / rundir.SEEDS_SUMMARY


def test_checkpoint_tasks_reads_only_checkpoint_names(tmp_path):
    d = RunDir(tmp_path)
    d.checkpoints.mkdir()
    for name in ("task_00.pt", "task_02.pt", "task_x.pt", ".task_01.pt.tmp", "notes.txt"):
        (d.checkpoints / name).write_bytes(b"")
    assert d.checkpoint_tasks() == {0: d.checkpoint(0), 2: d.checkpoint(2)}


def test_new_run_dirs_never_collide(tmp_path):
    first, second = new_run_dir(tmp_path, "x"), new_run_dir(tmp_path, "x")
    assert first.path.is_dir() and second.path.is_dir() and first != second
    assert second.path.name == f"{first.path.name}-2"
