"""`python -m synsim.crosscheck`: the full report passes, and bad arguments exit with code 2."""

import json
import subprocess
import sys

import pytest


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "synsim.crosscheck", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.brian2
def test_full_crosscheck_passes(tmp_path):
    pytest.importorskip("brian2")
    out = tmp_path / "report.json"
    proc = run_cli("--out", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report == json.loads(out.read_text())
    assert report["passed"]
    assert len(report["protocols"]) == 14  # 7 protocols x 2 discretisations
    for name, entry in report["protocols"].items():
        assert entry["events_equal"] and entry["spikes_equal"], name
        worst = max(v.get("rel_error", 0.0) for v in entry["variables"].values())
        assert worst <= 1e-9, (name, worst)
    exact = report["closed_forms"]["brian2/exact"]
    assert exact["single_release_calcium"]["peak_per_kappa_B_ms"] == pytest.approx(14.4707, abs=1e-4)
    assert exact["single_release_calcium"]["t_peak_ms"] == pytest.approx(42.4, abs=0.05)
    assert exact["rho_approach"]["rho_inf"] == pytest.approx(0.6167, abs=1e-4)
    for who in ("synsim", "brian2"):
        for check in report["closed_forms"][f"{who}/exact"].values():
            assert check["rel_error"] <= 1e-12
        zoh = report["closed_forms"][f"{who}/zoh"]["single_release_calcium"]["rel_error"]
        assert zoh == pytest.approx(2.8e-3, rel=0.06)  # first order, as documented


def test_unknown_protocol_exits_2():
    proc = run_cli("--protocol", "nonsense")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "python -m synsim.crosscheck: unknown protocol 'nonsense': choose from epsc, iv, pairing, "
        "stdp, minimal_stimulation, spiking_neuron, tetanus"]
