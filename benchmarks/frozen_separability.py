"""How well the frozen backbone tells the demo's tasks apart: the limit of any gate that reads h0.

Setting: the demo (EfficientNet-Lite0 ImageNet weights, CIFAR-10 JPEGs, 5 tasks of 2 classes,
120 training images per class) with `data.holdout` = 0.2, so the test split is never read. Per
seed, image size and `synapse.ngai.frozen_stages` k, one pass of the frozen network over the
training and held-out images gives h0 (no adapter is trained: h0 does not depend on them), and
two read-outs of it are scored on the held-out images, class and task-id accuracy:

- `ridge`: ngai's release scorer (artsy.gates.scorers, the config's ridge settings), fitted task
  by task on exact running statistics, as the gate fits it;
- `logistic`: a logistic regression on standardised h0 fitted on every task's images at once
  (not continual; the best C of 0.01, 0.1, 1 by held-out task-id), a reference the continual
  scorer cannot be expected to pass.

    python benchmarks/frozen_separability.py                          # about 2 minutes on 2 cores
    python benchmarks/frozen_separability.py --seeds 1993 --sizes 96 128 160 --stages 0 3
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
HOLDOUT = 0.2


def features(learner, dataset, stages: int) -> tuple[np.ndarray, np.ndarray]:
    """h0 at `stages` and the labels of a dataset, in order."""
    hs, ys = [], []
    with torch.inference_mode():
        for x, y in learner._loader(dataset, 100):
            hs.append(learner.net.frozen_feature(x, stages).float())
            ys.append(y)
    return torch.cat(hs).numpy(), torch.cat(ys).numpy()


def measure(seed: int, size: int, stages: list[int]) -> dict:
    """Class and task-id accuracy of both read-outs for every k, from one pass per split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from artsy.config import UNTRAINED, load_config
    from artsy.gates.ngai import joint_scorer
    from artsy.learner import Learner
    from artsy.prototypes import class_task_index
    from artsy.runner import load_task_data

    cfg = load_config("demo", [f"data.holdout={HOLDOUT}", f"data.seed={seed}",
                               f"run.seed={seed}", f"data.image_size={size}", "train.device=cpu",
                               UNTRAINED])
    data = load_task_data(cfg)
    learner = Learner(cfg, data, progress=False)
    deepest = max(stages)
    start = time.perf_counter()
    train = [features(learner, data.train_set(t, transform=data.test_transform), deepest)
             for t in range(data.n_tasks)]
    val_h0, val_y = features(learner, data.test_set(data.n_tasks - 1), deepest)
    seconds = time.perf_counter() - start
    task_of = class_task_index(data.tasks).numpy()
    out = {"feature_pass_s": seconds}
    for k in stages:
        width = learner.net.frozen_feature_dim(k)
        scorer = joint_scorer(cfg.synapse, width)
        for t, (h0, y) in enumerate(train):
            scorer.add(t, torch.from_numpy(h0[:, :width]), torch.from_numpy(y))
        vh0 = torch.from_numpy(val_h0[:, :width])
        pred = scorer.class_scores(vh0).argmax(1).numpy()
        pred_task = scorer.task_probability(vh0, data.n_tasks).argmax(1).numpy()
        row = {"width": width, "ridge_class_accuracy": 100 * float((pred == val_y).mean()),
               "ridge_task_id_accuracy": 100 * float((pred_task == task_of[val_y]).mean())}
        x = np.concatenate([h[:, :width] for h, _ in train])
        y = np.concatenate([y for _, y in train])
        scale = StandardScaler().fit(x)
        best = None
        for c in (0.01, 0.1, 1.0):
            model = LogisticRegression(C=c, max_iter=3000).fit(scale.transform(x), y)
            p = model.predict(scale.transform(val_h0[:, :width]))
            scores = (100 * float((p == val_y).mean()),
                      100 * float((task_of[p] == task_of[val_y]).mean()))
            if best is None or scores[1] > best[2]:
                best = (c, *scores)
        row.update(logistic_C=best[0], logistic_class_accuracy=best[1],
                   logistic_task_id_accuracy=best[2])
        out[f"frozen_stages={k}"] = row
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1993, 1994, 1995])
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 128])
    p.add_argument("--stages", type=int, nargs="+", default=[0, 3])
    p.add_argument("--out", type=Path,
                   default=REPO / "benchmarks/results/frozen_separability.json")
    args = p.parse_args(argv)
    from synsim.files import write_json

    results: dict = {"setting": {"config": "demo", "holdout": HOLDOUT, "seeds": args.seeds,
                                 "evaluated_on": "held-out training images; no test image"},
                     "per_seed": {}, "mean": {}}
    for size in args.sizes:
        for seed in args.seeds:
            r = measure(seed, size, args.stages)
            results["per_seed"].setdefault(str(size), {})[str(seed)] = r
            print(f"{size} px seed {seed}: " + "; ".join(
                f"k={k} ridge task-id {r[f'frozen_stages={k}']['ridge_task_id_accuracy']:.2f} "
                f"logistic {r[f'frozen_stages={k}']['logistic_task_id_accuracy']:.2f}"
                for k in args.stages), flush=True)
        runs = results["per_seed"][str(size)].values()
        for k in args.stages:
            key = f"frozen_stages={k}"
            mean = {m: float(np.mean([r[key][m] for r in runs]))
                    for m in ("ridge_class_accuracy", "ridge_task_id_accuracy",
                              "logistic_class_accuracy", "logistic_task_id_accuracy")}
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
