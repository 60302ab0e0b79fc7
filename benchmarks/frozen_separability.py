"""How well the frozen backbone tells the demo's tasks apart: the limit of any gate that reads h0.

Setting: the demo (EfficientNet-Lite0 ImageNet weights, CIFAR-10 JPEGs, 5 tasks of 2 classes,
120 training images per class) with `data.holdout` = 0.2, so the test split is never read. Per
seed, image size and `synapse.ngai.frozen_stages` k, one pass of the frozen network over the
training images, one over their left-right mirrors and one over the held-out images give h0 (no
adapter is trained: h0 does not depend on them). Four read-outs of it are scored on the held-out
images, class and task-id accuracy:

- `ridge`: ngai's release scorer (artsy.gates.scorers, the config's ridge settings), fitted task
  by task on exact running statistics, as the gate fits it;
- `ridge_mirrored`: the same, with each training image's mirror added to the statistics (still
  exemplar-free: the mirror's features enter the sums once, like the image's);
- `ridge_blocks`: the same on h0 with each of its blocks (E_0(x), then each stage's pooled
  output) scaled to unit length alone, so no block outweighs the others by its scale;
- `logistic`: a logistic regression on standardised h0 fitted on every task's images at once
  (not continual; the best C of 0.01, 0.1, 1 by held-out task-id), a reference the continual
  scorer cannot be expected to pass.

Whether a gate reading h0 can reach the oracle depends on these numbers: each image the best
read-out assigns to the wrong task is one the gate would have to route by something else.

    python benchmarks/frozen_separability.py                          # about 14 minutes on 2 cores
    python benchmarks/frozen_separability.py --seeds 1993 --sizes 96 128 --stages 0 3
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torchvision import transforms as T

REPO = Path(__file__).resolve().parents[1]
HOLDOUT = 0.2
READOUTS = ("ridge", "ridge_mirrored", "ridge_blocks", "logistic")
METRICS = tuple(f"{r}_{m}_accuracy" for r in READOUTS for m in ("class", "task_id"))


def features(learner, dataset, stages: int) -> tuple[np.ndarray, np.ndarray]:
    """h0 at `stages` and the labels of a dataset, in order."""
    hs, ys = [], []
    with torch.inference_mode():
        for x, y in learner._loader(dataset, 100):
            hs.append(learner.net.frozen_feature(x, stages).float())
            ys.append(y)
    return torch.cat(hs).numpy(), torch.cat(ys).numpy()


def mirrored(transform):
    """`transform` applied to the image's left-right mirror."""
    return T.Compose([T.RandomHorizontalFlip(p=1.0), transform])


def kept_widths(widths: list[int], k: int) -> list[int]:
    """The widths of h0's blocks at k stages: E_0(x)'s, then the last k of `widths[1:]`."""
    return [widths[0], *widths[len(widths) - k:]] if k else widths[:1]


def at_stages(h: np.ndarray, widths: list[int], k: int) -> np.ndarray:
    """h0 at k stages from h0 at len(widths) - 1 stages: `widths` are the blocks' widths
    (E_0(x), then the stages in order); the first block and the last k stages are kept."""
    stages = sum(kept_widths(widths, k)[1:])
    return np.concatenate([h[:, : widths[0]], h[:, h.shape[1] - stages:]], axis=1)


def unit_blocks(h: np.ndarray, widths: list[int]) -> np.ndarray:
    """Each block of h (widths in order) divided by its own Euclidean length."""
    edges = np.cumsum([0, *widths])
    blocks = [h[:, a:b] for a, b in zip(edges[:-1], edges[1:])]
    return np.concatenate([b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
                           for b in blocks], axis=1)


def ridge_scores(cfg, train: list, val_h0: np.ndarray, val_y: np.ndarray, task_of: np.ndarray,
                 n_tasks: int) -> tuple[float, float]:
    """Class and task-id accuracy of ngai's ridge scorer fitted task by task on `train`
    ((h0, labels) per task) and read on the held-out h0."""
    from artsy.gates.ngai import joint_scorer

    scorer = joint_scorer(cfg.synapse, val_h0.shape[1])
    for t, (h0, y) in enumerate(train):
        scorer.add(t, torch.from_numpy(h0), torch.from_numpy(y))
    vh0 = torch.from_numpy(val_h0)
    pred = scorer.class_scores(vh0).argmax(1).numpy()
    pred_task = scorer.task_probability(vh0, n_tasks).argmax(1).numpy()
    return 100 * float((pred == val_y).mean()), 100 * float((pred_task == task_of[val_y]).mean())


def logistic_scores(train: list, val_h0: np.ndarray, val_y: np.ndarray,
                    task_of: np.ndarray) -> tuple[float, float, float]:
    """(C, class accuracy, task-id accuracy) of the best logistic regression on all tasks."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = np.concatenate([h for h, _ in train]), np.concatenate([y for _, y in train])
    scale = StandardScaler().fit(x)
    best = None
    for c in (0.01, 0.1, 1.0):
        p = LogisticRegression(C=c, max_iter=3000).fit(scale.transform(x), y).predict(
            scale.transform(val_h0))
        scores = (c, 100 * float((p == val_y).mean()),
                  100 * float((task_of[p] == task_of[val_y]).mean()))
        if best is None or scores[2] > best[2]:
            best = scores
    return best


def split_config(config: str, seed: int, size: int, overrides: tuple[str, ...] = ()):
    """The config of one measurement: the held-out split of `seed` at `size` px, untrained."""
    from artsy.config import UNTRAINED, load_config

    return load_config(config, [f"data.holdout={HOLDOUT}", f"data.seed={seed}",
                                f"run.seed={seed}", f"data.image_size={size}",
                                "train.device=cpu", UNTRAINED, *overrides])


def measure(seed: int, size: int, stages: list[int], config: str = "demo",
            overrides: tuple[str, ...] = ()) -> dict:
    """Class and task-id accuracy of every read-out for every k, from one pass per split."""
    from artsy.errors import ConfigError
    from artsy.learner import Learner
    from artsy.prototypes import class_task_index
    from artsy.runner import load_task_data

    cfg = split_config(config, seed, size, overrides)
    data = load_task_data(cfg)
    learner = Learner(cfg, data, progress=False)
    deepest = max(stages)
    n_stages = len(learner.net.stage_widths())
    if not 0 <= min(stages) <= deepest <= n_stages:
        raise ConfigError(f"--stages {' '.join(map(str, stages))}: this backbone has {n_stages} "
                          f"stage(s); use values from 0 to {n_stages}")
    widths = [learner.dim, *learner.net.stage_widths()[n_stages - deepest:]]
    start = time.perf_counter()
    train = [features(learner, data.train_set(t, transform=data.test_transform), deepest)
             for t in range(data.n_tasks)]
    mirror = [features(learner, data.train_set(t, transform=mirrored(data.test_transform)),
                       deepest)[0] for t in range(data.n_tasks)]
    val_h0, val_y = features(learner, data.test_set(data.n_tasks - 1), deepest)
    out = {"feature_pass_s": time.perf_counter() - start}
    task_of = class_task_index(data.tasks).numpy()
    for k in stages:
        kw = kept_widths(widths, k)
        tr = [(at_stages(h, widths, k), y) for h, y in train]
        vh = at_stages(val_h0, widths, k)
        both = [(np.concatenate([h, at_stages(m, widths, k)]), np.concatenate([y, y]))
                for (h, y), m in zip(tr, mirror)]
        blocks = [(unit_blocks(h, kw), y) for h, y in tr]
        row = {"width": vh.shape[1]}
        for name, fit, read in (("ridge", tr, vh), ("ridge_mirrored", both, vh),
                                ("ridge_blocks", blocks, unit_blocks(vh, kw))):
            acc = ridge_scores(cfg, fit, read, val_y, task_of, data.n_tasks)
            row[f"{name}_class_accuracy"], row[f"{name}_task_id_accuracy"] = acc
        (row["logistic_C"], row["logistic_class_accuracy"],
         row["logistic_task_id_accuracy"]) = logistic_scores(tr, vh, val_y, task_of)
        out[f"frozen_stages={k}"] = row
    return out


def task_ids(result: dict, k: int) -> str:
    """One line's part: every read-out's task-id accuracy at k stages."""
    row = result[f"frozen_stages={k}"]
    return f"k={k} " + " ".join(f"{name} {row[f'{name}_task_id_accuracy']:.2f}"
                                 for name in READOUTS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="demo")
    p.add_argument("--seeds", type=int, nargs="+", default=[1993, 1994, 1995])
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 128, 160, 224])
    p.add_argument("--stages", type=int, nargs="+", default=[0, 3])
    p.add_argument("--out", type=Path,
                   default=REPO / "benchmarks/results/frozen_separability.json")
    p.add_argument("overrides", nargs="*", help="config overrides, key.sub=value")
    args = p.parse_args(argv)
    from artsy.errors import BAD_INPUT, one_line
    from synsim.files import write_json

    try:  # every size's config, before any pass
        for size in args.sizes:
            split_config(args.config, args.seeds[0], size, tuple(args.overrides))
    except BAD_INPUT as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2

    results: dict = {"setting": {"config": args.config, "overrides": args.overrides,
                                 "holdout": HOLDOUT, "seeds": args.seeds,
                                 "evaluated_on": "held-out training images; no test image"},
                     "per_seed": {}, "mean": {}}
    for size in args.sizes:
        for seed in args.seeds:
            try:
                r = measure(seed, size, args.stages, args.config, tuple(args.overrides))
            except BAD_INPUT as e:  # e.g. --stages beyond the backbone's; nothing is written
                print(f"error: {one_line(e)}", file=sys.stderr)
                return 2
            results["per_seed"].setdefault(str(size), {})[str(seed)] = r
            print(f"{size} px seed {seed}, task-id: " + "; ".join(task_ids(r, k)
                                                                  for k in args.stages), flush=True)
        runs = results["per_seed"][str(size)].values()
        for k in args.stages:
            key = f"frozen_stages={k}"
            mean = {m: float(np.mean([r[key][m] for r in runs])) for m in METRICS}
            results["mean"].setdefault(str(size), {})[key] = mean
            print(f"{size} px {key}, mean over seeds: " + ", ".join(
                f"{m} {v:.2f}" for m, v in mean.items()), flush=True)
    results["machine"] = {"python": sys.version.split()[0], "torch": torch.__version__,
                          "platform": platform.platform()}
    write_json(args.out, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
