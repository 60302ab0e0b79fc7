"""The Python API under `python -m artsy.run`: start a run, resume it, run several seeds.

    from artsy.config import load_config
    from artsy.runner import start_run, resume_run

    result = start_run(load_config("tiny-synthetic", ["synapse.gate=mlp"]))
    result.run_dir.metrics_json, result.metrics.summary()["last"]
    resume_run(result.run_dir)          # continues after the last checkpointed task

A run writes its directory (artsy.rundir) after every task, in this order: metrics, the synapse
log, the checkpoint; a resumed run ends with the same metrics and log as an uninterrupted one
(wall times aside). Relative `data.root` and `backbone.checkpoint` resolve against the current
directory when they exist there, else against the source checkout (when running from one), so a
config can name `../shared/data/...`; the resolved absolute path goes into config.yaml.

Under torchrun (several processes, artsy.distributed) every function here runs on every rank: the
ranks share the learning, rank 0 alone creates and writes the run directory and prints, and a bad
input found on any rank ends every rank with the same one-line error (docs/architecture.md §5.8).
A resume reads the run directory on every rank, so it must be on a file system they all see.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from synsim.files import write_json

from . import checkpoint, distributed, fingerprint, seeds
from .config import Config, dump_yaml, load_run_config, source_checkout, to_dict
from .data import task_data_from_config
from .errors import CheckpointError, DataError, RunError, one_line
from .metrics import Metrics
from .rundir import RunDir, check_writable, create_run_dir, new_run_dir, read_json
from .synapse_log import SynapseLog

PathLike = Union[str, os.PathLike]


def resume_command(path: PathLike) -> str:
    """The command that continues the run in `path` (torchrun's when several processes run)."""
    return f"{distributed.launch_command()} -m artsy.run --resume {path}"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, in the CLI) once a run directory exists: `resume_from` is what
    --resume takes."""

    def __init__(self, resume_from: PathLike) -> None:
        super().__init__(str(resume_from))
        self.resume_from = Path(resume_from)


@contextlib.contextmanager
def interrupts_resume(path: PathLike):
    """An interrupt in this block becomes RunInterrupted(path) (an inner one keeps its path)."""
    try:
        yield
    except RunInterrupted:
        raise
    except KeyboardInterrupt as e:
        raise RunInterrupted(path) from e


@dataclass
class RunResult:
    """A run directory and its metrics after the tasks this call learned."""

    run_dir: RunDir
    metrics: Metrics

    @property
    def done(self) -> bool:
        return len(self.metrics.rows) == self.metrics.n_tasks


@dataclass
class SeedsResult:
    """A multi-seed run: one RunResult per seed and the mean ± std summary."""

    path: Path
    runs: dict[int, RunResult]
    summary: dict

    @property
    def done(self) -> bool:
        return all(r.done for r in self.runs.values())


# --------------------------------------------------------------------------------------------
# Paths and data


def resolve_path(value: Optional[str]) -> Optional[str]:
    """A relative path: the current directory's if it exists there, else the source checkout's."""
    if value is None or Path(value).expanduser().is_absolute():
        return value
    here = Path(value).expanduser()
    checkout = source_checkout()
    if here.exists() or checkout is None:
        return str(here.resolve())
    return str((checkout / here).resolve())


def resolve_paths(cfg: Config) -> Config:
    """`cfg` with absolute data.root and backbone.checkpoint (see resolve_path)."""
    data = dataclasses.replace(cfg.data, root=resolve_path(cfg.data.root))
    backbone = dataclasses.replace(cfg.backbone, checkpoint=resolve_path(cfg.backbone.checkpoint))
    return dataclasses.replace(cfg, data=data, backbone=backbone)


def run_name(cfg: Config, default: str) -> str:
    """run.name, or `default` (e.g. the config file's stem) when the config leaves it at 'run'."""
    return cfg.run.name if cfg.run.name != "run" else default


def load_task_data(cfg: Config):
    """The config's dataset, class order and task split (artsy.data.TaskData)."""
    normalize = None
    if cfg.data.normalize == "backbone":
        from .backbones import weights_mean_std  # imports timm: only when needed

        normalize = weights_mean_std(cfg.backbone.name)
    try:
        return task_data_from_config(cfg.data, normalize)
    except ValueError as e:  # class order / split problems are bad input too
        raise DataError(one_line(e)) from e


def _check_stop_after(stop_after: Optional[int]) -> None:
    if stop_after is not None and stop_after < 1:
        raise RunError(f"--stop-after must be at least 1 (tasks to learn before stopping), got "
                       f"{stop_after}")


# --------------------------------------------------------------------------------------------
# One run


def start_run(cfg: Config, name: str = "run", stop_after: Optional[int] = None,
              progress: Optional[bool] = None, run_dir: Optional[PathLike] = None) -> RunResult:
    """Learn every task of `cfg` (or the first `stop_after`) in a new run directory.

    The directory is `<run.out_dir>/<run.name or name>-<timestamp>`, or `run_dir` when given (it
    must not exist yet). `progress`: tqdm bars (None: when the output is a terminal).
    """
    distributed.init_from_env()
    with distributed.quiet():
        return _start(cfg, name, stop_after, progress, run_dir, resume_hint=None)


def resume_run(run_dir: PathLike, stop_after: Optional[int] = None,
               progress: Optional[bool] = None) -> RunResult:
    """Continue a run after its last checkpointed task, with its own config.yaml."""
    distributed.init_from_env()
    with distributed.quiet():
        return _resume(RunDir(run_dir), stop_after, progress, resume_hint=None)


def read_metrics(run_dir: PathLike) -> Metrics:
    """A run's metrics.json (what the run has finished so far)."""
    path = RunDir(run_dir).metrics_json
    if not path.is_file():
        raise RunError(f"{path} does not exist: expected a run directory written by "
                       "python -m artsy.run")
    data = read_json(path)
    try:
        return Metrics.from_dict(data)
    except (ValueError, KeyError, TypeError) as e:
        raise RunError(f"cannot read {path} ({type(e).__name__}: {one_line(e)[:120]}): resume "
                       "the run to rebuild it from its checkpoints") from None


def _start(cfg: Config, name: str, stop_after: Optional[int], progress: Optional[bool],
           run_dir: Optional[PathLike], resume_hint: Optional[Path]) -> RunResult:
    from .methods import make_learner  # torch and timm: only when a run starts

    writer = distributed.is_writer()

    def check() -> Config:  # every check before the slow part (data, model) and before any file
        _check_stop_after(stop_after)
        resolved = resolve_paths(cfg)
        if writer and run_dir is None:  # only rank 0 writes
            check_writable(resolved.run.out_dir)
        elif writer:
            check_writable(Path(run_dir).parent, "the run directory's parent")
        return resolved

    cfg = distributed.agree(check, share=True)  # rank 0's resolved paths on every rank

    def build():
        data = load_task_data(cfg)
        learner = make_learner(cfg, data, progress if writer else False)
        return data, learner, _fingerprint(cfg, data, learner)

    data, learner, record = distributed.writer_first(build)

    def write(staging: RunDir) -> None:
        dump_yaml(cfg, staging.config)
        fingerprint.save(staging, record)

    def create() -> RunDir:
        if run_dir is None:
            return new_run_dir(cfg.run.out_dir, run_name(cfg, name), write)
        return create_run_dir(run_dir, write)

    run_dir = distributed.agree(create, run=writer, share=True)
    with interrupts_resume(resume_hint or run_dir.path):
        metrics = Metrics(data.n_tasks, _run_meta(cfg, data, learner))
        print(f"run directory: {run_dir}", flush=True)
        _learn_tasks(cfg, run_dir, learner, metrics, _log(cfg, run_dir, learner), 0, 0,
                     stop_after, resume_hint or run_dir.path)
    return RunResult(run_dir, metrics)


def _fingerprint(cfg: Config, data, learner) -> dict:
    """fingerprint.json's record; with the number of processes when there are several (their
    random streams differ, so a resume must use as many)."""
    record = fingerprint.run_fingerprint(cfg, data, learner)
    if distributed.world_size() > 1:
        record["processes"] = distributed.world_size()
    return record


def _check_processes(run_dir: RunDir, recorded: Optional[dict]) -> None:
    """Refuse to resume on another number of processes than the run started with."""
    before = 1 if recorded is None else recorded.get("processes", 1)
    now = distributed.world_size()
    if before != now:
        raise RunError(f"cannot resume {run_dir}: it runs on {now} process(es) now but started "
                       f"on {before}, and each process draws its own random stream; launch it "
                       f"with {before} (torchrun: nodes x --nproc_per_node = {before}; 1: plain "
                       "python) or start a new run")


def _resume(run_dir: RunDir, stop_after: Optional[int], progress: Optional[bool],
            resume_hint: Optional[Path]) -> RunResult:
    from .methods import make_learner

    writer = distributed.is_writer()

    def read():  # every rank reads; nothing is written before every rank has read
        _check_stop_after(stop_after)
        if not run_dir.config.is_file():
            raise RunError(f"cannot resume {run_dir}: no {run_dir.config.name} there (is it a "
                           "run directory?)")
        cfg = load_run_config(run_dir.config)
        recorded = fingerprint.load(run_dir)
        if recorded is not None:  # a changed config is refused before the slow part
            fingerprint.check(run_dir, recorded, fingerprint.config_fingerprint(cfg))
        _check_processes(run_dir, recorded)
        last = checkpoint.last_task(run_dir)
        written = None
        if run_dir.metrics_json.is_file():
            try:
                written = read_metrics(run_dir)
            except RunError as e:  # the checkpoints hold the metrics: they are rewritten below
                print(f"note: {one_line(e)}; rebuilding it", flush=True)
        if written is not None:
            finished = written.summary()["tasks_done"]
            if finished == written.n_tasks and (last == finished - 1
                                                or not cfg.run.save_checkpoints):
                return cfg, recorded, last, written
            if last is None and not cfg.run.save_checkpoints:
                raise RunError(f"cannot resume {run_dir}: it ran with run.save_checkpoints=false "
                               f"and stopped after {finished} of {written.n_tasks} tasks; start "
                               "it again")
        return cfg, recorded, last, None

    cfg, recorded, last, done = distributed.agree(read, share=True)  # rank 0's view decides
    if done is not None:
        print(f"all {done.n_tasks} tasks of {run_dir} are done")
        return RunResult(run_dir, done)

    def build():
        data = load_task_data(cfg)
        learner = make_learner(cfg, data, progress if writer else False)
        fingerprint.check(run_dir, recorded, _fingerprint(cfg, data, learner))
        if last is None:  # nothing finished: start over in the same directory
            return data, learner, Metrics(data.n_tasks, _run_meta(cfg, data, learner)), 0, 0
        increments, state = checkpoint.load(run_dir, last)
        try:
            learner.load(increments, state["learner"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"cannot resume from {run_dir}: {one_line(e)}") from e
        return (data, learner, Metrics.from_dict(state["metrics"]), last + 1,
                state["step_offset"])

    data, learner, metrics, start, step_offset = distributed.writer_first(build)
    log = _log(cfg, run_dir, learner)

    def clean() -> None:  # rank 0, once every rank has loaded
        for tmp in run_dir.temporaries():  # left by a kill during an atomic write
            tmp.unlink(missing_ok=True)
        log.truncate(start)  # drop what a crash between the log write and the checkpoint left
        checkpoint.remove_after(run_dir, start - 1)
        if start:
            metrics.save(run_dir)
        else:
            run_dir.metrics_json.unlink(missing_ok=True)
            run_dir.metrics_csv.unlink(missing_ok=True)

    distributed.agree(clean, run=writer)
    if start >= data.n_tasks:
        print(f"all {data.n_tasks} tasks of {run_dir} are done")
        return RunResult(run_dir, metrics)
    print(f"resuming {run_dir} at task {start} of {data.n_tasks - 1}", flush=True)
    _learn_tasks(cfg, run_dir, learner, metrics, log, start, step_offset, stop_after,
                 resume_hint or run_dir.path)
    return RunResult(run_dir, metrics)


def _learn_tasks(cfg: Config, run_dir: RunDir, learner, metrics: Metrics, log: SynapseLog,
                 start: int, step_offset: int, stop_after: Optional[int],
                 resume_hint: Path) -> None:
    """Learn and evaluate tasks start..; after each: metrics, log, checkpoint (in that order).
    An interrupt becomes RunInterrupted, and bad data found mid-run a DataError, that name the
    directory to resume."""
    try:
        with interrupts_resume(resume_hint):
            _learn(cfg, run_dir, learner, metrics, log, start, step_offset, stop_after,
                   resume_hint)
    except DataError as e:  # found mid-run (e.g. an unreadable image): fix it, then resume
        raise DataError(f"{one_line(e)}; then continue with {resume_command(resume_hint)}") from e


def _learn(cfg: Config, run_dir: RunDir, learner, metrics: Metrics, log: SynapseLog, start: int,
           step_offset: int, stop_after: Optional[int], resume_hint: Path) -> None:
    from .metrics import peak_memory_mib

    n_tasks = learner.data.n_tasks
    for t in range(start, n_tasks):
        res = learner.learn_task(t)
        ev = learner.evaluate(t)
        metrics.add(t, ev, res.train_time_s, res.train_passes, res.calibration,
                    feature_cosine=learner.feature_cosine,
                    **peak_memory_mib(str(learner.device)))
        after = step_offset + res.n_presentations

        def write() -> None:  # rank 0 writes; the other ranks wait for its outcome
            print(f"\nafter task {t} of {n_tasks - 1} ({learner.label}):\n{metrics.table()}",
                  flush=True)
            metrics.save(run_dir)
            log.append_task(t, step_offset, res.rows, metrics.gate_open_rate[t],
                            metrics.gate_score[t], res.calibration)
            if cfg.run.save_checkpoints:
                checkpoint.save(run_dir, t, learner.task_state(t), {
                    "learner": learner.state_dict(), "metrics": metrics.to_dict(),
                    "step_offset": after})

        distributed.agree(write, run=distributed.is_writer())
        step_offset = after
        if stop_after is not None and t + 1 >= stop_after and t + 1 < n_tasks:
            print(f"stopped after task {t} (--stop-after {stop_after}); continue with "
                  f"{resume_command(resume_hint)}")
            return


def _run_meta(cfg: Config, data, learner) -> dict:
    """metrics.json's description of the run; the method's own entries come from the learner
    (artsy: method, gate, negatives, retrain; a baseline: method)."""
    meta = {"name": cfg.run.name, **learner.run_meta(), "dataset": cfg.data.name,
            "backbone": learner.weight_tag, "device": str(learner.device),
            "class_order": data.order, "task_classes": data.tasks}
    if distributed.world_size() > 1:  # one run on several processes (torchrun)
        meta["processes"] = distributed.world_size()
    return meta


def _log(cfg: Config, run_dir: RunDir, learner) -> SynapseLog:
    """The learner's synapses.nc writer (a method without synapses writes none)."""
    return learner.synapse_log(run_dir.synapse_log, to_dict(cfg))


# --------------------------------------------------------------------------------------------
# Several seeds


def is_seeds_dir(path: PathLike) -> bool:
    """A multi-seed run: summary.json (written first), config.yaml, seed-<N>/ run directories."""
    return RunDir(path).seeds_summary.is_file()


def run_seeds(cfg: Config, name: str = "run", stop_after: Optional[int] = None,
              progress: Optional[bool] = None) -> SeedsResult:
    """One run per seed of `cfg.seeds` in `<run.out_dir>/<name>-seeds-<timestamp>/seed-<N>/`,
    then summary.json (mean ± std and every seed's numbers; artsy.seeds)."""
    distributed.init_from_env()
    with distributed.quiet():
        return _run_seeds(cfg, name, stop_after, progress)


def _run_seeds(cfg: Config, name: str, stop_after: Optional[int],
               progress: Optional[bool]) -> SeedsResult:
    def check() -> Config:
        _check_stop_after(stop_after)
        return resolve_paths(cfg)

    cfg = distributed.agree(check, share=True)

    def write(staging: RunDir) -> None:
        _write_summary(cfg, staging, {})  # it marks the directory as a multi-seed run
        dump_yaml(cfg, staging.config)
        fingerprint.save(staging, fingerprint.config_fingerprint(cfg))

    parent = distributed.agree(
        lambda: new_run_dir(cfg.run.out_dir, f"{run_name(cfg, name)}-seeds", write),
        run=distributed.is_writer(), share=True)
    print(f"multi-seed run directory: {parent} (seeds {cfg.seeds})", flush=True)
    return _seed_runs(cfg, parent, stop_after, progress)


def resume_seeds(path: PathLike, stop_after: Optional[int] = None,
                 progress: Optional[bool] = None) -> SeedsResult:
    """Continue a multi-seed run: resume the seeds that started, start those that did not."""
    distributed.init_from_env()
    parent = RunDir(path)

    def read() -> Config:
        _check_stop_after(stop_after)
        if not parent.config.is_file():
            raise RunError(f"cannot resume {parent}: no {parent.config.name} there (is it a "
                           "multi-seed run directory?)")
        cfg = load_run_config(parent.config)
        fingerprint.check(parent, fingerprint.load(parent), fingerprint.config_fingerprint(cfg))
        return cfg

    with distributed.quiet():
        return _seed_runs(distributed.agree(read, share=True), parent, stop_after, progress)


def _seed_runs(cfg: Config, parent: RunDir, stop_after: Optional[int],
               progress: Optional[bool]) -> SeedsResult:
    runs = {}
    with interrupts_resume(parent.path):
        _each_seed(cfg, parent, stop_after, progress, runs)
    summary = distributed.agree(lambda: _write_summary(cfg, parent, runs),
                                run=distributed.is_writer(), share=True)
    return SeedsResult(parent.path, runs, summary)


def _each_seed(cfg: Config, parent: RunDir, stop_after: Optional[int],
               progress: Optional[bool], runs: dict) -> None:
    for seed in cfg.seeds:
        run_dir = parent.seed_run(seed)
        print(f"\n== seed {seed} ({run_dir})", flush=True)
        started = distributed.agree(run_dir.config.is_file, run=distributed.is_writer(),
                                    share=True)  # rank 0's answer: it creates the directory
        if started:
            runs[seed] = _resume(run_dir, stop_after, progress, resume_hint=parent.path)
        else:
            runs[seed] = _start(seeds.seed_config(cfg, seed), "run", stop_after, progress,
                                run_dir, resume_hint=parent.path)


def _write_summary(cfg: Config, parent: RunDir, runs: dict[int, RunResult]) -> dict:
    """summary.json over the finished seeds; returns the summary."""
    done = {s: r for s, r in runs.items() if r.done}
    summary = seeds.summarize({s: r.metrics.summary() for s, r in done.items()})
    write_json(parent.seeds_summary, {
        "seeds": list(cfg.seeds), "seeds_done": list(done), "std": "sample std, ddof = 1",
        "summary": summary, "curves": {s: r.metrics.curve for s, r in done.items()}})
    return summary
