"""`python -m artsy.run NAME_OR_PATH [key=value ...] [--dry-run | --seeds] [--stop-after N]` and
`python -m artsy.run --resume RUN_DIR`: the command line over `artsy.runner`.

NAME is one of the package's configs (artsy/configs/NAME.yaml), or a path to a YAML file;
`key.sub=value` overrides follow. A run writes `<run.out_dir>/<name>-<timestamp>/` (artsy.rundir:
config.yaml, metrics.json and .csv, synapses.nc, checkpoints/), updated after every task.
`--resume RUN_DIR` continues after the last checkpointed task with RUN_DIR/config.yaml and ends
with the same metrics as an uninterrupted run (wall times aside). `--seeds` runs the config once per
entry of its `seeds` list (artsy.seeds) and writes the mean ± std summary. `--dry-run` prints the
config, the class order, the task split and the work per task (artsy.plan). Bad input is one line
on stderr, exit code 2. Ctrl-C or SIGTERM stops the run (exit 130 or 143) and names the directory
to resume.

`torchrun --nproc_per_node=K -m artsy.run ...` runs the same run on K processes (artsy.distributed,
docs/architecture.md §5.8): rank 0 prints and writes; a bad input on any rank ends every rank with
exit code 2 and rank 0 prints the one line.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

# Idle OpenMP threads sleep instead of spinning: on a shared CPU a spinning torch runs 2-13x
# slower (docs/environment.md §8.3). Set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .config import config_names, config_path, load_config  # noqa: E402
from .errors import BAD_INPUT, RunError, one_line  # noqa: E402
from .rundir import RunDir  # noqa: E402

EXIT_CODE = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal


class Stopped(KeyboardInterrupt):
    """SIGTERM, raised where the run is so that it stops as Ctrl-C does."""


def _stop_on_sigterm(signum, frame) -> None:
    raise Stopped()


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m artsy.run", description="Continual learning with EASE sub-networks and "
        "per-task synapse gates.", epilog="configs: " + ", ".join(config_names()))
    p.add_argument("config", nargs="?", help="a config name (see below) or a YAML path")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.epochs=2")
    p.add_argument("--dry-run", action="store_true",
                   help="print config, class order, task split and work; do not train")
    p.add_argument("--seeds", action="store_true",
                   help="run once per seed of the config's `seeds` list; mean ± std summary")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a run (or a multi-seed run) after its last checkpoint")
    p.add_argument("--stop-after", type=int, metavar="N",
                   help="stop after N tasks (continue later with --resume)")
    return p.parse_intermixed_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if in_main_thread else None
    writer, ok = True, False
    try:
        from . import distributed  # no torch: the rank comes from the environment

        writer = distributed.is_writer()
        with distributed.quiet():  # several processes: rank 0 alone prints
            result = _run(args)
            _print_result(result)
        ok = True
    except BAD_INPUT as e:
        # one process, or several that agreed on the error: rank 0 prints it; an error only this
        # rank met (outside artsy.distributed.agree) it prints itself
        if writer or not getattr(e, "agreed", False):
            where = "" if writer else f"rank {distributed.rank()}: "
            print(f"error: {where}{one_line(e)}", file=sys.stderr)
        ok = getattr(e, "agreed", False) or not distributed.launched()  # every rank is here
        return 2
    except KeyboardInterrupt as e:
        where = getattr(e, "resume_from", None) or args.resume  # runner.RunInterrupted's
        sigterm = isinstance(e, Stopped) or isinstance(e.__cause__, Stopped)
        what = "stopped (SIGTERM)" if sigterm else "interrupted"
        hint = (f"continue with {runner_module().resume_command(where)}" if where
                else "before the run directory was made: nothing to resume")
        if writer:
            print(f"\n{what}; {hint}", file=sys.stderr)
        return EXIT_CODE[signal.SIGTERM if sigterm else signal.SIGINT]
    except Exception as e:
        code = _peer_lost(e, writer)
        if code is None:
            raise
        return code
    finally:
        if in_main_thread:  # None: a handler not set from Python; restore the default then
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        if ok:
            distributed.shutdown()
    return 0


def _peer_lost(e: Exception, writer: bool) -> Optional[int]:
    """Exit code 1 for a rank that lost the others because another rank failed (whose own output
    shows why), with one line from rank 0; None when `e` is this rank's own bug."""
    from . import distributed

    if not distributed.launched():
        return None
    if isinstance(e, distributed.PeerFailure):
        if writer:
            print(f"error: {one_line(e)} (see its traceback)", file=sys.stderr)
        return 1
    if distributed.lost_peer(e):
        if writer:
            print(f"error: lost the other processes ({type(e).__name__}: {one_line(e)[:200]}); "
                  "the cause is in the output of the rank that failed first", file=sys.stderr)
        return 1
    return None


def _print_result(result) -> None:
    if result is None:
        return
    from . import seeds

    if isinstance(result, runner_module().SeedsResult):
        print(f"\nseeds finished: {len([r for r in result.runs.values() if r.done])} of "
              f"{len(result.runs)}; summary in {RunDir(result.path).seeds_summary}")
        print(seeds.table(result.summary))
    else:
        print_outputs(result)


def runner_module():
    """artsy.runner, imported when a run starts: it brings torch (seconds), and an interrupt
    during that import must end like any other (one line, not a traceback)."""
    from . import runner

    return runner


def _run(args: argparse.Namespace):
    """The run, the resumed run or the dry run the arguments ask for (None: printed already)."""
    from . import distributed

    if args.dry_run and not distributed.is_writer():
        return None  # several processes: rank 0 alone plans and prints
    if not args.dry_run:
        distributed.init_from_env()  # torchrun: join the other processes (nothing for one)

    def prepare():
        if args.resume:
            if args.config or args.overrides or args.dry_run or args.seeds:
                raise RunError("--resume RUN_DIR takes no config, overrides, --dry-run or "
                               "--seeds: the run continues with RUN_DIR/config.yaml")
            return "resume", runner_module().is_seeds_dir(args.resume), None
        if not args.config:
            raise RunError("give a config name or path (or --resume RUN_DIR); configs: "
                           + ", ".join(config_names()))
        name = Path(str(config_path(args.config))).stem
        return name, None, load_config(args.config, args.overrides)

    name, seeds_dir, cfg = distributed.agree(prepare, share=True)  # rank 0's reading
    runner = runner_module()
    if args.resume:
        if seeds_dir:
            return runner.resume_seeds(args.resume, args.stop_after)
        return runner.resume_run(args.resume, args.stop_after)
    if args.dry_run:
        from .plan import dry_run

        print(dry_run(runner.resolve_paths(cfg)))
        return None
    if args.seeds:
        return runner.run_seeds(cfg, name, args.stop_after)
    return runner.start_run(cfg, name, args.stop_after)


def print_outputs(result) -> None:
    """The files of a finished (or stopped) run and its table."""
    run_dir = result.run_dir
    print(f"\noutputs in {run_dir}:")
    for path in (run_dir.config, run_dir.metrics_json, run_dir.metrics_csv, run_dir.synapse_log,
                 run_dir.checkpoints):
        if path.exists():
            print(f"  {path}")
    if result.metrics.rows:
        print(result.metrics.table())


def exit_process(code: int) -> None:
    """End the process with `code`. One of several (torchrun) leaves without finalising the
    interpreter: DistributedDataParallel keeps gloo's worker threads alive past
    destroy_process_group, and a worker still releasing a finished collective's tensors while
    the interpreter shuts down aborts the process ("terminate called without an active
    exception": 3 of 24 two-rank launches). Every file is written and closed by then."""
    from . import distributed

    if distributed.launched():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    else:
        sys.exit(code)


if __name__ == "__main__":
    exit_process(main())
