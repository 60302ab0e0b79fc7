"""`make gpu-check`: everything that needs a GPU, in one short script and one JSON.

1. the tests marked `cuda` (skipped on a CPU machine: bf16 autocast training and evaluation,
   DDP over NCCL, synsim's torch kernel on CUDA against the CPU result);
2. a CIFAR-100-shaped synthetic run per gate: ViT-B/16 at 224 px with random weights (no
   download), 100 classes in 2 tasks, reporting training and inference images/s and the peak
   GPU memory of each gate;
3. the synsim throughput benchmark on CUDA (`benchmarks/synsim_throughput.py --device cuda`).

Each part has its own time limit so the whole stays under about 8 minutes on one GPU; a part that
fails or runs out of time is recorded as such and the others still run. Writes
benchmarks/results/gpu_check.json (atomically). Without a GPU it says so and exits 0 having run
nothing.

    python benchmarks/gpu_check.py [--out PATH] [--skip tests,artsy,bench]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = ("tests", "artsy", "bench")
LIMIT_S = {"tests": 180, "artsy": 150, "bench": 150}  # per part; the total stays under 8 min
GATES = ("none", "mlp", "ngai", "oracle", "entropy")
# CIFAR-100's shape, synthetic content: 100 classes of 32-px images, resized to ViT-B/16's 224 px
ARTSY_OVERRIDES = [
    "data.name=synthetic", "data.root=null", "data.image_size=224", "data.init_cls=50",
    "data.increment=50", "data.synthetic.n_classes=100", "data.synthetic.train_per_class=20",
    "data.synthetic.test_per_class=10", "data.synthetic.image_size=32",
    "backbone.name=vit_base_patch16_224", "backbone.pretrained=false", "train.epochs=1",
    "train.batch_size=64", "run.eval_batch_size=256", "train.device=cuda", "train.amp=bf16",
]


def machine() -> dict:
    import torch

    props = torch.cuda.get_device_properties(0)
    return {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "gpus": torch.cuda.device_count(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "python": platform.python_version(),
            "host": platform.node(), "cpus": os.cpu_count()}


def run_tests(limit_s: float) -> dict:
    """pytest -m cuda; the counts from its junit XML."""
    import xml.etree.ElementTree as ET

    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "cuda.xml"
        out = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-q",
                              "-p", "no:cacheprovider", f"--junitxml={xml}"], cwd=REPO,
                             capture_output=True, text=True, timeout=limit_s)
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    return {"returncode": out.returncode, **counts, "tail": out.stdout[-2000:]}


def run_artsy(limit_s: float) -> dict:
    """One 2-task run per gate; images/s from each run's own per-task counts and times."""
    from artsy.config import load_config
    from artsy.runner import start_run

    rows, start = {}, time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        for gate in GATES:
            if time.perf_counter() - start > limit_s:
                rows[gate] = {"skipped": f"over the {limit_s:.0f} s limit of this part"}
                continue
            cfg = load_config("cifar100", [*ARTSY_OVERRIDES, f"synapse.gate={gate}",
                                           f"run.out_dir={out}", f"run.name={gate}"])
            m = start_run(cfg, progress=False).metrics.to_dict()
            tasks = m["tasks"]
            rows[gate] = {
                "train_images_per_s": sum(t["train_forward_passes"] for t in tasks)
                / sum(t["train_time_s"] for t in tasks),
                "eval_images_per_s": sum(t["n_test"] for t in tasks)
                / sum(t["eval_time_s"] for t in tasks),
                "eval_images_per_s_last_task": tasks[-1]["images_per_s"],
                "peak_cuda_mib": max(t["peak_cuda_mib"] or 0 for t in tasks),
                "last": m["last"], "subnetwork_passes_per_image":
                m["subnetwork_passes_per_image"]}
    return {"setting": ARTSY_OVERRIDES, "gates": rows}


def run_bench(limit_s: float) -> dict:
    """synsim_throughput.py on CUDA, its own JSON read back."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.json"
        out = subprocess.run([sys.executable, "benchmarks/synsim_throughput.py", "--device",
                              "cuda", "--out", str(path)], cwd=REPO, capture_output=True,
                             text=True, timeout=limit_s)
        result = json.loads(path.read_text()) if path.exists() else None
    return {"returncode": out.returncode, "result": result, "tail": out.stdout[-2000:]
            + out.stderr[-2000:]}


RUNNERS = {"tests": run_tests, "artsy": run_artsy, "bench": run_bench}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/gpu_check.py", description=__doc__
                                .split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/gpu_check.json")
    p.add_argument("--skip", default="", help=f"comma-separated parts to skip: {PARTS}")
    args = p.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(PARTS):
        print(f"gpu_check: --skip takes {', '.join(PARTS)}; got {sorted(skip - set(PARTS))}",
              file=sys.stderr)
        return 2
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU is present on this machine; nothing was run (run "
              "`make gpu-check` on a GPU machine)")
        return 0
    from synsim.files import check_writable, write_json

    check_writable(args.out)
    report = {"machine": machine(), "limits_s": LIMIT_S, "parts": {}}
    for part in PARTS:
        if part in skip:
            continue
        t0 = time.perf_counter()
        try:
            result = RUNNERS[part](LIMIT_S[part])
        except subprocess.TimeoutExpired:
            result = {"error": f"over its {LIMIT_S[part]} s limit"}
        except Exception as e:  # recorded, so the other parts still run
            result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        result["wall_s"] = round(time.perf_counter() - t0, 1)
        report["parts"][part] = result
        print(f"{part}: {json.dumps(result, default=str)[:400]}", flush=True)
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
