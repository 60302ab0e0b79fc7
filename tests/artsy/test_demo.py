"""`make demo` (python -m artsy.demo) in its quick form: receptor experiments, learner runs of both
gates on real images with real ImageNet weights, run figures, and the closing table."""

import json
from pathlib import Path

import pytest

from artsy import demo
from synsim import io

ARCHIVE = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-jpg.tar.gz"


@pytest.mark.slow
@pytest.mark.skipif(not ARCHIVE.exists(), reason=f"{ARCHIVE} is absent (the offline CIFAR-10 "
                    "images ship beside the repository, not in it)")
def test_quick_demo_writes_everything(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main([str(out), "--quick"]) == 0
    summary = json.loads((out / "receptors" / "summary.json").read_text())
    for name in ("epsc", "iv", "pairing", "stdp", "minimal_stimulation", "pairing_calcium",
                 "population"):
        assert io.load(out / "receptors" / f"{name}.nc").attrs["Conventions"].startswith("CF-")
    assert summary["pairing_ampa_final"]["-70 mV"] == {"rho0=0.3": 0.3, "rho0=0": 0.0}
    assert summary["epsc_peak_pA"]["silent -70 mV"] > -2.0  # no AMPA current at rest
    assert len(list((out / "receptors" / "figures").glob("*.png"))) == len(summary["figures"]) >= 7
    record = json.loads((out / "demo.json").read_text())
    assert set(record["runs"]) == {"ngai", "none", "ngai-frozen"}
    for run_dir in record["runs"].values():
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        assert metrics["tasks_done"] == 5 and metrics["backbone"].startswith("tf_efficientnet_lite0")
        assert (Path(run_dir) / "synapses.nc").exists()
    assert {"accuracy", "gate_open_rate_ngai", "synapse_trajectories_ngai"} <= set(record["figures"])
    printed = capsys.readouterr().out
    assert "Avg" in printed and "Last" in printed and printed.rstrip().splitlines()[-1].startswith("ngai-frozen")
