"""benchmarks/artsy_compare.py: gates x seeds in their own processes, mean ± std per row."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from artsy.config import load_config
from artsy.metrics import without_timings

REPO = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("artsy_compare", REPO / "benchmarks/artsy_compare.py")
compare = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(compare)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """2 gates x 2 seeds on tiny-synthetic, forked from one server (about 20 s on 2 cores)."""
    out = tmp_path_factory.mktemp("bench") / "compare.json"
    assert compare.main(["--quick", "--gates", "none,ngai", "--seeds", "7,8", "--out",
                         str(out)]) == 0
    return out, json.loads(out.read_text())


def test_json_holds_every_seed_and_their_mean_and_sample_std(quick):
    out, result = quick
    assert result["seeds"] == [7, 8] and result["processes"] == "forked"
    assert [r["name"] for r in result["rows"]] == ["none", "ngai"]
    for row in result["rows"]:
        assert row["seeds"] == [7, 8] and set(row["per_seed"]) == {"7", "8"}
        for key in compare.NUMBERS:
            values = [row["per_seed"][s][key] for s in ("7", "8")]
            if any(v is None for v in values):  # not measured: no mean either
                assert key in ("feature_cosine", "peak_cuda_mib") and row["mean"][key] is None
                continue
            assert row["mean"][key] == pytest.approx(np.mean(values)), key
            assert row["std"][key] == pytest.approx(np.std(values, ddof=1)), key
        curves = [row["per_seed"][s]["curve"] for s in ("7", "8")]
        np.testing.assert_allclose(row["curve_mean"], np.mean(curves, axis=0))
        np.testing.assert_allclose(row["curve_std"], np.std(curves, axis=0, ddof=1))
        assert row["mean"]["peak_rss_mib"] > 50 and row["mean"]["wall_time_s"] > 0
    none, ngai = result["rows"]
    assert none["mean"]["subnetwork_passes_per_image"] == none["mean"][
        "ease_subnetwork_passes_per_image"]  # EASE runs every seen sub-network
    assert 0 < ngai["mean"]["feature_cosine"] <= 1


def test_each_seed_is_its_own_run_with_that_seed(quick):
    _, result = quick
    orders = set()
    for s, numbers in result["rows"][1]["per_seed"].items():
        run_dir = Path(numbers["run_dir"])
        cfg = load_config(run_dir / "config.yaml")
        assert (cfg.run.seed, cfg.data.seed, cfg.synapse.gate) == (int(s), int(s), "ngai")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["avg"] == numbers["avg"] and metrics["curve"] == numbers["curve"]
        orders.add(tuple(metrics["class_order"]))
    assert len(orders) == 2  # the seed draws the class order


def test_table_and_figure_beside_the_json(quick):
    out, result = quick
    table = out.with_suffix(".md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + 2 and lines[0].startswith("| row | seeds | Avg")
    avg = result["rows"][1]
    assert f"| ngai | 2 | {avg['mean']['avg']:.2f} ± {avg['std']['avg']:.2f} |" in table
    png = out.with_name(f"{out.stem}-seeds.png")
    assert result["figure"] == str(png) and png.read_bytes()[:4] == b"\x89PNG"


def test_bad_gate_and_bad_config_are_refused_before_any_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare.main(["--gates", "nope", "--no-fork", "--out", str(tmp_path / "x.json")])
    assert compare.main(["--quick", "--no-fork", "train.epochs=-1", "--out",
                         str(tmp_path / "y.json")]) == 2
    assert "train.epochs" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_fresh_and_forked_processes_give_the_same_numbers(quick, tmp_path):
    """A fresh interpreter per run (the default outside --quick) learns exactly what the forked
    child learned; only its process measurements (imports included) differ."""
    out = tmp_path / "fresh.json"
    assert compare.main(["--quick", "--no-fork", "--gates", "ngai", "--seeds", "8", "--frozen",
                         "--out", str(out)]) == 0
    fresh = json.loads(out.read_text())
    assert fresh["processes"] == "fresh"
    assert [r["name"] for r in fresh["rows"]] == ["ngai", "ngai frozen"]
    assert fresh["rows"][1]["mean"]["feature_cosine"] == pytest.approx(1.0, abs=1e-9)

    def learned(numbers):
        metrics = json.loads((Path(numbers["run_dir"]) / "metrics.json").read_text())
        return {k: v for k, v in without_timings(metrics).items() if k != "name"}

    assert learned(fresh["rows"][0]["per_seed"]["8"]) == learned(
        quick[1]["rows"][1]["per_seed"]["8"])


def test_rows_gates_frozen_variants_then_baselines():
    rows = compare.row_specs(["ngai", "none"], frozen=["ngai", "none"],
                             baselines=["simplecil", "ranpac"])
    assert [r["name"] for r in rows] == ["ngai", "ngai frozen", "none", "none frozen",
                                         "simplecil", "ranpac"]
    assert rows[1]["overrides"] == ["synapse.gate=ngai", "train.epochs=0"]
    assert rows[-1]["overrides"] == ["method=ranpac"] and rows[-1]["gate"] is None
    for row in rows:  # every row is a valid config
        load_config("tiny-synthetic", row["overrides"])
