"""Which signals drive the ngai gate: chosen on held-out TRAINING images, never on the test split.

Setting: the demo (EfficientNet-Lite0 ImageNet weights, CIFAR-10 JPEGs at 96 px, 5 tasks of 2
classes, 120 training images per class) with `data.holdout` = 0.2: each class keeps a seeded 80 %
of its training images for training and the other 20 % is the evaluation set; the test split is
not read. A seed sets the class order, the held-out images and the training randomness. Per seed:

1. `extract`: one learner run (the demo config, every sub-network trained as in a real run)
   whose gate inputs are recorded: after each task its training features h0 = E_0(x) (with the
   pooled output of every backbone stage, from the same pass) and E_i(x), labels and the prototype
   bank; at the end the same of the held-out images. Cached to
   an .npz (`--cache`; about 2 minutes per seed on 2 cores), so each variant below costs
   seconds, not a learner run.
2. `replay`: for each variant (a list of `synapse.*` overrides), a fresh gate from the learner's
   registry is given the recorded inputs task by task exactly as the learner gives them:
   add_task, fit (training, calibration), consolidate (the rule with carried state; the
   synapse-log rows must hold every input signal), then decide on the held-out images of every
   seen class (the rule from rest, then the fallback); the logits are EASE's reweighted cosine
   logits over the open blocks, as in Learner.evaluate. Reported: Avg / Last accuracy, final and
   mean gate accuracy (the true task's gate open), open gates per input, task-id accuracy, and
   the forward passes of the evaluations (PTM + sub-networks).

Selection, in three stages: (1) the release pre_t, every candidate with today's depolarisation;
(2) the depolarisation and lateral inhibition on top of the stage-1 winner; (3) the frozen
feature h0 the gate reads (`synapse.ngai.frozen_stages`: E_0(x) alone or followed by the pooled
outputs of the backbone's last k stages, recorded once per seed) on top of both. The winner
has the highest mean held-out Avg over the seeds; a signal that costs more (own_*: every
sub-network runs for every input; inhibition: one more mechanism) must beat the cheap h0 signal by
more than MARGIN points. When the winner is not what the demo config runs, both are replayed
on the same inputs and compared seed by seed (`chosen_vs_demo`); its `verdict` says whether the
demo's values should change: only for a mean Avg gain above INCUMBENT_MARGIN with no loss of
mean Last. Beside the gates: what the
frozen features separate by themselves on the same images (a raw argmax, no gate: nearest class
mean and the chosen scorer, on E_0(x) and on the chosen h0); the gates' final prediction also
reads the open sub-networks, so it can pass it by a little.

    python benchmarks/gate_signals.py                     # seeds 1993-1997; about 10 minutes on 2 cores
    python benchmarks/gate_signals.py --seeds 1993 --out /tmp/gate_signals.json
    python benchmarks/gate_signals.py --list
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synsim.files import write_text

REPO = Path(__file__).resolve().parents[1]
HOLDOUT = 0.2

MARGIN = 0.5  # Avg points a costlier signal (own_*, inhibition) must gain over the h0 one
# Mean Avg points a pick must gain over the demo config's values, with no loss of mean Last,
# before those values (and with them every recorded ngai row) change: a tie keeps the incumbent.
INCUMBENT_MARGIN = 0.5

# Stage 1, the release pre_t (depolarisation: prototype_share at tau = 0.1), name -> overrides of
# synapse.*; the first is today's ngai.
RELEASE: dict[str, list[str]] = {"mlp": ["ngai.pre=mlp"]}
RELEASE.update({f"lda s={s} T={t}": ["ngai.pre=lda", f"ngai.lda_shrinkage={s}",
                                     f"ngai.lda_temperature={t}"]
                for s in (0.3, 0.5, 0.7, 0.9) for t in (1, 3, 10, 30)})
RELEASE.update({f"ridge lam={s} T={t}": ["ngai.pre=ridge", f"ngai.ridge_lambda={s}",
                                       f"ngai.ridge_temperature={t}"]
                for s in (0.5, 1, 2, 4) for t in (0.02, 0.05, 0.1, 0.2)})
RELEASE["ridge M=5000 lam=1 T=0.1"] = ["ngai.pre=ridge", "ngai.ridge_lambda=1",
                                     "ngai.ridge_temperature=0.1", "ngai.random_features=5000"]
# Stage 2, the depolarisation on top of the stage-1 winner; "inhibition" is lateral inhibition
# between the synapses (InhibitedNgai below), tried before deciding whether the gate needs it.
DEPOLARISATION: dict[str, list[str]] = {
    **{f"prototype_share tau={t}": ["ngai.depolarisation=prototype_share",
                                    f"ngai.prototype_temperature={t}"] for t in (0.03, 0.1, 0.3)},
    **{k: [f"ngai.depolarisation={k}", "ngai.prototype_temperature=0.1"]
       for k in ("own_prototype", "own_entropy", "own_similarity")},
    "inhibition": ["ngai.depolarisation=prototype_share", "ngai.prototype_temperature=0.1"],
}
CHEAP = ("prototype_share tau=0.03", "prototype_share tau=0.1", "prototype_share tau=0.3")
# Stage 3, the frozen feature h0 the gate reads (synapse.ngai.frozen_stages): E_0(x) alone, or
# followed by the pooled outputs of the backbone's last k stages (the same pass; no margin)
FROZEN: dict[str, list[str]] = {f"frozen_stages={k}": [f"ngai.frozen_stages={k}"]
                                 for k in range(5)}


# ----------------------------------------------------------------------------------------------
# 1. One learner run on the held-out split, its gate inputs recorded


def features_key(cfg) -> str:
    """A short hash of the config without the gate's part: what the recorded features depend
    on."""
    from artsy.config import to_dict

    d = to_dict(cfg)
    d.pop("synapse")
    d["run"] = {"seed": d["run"]["seed"]}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:10]


def extract(seed: int, cache: Path, overrides: list[str]) -> Path:
    """Run the demo learner on the held-out split; store what its gate saw. Cached under a hash
    of everything but the gate's config, so a changed demo config is extracted anew."""
    from artsy.config import load_config, to_dict
    from artsy.learner import Learner
    from artsy.runner import load_task_data

    cfg = load_config("demo", [f"data.holdout={HOLDOUT}", f"data.seed={seed}",
                               f"run.seed={seed}", "train.device=cpu", *overrides,
                               "synapse.ngai.frozen_stages=0"])  # every stage is recorded apart
    path = cache / f"demo-holdout{HOLDOUT:g}-seed{seed}-{features_key(cfg)}-v2.npz"
    if path.exists():
        return path
    data = load_task_data(cfg)
    learner = Learner(cfg, data, progress=False)
    gates, out = learner.gates, {}
    add_task, consolidate = gates.add_task, gates.consolidate
    n_stages, stage_rows = len(learner.net.stage_widths()), []

    def frozen_feature(x):  # the learner's h0 (frozen_stages 0); every stage's output kept apart
        wide = learner.net.frozen_feature(x, n_stages)
        stage_rows.append(wide[:, learner.dim:].float().cpu())
        return wide[:, : learner.dim]

    def record_add(task, h0, labels, own=None):
        out[f"t{task}_h0"], out[f"t{task}_y"] = h0.numpy(), labels.numpy()
        out[f"t{task}_stages"] = torch.cat(stage_rows).numpy()
        stage_rows.clear()
        return add_task(task, h0, labels, own)

    def record_consolidate(task, inputs, seed_):
        for i, f in enumerate(inputs.own):
            out[f"t{task}_own{i}"] = f.numpy()
        for k, v in inputs.bank.state_dict().items():
            out[f"t{task}_bank_{k}"] = v.cpu().numpy()
        return consolidate(task, inputs, seed_)

    gates.add_task, gates.consolidate = record_add, record_consolidate
    learner.frozen_feature = frozen_feature
    start = time.perf_counter()
    for t in range(data.n_tasks):
        learner.learn_task(t)
    last = data.n_tasks - 1
    loader = learner._loader(data.test_set(last), cfg.run.eval_batch_size)
    h0s, ys, owns = [], [], [[] for _ in range(data.n_tasks)]
    with torch.inference_mode():
        for x, y in loader:
            h0s.append(learner.net.frozen_feature(x, n_stages).float())
            for i in range(data.n_tasks):
                owns[i].append(learner.net(x, task=i).float())
            ys.append(y)
    h0 = torch.cat(h0s).numpy()
    out["val_h0"], out["val_stages"] = h0[:, : learner.dim], h0[:, learner.dim:]
    out["val_y"] = torch.cat(ys).numpy()
    out["stage_widths"] = np.asarray(learner.net.stage_widths())
    for i, o in enumerate(owns):
        out[f"val_own{i}"] = torch.cat(o).numpy()
    out["tasks"] = np.asarray(data.tasks)
    out["config"] = np.asarray(json.dumps(to_dict(cfg), default=str))
    out["extract_time_s"] = np.asarray(time.perf_counter() - start)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **out)
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------------------------
# 2. Replaying the recorded inputs through a gate


class Recorded:
    """The recorded gate inputs of one seed."""

    def __init__(self, path: Path) -> None:
        z = np.load(path)
        self.z = {k: z[k] for k in z.files}
        self.tasks = [list(map(int, t)) for t in self.z["tasks"]]
        self.n_tasks = len(self.tasks)

    def t(self, key: str) -> torch.Tensor:
        return torch.from_numpy(self.z[key])

    def h0(self, prefix: str, stages: int) -> torch.Tensor:
        """h0 as the learner gives it at ngai.frozen_stages = `stages` (prefix "t3", "val")."""
        if not stages:
            return self.t(f"{prefix}_h0")
        width = int(self.z["stage_widths"][-stages:].sum())
        return torch.cat([self.t(f"{prefix}_h0"), self.t(f"{prefix}_stages")[:, -width:]], 1)

    def bank(self, task: int, stages: int = 0):
        """The learner's prototype bank after task `task`; its h0 prototypes (the class means
        of h0 that prototype_share reads) are those of h0 at `stages`."""
        from artsy.prototypes import PrototypeBank, class_means

        bank = PrototypeBank(self.z["val_h0"].shape[1])
        bank.load_state_dict({k: self.t(f"t{task}_bank_{k}")
                              for k in ("prototypes", "real", "ptm_prototypes")})
        if stages:
            means = [class_means(self.h0(f"t{t}", stages), self.t(f"t{t}_y"), self.tasks[t])
                     for t in range(task + 1)]
            bank.ptm_prototypes = means[0].new_zeros(bank.n_classes, means[0].shape[1])
            for classes, m in zip(self.tasks, means):
                bank.ptm_prototypes[classes] = m
        return bank


def inhibited_ngai():
    """The ngai gate with divisive lateral inhibition between its synapses (a candidate that is
    not in artsy: it did not help on held-out data). Each release is scaled by its synapse's
    drive over the strongest drive, pre_t * d_t / max_s d_s, d = gain * pre * B, before the rule;
    the calibration sees the same inhibited release."""
    from artsy.gates.base import GateDecision
    from artsy.gates.depolarisation import prototype_share
    from artsy.gates.ngai import NgaiGate

    class InhibitedNgai(NgaiGate):
        def inhibit(self, pre, dep):
            drive = pre * self.rule.mg_block(dep) * torch.as_tensor(self.gain[: pre.shape[1]])
            return pre * drive / drive.max(dim=1, keepdim=True).values.clamp_min(1e-12)

        def _decide(self, n_seen, inputs):
            dep = self.depolarisation(n_seen, inputs).double()
            pre = self.inhibit(self.pre(inputs.h0, n_seen).double(), dep)
            gain = torch.as_tensor(self.gain[:n_seen])
            raw = self.rule.gate(pre, dep, gain)
            return GateDecision(open=raw, raw=raw, score=pre.float(), depolarisation=dep.float(),
                                mg_block=self.rule.mg_block(dep).float())

        def _calibrate(self, task, i, h0, bank, class_task, i_own=None):
            record = super()._calibrate(task, i, h0, bank, class_task, i_own)
            temp, target = self.cfg.ngai.prototype_temperature, self.cfg.ngai.target_open_rate
            dep = prototype_share(h0, bank.ptm_prototypes, class_task, task + 1, temp).double()
            pre = self.pre(h0, task + 1).double()
            for _ in range(3):  # the inhibition depends on this synapse's own gain
                inhibited = self.inhibit(pre, dep)[:, i].numpy()
                self.gain[i] = self.rule.gain_for_open_rate(inhibited, dep[:, i].numpy(), target)
            record["K_eff"] = self.K * float(self.gain[i])
            return record

    return InhibitedNgai


def replay(rec: Recorded, overrides: list[str], seed: int, inhibition: bool = False) -> dict:
    """One variant through the learner's own gate (fit, calibrate, consolidate, decide)."""
    from artsy.config import Config, apply_overrides
    from artsy.gates import GateInputs, make_gates
    from artsy.learner import task_seed
    from artsy.prototypes import class_task_index, reweighted_cosine_logits
    from artsy.synapse_log import LOG_VARIABLES

    cfg = apply_overrides(Config(), [f"synapse.{o}" for o in overrides])
    stages = cfg.synapse.ngai.frozen_stages
    val_h0 = rec.h0("val", stages)
    dim = val_h0.shape[1]
    gates = make_gates(cfg.synapse, dim, rec.n_tasks)
    if inhibition:
        gates = inhibited_ngai()(cfg.synapse, dim, rec.n_tasks)
    cost = gates.cost(cfg.synapse)
    val_y = rec.t("val_y")
    task_of = class_task_index(rec.tasks)
    rows = []
    for t in range(rec.n_tasks):
        h0, y = rec.h0(f"t{t}", stages), rec.t(f"t{t}_y")
        own = [rec.t(f"t{t}_own{i}") for i in range(t + 1)]
        bank, class_task = rec.bank(t, stages), class_task_index(rec.tasks[: t + 1])
        gates.add_task(t, h0, y, own=own[t])
        gates.fit(t, bank, class_task, task_seed(seed, t, "synapses"))
        log = gates.consolidate(t, GateInputs(h0=h0, own=own, bank=bank, class_task=class_task,
                                              batch=len(y)), task_seed(seed, t, "consolidate"))
        if gates.name == "ngai":  # the synapse log holds every input signal of the seen synapses
            for name in LOG_VARIABLES:
                seen = np.asarray(log[name][:, : t + 1], dtype=float)
                assert np.isfinite(seen).all(), f"log variable {name} not filled"
        seen = val_y < len(class_task)
        vy = val_y[seen]
        vtask = task_of[vy]
        vown = [rec.t(f"val_own{i}")[seen] for i in range(t + 1)]
        d = gates.decide(t + 1, GateInputs(h0=val_h0[seen], task_ids=vtask, own=vown,
                                           bank=bank, class_task=class_task, batch=len(vy)))
        logits = reweighted_cosine_logits(vown, bank, class_task, t, open_mask=d.open)
        pred = logits.argmax(1)
        lo, hi = cost.eval_passes(t + 1, len(vy))
        rows.append({
            "task": t, "n": int(len(vy)),
            "accuracy": 100 * float((pred == vy).double().mean()),
            "gate_accuracy": 100 * float(d.open[torch.arange(len(vy)), vtask].double().mean()),
            "raw_gate_accuracy": 100 * float(d.raw[torch.arange(len(vy)), vtask]
                                             .double().mean()),
            "mean_open_gates": float(d.open.sum(1).double().mean()),
            "task_id_accuracy": 100 * float((class_task[pred] == vtask).double().mean()),
            "eval_passes": int(len(vy) + (int(d.open.sum()) if not cost.needs_own else hi)),
        })
    acc = [r["accuracy"] for r in rows]
    return {"avg": float(np.mean(acc)), "last": acc[-1],
            "final_gate_accuracy": rows[-1]["gate_accuracy"],
            "mean_gate_accuracy": float(np.mean([r["gate_accuracy"] for r in rows])),
            "final_open_gates": rows[-1]["mean_open_gates"],
            "final_task_id_accuracy": rows[-1]["task_id_accuracy"],
            "eval_passes": int(sum(r["eval_passes"] for r in rows)), "tasks": rows}


def frozen_ceiling(rec: Recorded, overrides: list[str], tag: str = "") -> dict:
    """What frozen features separate on the held-out images after the last task, by a raw
    argmax (no gate): nearest class mean (cosine), and the joint scorer of `overrides` (whose
    frozen_stages says which h0; `tag` prefixes the keys)."""
    from artsy.config import Config, apply_overrides
    from artsy.gates.ngai import joint_scorer
    from artsy.prototypes import class_task_index

    cfg = apply_overrides(Config(), [f"synapse.{o}" for o in overrides]).synapse
    stages = cfg.ngai.frozen_stages
    task_of = class_task_index(rec.tasks)
    h0 = torch.cat([rec.h0(f"t{t}", stages) for t in range(rec.n_tasks)])
    y = torch.cat([rec.t(f"t{t}_y") for t in range(rec.n_tasks)])
    vh0, vy = rec.h0("val", stages), rec.t("val_y")
    means = torch.stack([h0[y == c].mean(0) for c in range(len(task_of))])
    out = {}

    def score(name, pred_class, pred_task):
        name = f"{tag} {name}" if tag else name
        out[f"{name}_class_accuracy"] = 100 * float((pred_class == vy).double().mean())
        out[f"{name}_task_id_accuracy"] = 100 * float((pred_task == task_of[vy]).double().mean())

    ncm = (F.normalize(vh0, dim=1) @ F.normalize(means, dim=1).T).argmax(1)
    score("ncm", ncm, task_of[ncm])
    if cfg.ngai.pre != "mlp":
        scorer = joint_scorer(cfg, h0.shape[1])
        for t in range(rec.n_tasks):
            scorer.add(t, rec.h0(f"t{t}", stages), rec.t(f"t{t}_y"))
        pred = scorer.class_scores(vh0).argmax(1)
        score(cfg.ngai.pre, pred, scorer.task_probability(vh0, rec.n_tasks).argmax(1))
    return out


# ----------------------------------------------------------------------------------------------
# Selection

KEYS = ("avg", "last", "final_gate_accuracy", "mean_gate_accuracy", "final_open_gates",
        "final_task_id_accuracy", "eval_passes")


def demo_signals(demo) -> list[str]:
    """The demo config's values of every signal the stages choose, as overrides of synapse.*."""
    ngai = demo.synapse.ngai
    return [f"ngai.pre={ngai.pre}", f"ngai.ridge_lambda={ngai.ridge_lambda:g}",
            f"ngai.ridge_temperature={ngai.ridge_temperature:g}",
            f"ngai.lda_shrinkage={ngai.lda_shrinkage:g}",
            f"ngai.lda_temperature={ngai.lda_temperature:g}",
            f"ngai.random_features={ngai.random_features}",
            f"ngai.depolarisation={ngai.depolarisation}",
            f"ngai.prototype_temperature={ngai.prototype_temperature:g}",
            f"ngai.frozen_stages={ngai.frozen_stages}"]


def run_stage(recs: dict, variants: dict[str, tuple[list[str], bool]], log: list) -> dict:
    """Every variant on every seed; per seed and the mean (std over seeds)."""
    per_seed, mean = {}, {}
    for name, (overrides, inhibition) in variants.items():
        runs = []
        for seed, rec in recs.items():
            start = time.perf_counter()
            r = replay(rec, overrides, seed, inhibition)
            r["replay_time_s"] = time.perf_counter() - start
            per_seed.setdefault(seed, {})[name] = r
            runs.append(r)
        m = {k: float(np.mean([r[k] for r in runs])) for k in KEYS}
        m.update({f"{k}_std": float(np.std([r[k] for r in runs], ddof=1))
                  for k in ("avg", "last") if len(runs) > 1})
        mean[name] = {"overrides": overrides, "inhibition": inhibition, **m}
        line = (f"{name:28s} avg {m['avg']:6.2f} last {m['last']:6.2f} "
                f"gate {m['final_gate_accuracy']:6.2f} open {m['final_open_gates']:4.2f} "
                f"task-id {m['final_task_id_accuracy']:6.2f} passes {m['eval_passes']:7.0f}")
        print(line, flush=True)
        log.append(line)
    return {"per_seed": per_seed, "mean": mean}


def best(mean: dict, names) -> str:
    """The highest mean held-out Avg; ties go to the higher Last."""
    return max(names, key=lambda n: (round(mean[n]["avg"], 6), round(mean[n]["last"], 6)))


def verdict(per_seed: dict) -> dict:
    """Whether the pick should replace the demo config's values, from the side-by-side rows
    ({seed: {"chosen": {"avg", "last"}, "demo": {...}}}): only if its mean Avg is more than
    INCUMBENT_MARGIN points higher and its mean Last not lower."""
    rows = list(per_seed.values())
    gain = {k: float(np.mean([r["chosen"][k] - r["demo"][k] for r in rows]))
            for k in ("avg", "last")}
    change = gain["avg"] > INCUMBENT_MARGIN and gain["last"] >= 0
    return {"avg_gain": gain["avg"], "last_gain": gain["last"], "margin": INCUMBENT_MARGIN,
            "change_the_demo": change}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1993, 1994, 1995, 1996, 1997])
    p.add_argument("--cache", type=Path, default=Path("/tmp/gate_signals_cache"))
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/gate_signals.json")
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    args = p.parse_args(argv)
    if args.list:
        for stage, variants in (("release", RELEASE), ("depolarisation", DEPOLARISATION),
                                ("frozen feature", FROZEN)):
            for name, o in variants.items():
                print(f"{stage:15s} {name:28s} {' '.join(o)}")
        return 0
    torch.set_num_threads(1)
    recs = {seed: Recorded(extract(seed, args.cache, [])) for seed in args.seeds}
    log: list[str] = []
    print("stage 1: the release pre_t (depolarisation prototype_share, tau 0.1)")
    stage1 = run_stage(recs, {n: (o, False) for n, o in RELEASE.items()}, log)
    pre = best(stage1["mean"], RELEASE)
    print(f"-> {pre}\nstage 2: the depolarisation with pre = {pre}")
    stage2 = run_stage(recs, {n: (RELEASE[pre] + o, n == "inhibition")
                              for n, o in DEPOLARISATION.items()}, log)
    cheap = best(stage2["mean"], CHEAP)
    dear = best(stage2["mean"], [n for n in DEPOLARISATION if n not in CHEAP])
    gain = stage2["mean"][dear]["avg"] - stage2["mean"][cheap]["avg"]
    dep = dear if gain > MARGIN else cheap
    chosen = RELEASE[pre] + DEPOLARISATION[dep]
    print(f"-> {dep} (best costlier signal {dear}: {gain:+.2f} Avg, needs > {MARGIN})")
    print(f"stage 3: the frozen feature h0 with {pre}, {dep}")
    stage3 = run_stage(recs, {n: (chosen + o, dep == "inhibition") for n, o in FROZEN.items()},
                       log)
    frozen = best(stage3["mean"], FROZEN)
    chosen = chosen + FROZEN[frozen]
    print(f"-> {frozen}")
    ceiling = {seed: {**frozen_ceiling(rec, RELEASE[pre]),
                      **frozen_ceiling(rec, RELEASE[pre] + FROZEN[frozen], frozen)}
               for seed, rec in recs.items()}
    ceiling["mean"] = {k: float(np.mean([ceiling[s][k] for s in args.seeds]))
                       for k in ceiling[args.seeds[0]]}
    print("the frozen features alone (raw argmax, no gate): " + ", ".join(
        f"{k} {v:.2f}" for k, v in ceiling["mean"].items()))
    results = {
        "setting": {"config": "demo", "holdout": HOLDOUT, "seeds": args.seeds,
                    # the demo config as extracted: E_0(x) alone, every stage recorded apart
                    "extraction_config": json.loads(str(recs[args.seeds[0]].z["config"])),
                    "evaluated_on": "held-out training images (data.holdout); no test image",
                    "rule": f"highest mean Avg; own_* and inhibition must gain > {MARGIN}; the "
                            f"demo's values change only for > {INCUMBENT_MARGIN} Avg and no "
                            "loss of Last"},
        "chosen": {"release": pre, "depolarisation": dep, "frozen_feature": frozen,
                   "overrides": chosen, "inhibition": dep == "inhibition"},
        "stage1_release": stage1, "stage2_depolarisation": stage2,
        "stage3_frozen_feature": stage3, "ceiling": ceiling,
        "machine": {"python": sys.version.split()[0], "torch": torch.__version__,
                    "platform": platform.platform()}}
    for stage in (stage1, stage2, stage3):  # per-task rows: today's and the chosen variants
        for runs in stage["per_seed"].values():
            for name, r in runs.items():
                if name not in ("mlp", pre, dep, frozen):
                    r.pop("tasks")
    from artsy.config import apply_overrides, load_config

    demo = load_config("demo")  # the setting measured here: its config holds the chosen values
    defaults = apply_overrides(demo, [f"synapse.{o}" for o in chosen]) == demo
    results["chosen"]["is_the_default"] = defaults
    if not defaults:  # how far the pick is from what the demo config runs, on the same inputs
        current = demo_signals(demo)
        results["chosen_vs_demo"] = {"demo": current, "per_seed": {
            seed: {name: {k: r[k] for k in ("avg", "last")}
                   for name, r in (("chosen", stage3["per_seed"][seed][frozen]),
                                   ("demo", replay(rec, current, seed)))}
            for seed, rec in recs.items()}}
        for name in ("chosen", "demo"):
            rows = [r[name] for r in results["chosen_vs_demo"]["per_seed"].values()]
            print(f"{name:>6} ({' '.join(current if name == 'demo' else chosen)}): Avg "
                  f"{np.mean([r['avg'] for r in rows]):.2f} Last "
                  f"{np.mean([r['last'] for r in rows]):.2f}")
        v = results["chosen_vs_demo"]["verdict"] = verdict(
            results["chosen_vs_demo"]["per_seed"])
        print(f"-> {'change' if v['change_the_demo'] else 'keep'} the demo's values: the pick "
              f"gains {v['avg_gain']:+.2f} Avg and {v['last_gain']:+.2f} Last (a change needs "
              f"> {INCUMBENT_MARGIN} Avg and no loss of Last)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps(results, indent=1) + "\n")  # atomically
    print(f"chosen: {' '.join(chosen)} ({'the' if defaults else 'NOT the'} demo config's)\n"
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
