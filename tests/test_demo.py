"""`python -m synsim.demo --quick`: every dataset, the figure set and the summary are written."""

import json

from synsim import demo, io


def test_demo_writes_datasets_figures_and_summary(tmp_path):
    out = tmp_path / "run"
    assert demo.main([str(out), "--quick"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for name in ("epsc", "iv", "pairing", "stdp", "minimal_stimulation", "pairing_calcium",
                 "population"):
        ds = io.load(out / f"{name}.nc")
        assert ds.attrs["Conventions"].startswith("CF-")
    assert summary["pairing_ampa_final"]["-70 mV"] == {"rho0=0.3": 0.3, "rho0=0": 0.0}
    assert summary["epsc_peak_pA"]["silent -70 mV"] > -2.0  # no AMPA current at rest
    assert len(list((out / "figures").glob("*.png"))) == len(summary["figures"]) >= 7
