"""Why EASE loses when its sub-networks train (issue #11; docs/method.md §5.6), measured on
held-out TRAINING images, never on the test split.

EASE's logit for a class is, but for a share α/T of the other blocks, the cosine between the
input's feature in that class's own subspace and the class's prototype there (§5.4). So EASE
picks a task by asking every sub-network how close it puts the input to its own classes. After
the last task, for each held-out image x of task j and each sub-network i, let
s_i(x) = max over task i's classes c of cos(φ_i(x), p_{c,i}). Reported, as means over images:

- `own`: s_j(x), how close the input's own sub-network puts it to its own classes;
- `foreign`: max over i ≠ j of s_i(x), the closest any other sub-network puts it to its classes;
- `margin`: own − foreign per image, its mean and `margin_std`, its spread over the images;
  `foreign_wins`: the share of images (%) where it is negative, where EASE's task choice is
  wrong but for the α/T share;
- `task_id`: the share of images whose EASE prediction (the full reweighted logits) is a class of
  their own task, and `accuracy` (Last) of the same prediction;
- `task_id_standardised`, `accuracy_standardised`: the same when the task is chosen by s_i(x)
  standardised by the mean and std of s_i over task i's own training images, then the class by
  EASE's logits within that task: a remedy for the spread, ours, not EASE's.

Each seed runs the config twice on the same split and class order: `trained` (its adapter
settings) and `frozen` (`train.epochs=0`: every φ_i is E_0). The reading in docs/method.md §5.6,
that each trained sub-network pulls foreign inputs onto one of its own prototypes, predicts
`foreign` rising and `foreign_wins` rising with it. Writes JSON (every seed), a
table (.md) and a figure (.png).

    python benchmarks/ease_subspaces.py                  # demo, seeds 1993-1995; ~6 min on 2 cores
    python benchmarks/ease_subspaces.py --seeds 1993 --out /tmp/ease_subspaces.json
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from artsy.config import UNTRAINED, load_config  # noqa: E402
from artsy.learner import Learner  # noqa: E402
from artsy.prototypes import reweighted_cosine_logits  # noqa: E402
from artsy.runner import load_task_data  # noqa: E402
from artsy.seeds import summarize as over_seeds  # noqa: E402
from synsim.files import atomic_path, write_json, write_text  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# the 120-per-class held-out split of docs/method.md §5.6: 120 trained and 120 scored per class
SPLIT = ["data.max_per_class_train=240", "data.holdout=0.5"]
VARIANTS = {"frozen": [UNTRAINED], "trained": []}
KEYS = ("own", "foreign", "margin", "margin_std", "foreign_wins", "task_id", "accuracy",
        "task_id_standardised", "accuracy_standardised")
COSINES = ("own", "foreign", "margin", "margin_std")  # the rest are % of images


def own_task_score(feat: torch.Tensor, prototypes: torch.Tensor, class_task: torch.Tensor,
                   i: int) -> torch.Tensor:
    """s_i(x): the highest cosine between φ_i(x) (`feat`) and the prototypes, in subspace i, of
    task i's own classes. Shape (batch,)."""
    cos = F.normalize(feat, dim=1) @ F.normalize(prototypes[:, i], dim=1).T  # (B, C)
    return cos[:, class_task == i].max(dim=1).values


def subspace_scores(feats: list[torch.Tensor], prototypes: torch.Tensor,
                    class_task: torch.Tensor) -> torch.Tensor:
    """s_i(x) for every input and sub-network i. Shape (batch, n_subspaces)."""
    return torch.stack([own_task_score(f, prototypes, class_task, i)
                        for i, f in enumerate(feats)], dim=1)


def standardised_choice(scores: torch.Tensor, mean: torch.Tensor,
                        std: torch.Tensor) -> torch.Tensor:
    """The task whose sub-network scores the input highest relative to how it scores its own
    training images: argmax over i of (s_i(x) - mean_i) / std_i."""
    return ((scores - mean) / std).argmax(dim=1)


def own_and_foreign(scores: torch.Tensor, task: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per input: s of its own task's sub-network, and the highest s of any other."""
    own = scores.gather(1, task.view(-1, 1)).squeeze(1)
    others = scores.masked_fill(F.one_hot(task, scores.shape[1]).bool(),
                                float("-inf"))
    return own, others.max(dim=1).values


def variant_config(config: str, overrides: list[str], seed: Optional[int] = None):
    """`config` with gate `none` on the held-out split, the seed (class order and training), then
    `overrides`."""
    seeded = [] if seed is None else [f"run.seed={seed}", f"data.seed={seed}"]
    return load_config(config, ["synapse.gate=none", *SPLIT, *seeded, *overrides])


def measure(config: str, seed: int, overrides: list[str]) -> dict:
    """Train every task of `config` with gate `none` on the held-out split; score the held-out
    images of every class after the last task."""
    cfg = variant_config(config, overrides, seed)
    data = load_task_data(cfg)
    learner = Learner(cfg, data, progress=False)
    for task in range(data.n_tasks):
        learner.learn_task(task)
    return score(learner, data, cfg)


def own_statistics(learner: Learner, data, cfg, prototypes: torch.Tensor,
                   class_task: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of s_t over task t's own TRAINING images (the eval transform), for every
    sub-network t: what `standardised_choice` divides by. No held-out image is read."""
    means, stds = [], []
    for t in range(data.n_tasks):
        dataset = data.train_set(t, transform=data.test_transform)
        scores = []
        for x, _ in torch.utils.data.DataLoader(dataset, batch_size=cfg.run.eval_batch_size):
            with learner._autocast():
                feat = learner.net(x.to(learner.device), task=t).float().cpu()
            scores.append(own_task_score(feat, prototypes, class_task, t))
        scores = torch.cat(scores)
        means.append(scores.mean()), stds.append(scores.std())
    return torch.stack(means), torch.stack(stds)


@torch.inference_mode()
def score(learner: Learner, data, cfg) -> dict:
    """own, foreign, margin, task-id and Last over the held-out images of every class."""
    last = data.n_tasks - 1
    class_task = learner.class_task(last)
    loader = torch.utils.data.DataLoader(data.test_set(last), batch_size=cfg.run.eval_batch_size)
    prototypes = learner.bank.prototypes[:, : last + 1].float().cpu()
    learner.net.eval()
    mean, std = own_statistics(learner, data, cfg, prototypes, class_task)
    own, foreign, correct, right_task, z_correct, z_right_task = [], [], [], [], [], []
    for x, y in loader:
        x = x.to(learner.device)
        with learner._autocast():
            feats = [learner.net(x, task=i).float().cpu() for i in range(last + 1)]
        task = torch.as_tensor(data.task_of(y.numpy()))
        scores = subspace_scores(feats, prototypes, class_task)
        o, f = own_and_foreign(scores, task)
        logits = reweighted_cosine_logits(feats, learner.bank, class_task, last,
                                          cfg.prototypes.alpha, cfg.prototypes.divide_alpha_by_tasks)
        pred = logits.argmax(1).cpu()
        own.append(o), foreign.append(f)
        correct.append(pred == y), right_task.append(class_task[pred] == task)
        # the standardised choice of task, then EASE's logits within that task's classes
        chosen = standardised_choice(scores, mean, std)
        inside = class_task.view(1, -1) == chosen.view(-1, 1)
        z_pred = torch.where(inside, logits.cpu(), float("-inf")).argmax(1)
        z_correct.append(z_pred == y), z_right_task.append(chosen == task)
    own, foreign = torch.cat(own).double(), torch.cat(foreign).double()
    margin = own - foreign

    def share(hits):
        return 100 * float(torch.cat(hits).double().mean())

    return {"own": float(own.mean()), "foreign": float(foreign.mean()),
            "margin": float(margin.mean()), "margin_std": float(margin.std()),
            "foreign_wins": 100 * float((margin < 0).double().mean()),
            "task_id": share(right_task), "accuracy": share(correct),
            "task_id_standardised": share(z_right_task),
            "accuracy_standardised": share(z_correct), "images": len(own)}


def table(result: dict) -> str:
    head = "| variant | " + " | ".join(KEYS) + " |\n" + "|---" * (len(KEYS) + 1) + "|\n"
    rows = []
    for name, s in result["summary"].items():
        cells = [f"{s[k]['mean']:.4f} ± {s[k]['std']:.4f}" if k in COSINES
                 else f"{s[k]['mean']:.2f} ± {s[k]['std']:.2f}" for k in KEYS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_cos, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, keys in ((ax_cos, ("own", "foreign", "margin_std")),
                     (ax_acc, ("foreign_wins", "task_id", "accuracy"))):
        for v, (name, s) in enumerate(result["summary"].items()):
            x = np.arange(len(keys)) + 0.38 * (v - 0.5)
            ax.bar(x, [s[k]["mean"] for k in keys], width=0.36, label=name, alpha=0.7)
            for xi, k in zip(x, keys):
                seeds = list(s[k]["per_seed"].values())
                ax.plot([xi] * len(seeds), seeds, "k.", ms=4)
        ax.set_xticks(range(len(keys)), keys)
    ax_cos.set_ylabel("cosine; spread of own − foreign")
    ax_acc.set_ylabel("% of held-out images")
    ax_cos.legend(frameon=False)
    fig.suptitle("EASE: how close each sub-network puts its own and foreign inputs", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="demo")
    p.add_argument("--seeds", default="1993,1994,1995", help="comma-separated seeds")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/ease_subspaces.json")
    p.add_argument("overrides", nargs="*", help="config overrides for every run, key=value")
    args = p.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    from artsy.errors import BAD_INPUT, one_line

    try:  # every variant's config, before any run starts
        for extra in VARIANTS.values():
            variant_config(args.config, [*args.overrides, *extra])
    except BAD_INPUT as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    per_variant: dict[str, dict[int, dict]] = {name: {} for name in VARIANTS}
    for seed in seeds:
        for name, extra in VARIANTS.items():
            per_variant[name][seed] = measure(args.config, seed, [*args.overrides, *extra])
            m = per_variant[name][seed]
            print(f"seed {seed} {name:>7}: own {m['own']:.4f} foreign {m['foreign']:.4f} "
                  f"margin {m['margin']:.4f} ± {m['margin_std']:.4f} foreign wins "
                  f"{m['foreign_wins']:.2f} task-id {m['task_id']:.2f} Last {m['accuracy']:.2f} "
                  f"standardised {m['task_id_standardised']:.2f} / "
                  f"{m['accuracy_standardised']:.2f}", flush=True)
    result = {"config": args.config, "overrides": args.overrides, "split": SPLIT,
              "variants": VARIANTS, "seeds": seeds, "std": "sample std over seeds, ddof = 1",
              "evaluated_on": "held-out training images after the last task; no test image",
              "per_seed": per_variant,
              "summary": {name: over_seeds(runs, KEYS) for name, runs in per_variant.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    write_text(args.out.with_suffix(".md"), table(result))
    figure(result, args.out.with_suffix(".png"))
    print(table(result), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
