"""`python -m synsim.demo [OUT_DIR]`: the classic receptor experiments, as netCDF, figures, summary.

Runs the CLASSIC experiments of synsim.experiments (the dual-holding-potential EPSCs, the NMDA I-V
curve, the Artola-Singer pairing table, the spike-timing window, minimal stimulation with the
failure-rate estimate, calcium during pairing and a spiking population); writes one dataset per
experiment, the synsim figure set (figures/) and `summary.json` into OUT_DIR
(default runs/synsim-<timestamp>/) and prints the numbers a reader checks against the literature.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from . import experiments, figures, files
from .errors import BAD_INPUT, report


def run_receptor_experiments(out_dir: Path, quick: bool = False) -> dict:
    """Run every CLASSIC experiment (short trains when `quick`), save each dataset, draw the
    figure set; write and return the summary dict."""
    out_dir.mkdir(parents=True, exist_ok=True)
    datasets, timings = {}, {}
    for name, experiment in experiments.CLASSIC.items():
        t0 = time.perf_counter()
        datasets[name] = experiment(quick=quick)
        experiments.save(datasets[name], out_dir, name)
        timings[name] = time.perf_counter() - t0
    summary = summarise(datasets)
    t0 = time.perf_counter()
    written = figures.make_all(out_dir / "figures", datasets, experiments.brian2_pair())
    summary["figures"] = sorted(written)
    timings["figures"] = time.perf_counter() - t0
    summary["wall_time_s"] = {k: round(v, 2) for k, v in timings.items()}
    files.write_json(out_dir / "summary.json", summary)
    return summary


def summarise(datasets: dict) -> dict:
    """The numbers a reader checks against the literature, from the CLASSIC datasets."""
    summary: dict = {}
    epsc = datasets["epsc"]
    peaks = {}
    for post in epsc.post.values:
        v, rho0 = float(epsc.v_hold[post]), float(epsc.rho0[post])
        trace = epsc.i_syn.sel(post=post).values
        kind = "silent" if rho0 == 0 else "functional"
        peaks[f"{kind} {v:+.0f} mV"] = float(trace[np.argmax(np.abs(trace))])
    summary["epsc_peak_pA"] = peaks

    iv = datasets["iv"]
    summary["nmda_iv_min_mV"] = float(iv.v_hold[int(np.argmin(iv.i_nmda_peak.values))])

    pairing = datasets["pairing"]
    summary["pairing_ampa_final"] = {
        f"{v:+.0f} mV": {f"rho0={r:g}": round(float(pairing.ampa_final_grid.sel(
            v_clamp_mV=v, rho0_value=r)), 4) for r in pairing.rho0_value.values}
        for v in pairing.v_clamp_mV.values}
    summary["pairing_protocol"] = (f"{pairing.attrs['n_pulses']} pulses at "
                                   f"{pairing.attrs['frequency_hz']:g} Hz, voltage clamp")

    stdp = datasets["stdp"]
    summary["stdp_delta_ampa"] = {
        f"{d:+g} ms": {f"rho0={r:g}": round(float(stdp.delta_ampa.sel(delay_ms=d, rho0_value=r)), 4)
                       for r in stdp.rho0_value.values} for d in stdp.delay_ms.values}

    minimal = datasets["minimal_stimulation"]
    summary["minimal_stimulation"] = {
        "failure_rate_-70mV": float(minimal.failure_rate[0]),
        "failure_rate_+40mV": float(minimal.failure_rate[1]),
        "silent_fraction_estimate": float(minimal.silent_fraction_estimate),
        "silent_fraction_true": float(minimal.silent_fraction_true)}
    return summary


def print_summary(summary: dict, out_dir: Path) -> None:
    print(f"\nreceptor experiments written to {out_dir}/")
    print("EPSC peaks (pA, outward positive):")
    for k, v in summary["epsc_peak_pA"].items():
        print(f"  {k:>20}: {v:8.2f}")
    print(f"NMDA I-V minimum at {summary['nmda_iv_min_mV']:+.0f} mV (negative-slope region below)")
    print(f"pairing ({summary['pairing_protocol']}), final AMPA occupancy:")
    for v, row in summary["pairing_ampa_final"].items():
        print(f"  {v:>7}: " + "  ".join(f"{k} -> {x:.4f}" for k, x in row.items()))
    print("spike-timing window, change of AMPA occupancy (delay = t_post - t_pre):")
    for d, row in summary["stdp_delta_ampa"].items():
        print(f"  {d:>8}: " + "  ".join(f"{k}: {x:+.4f}" for k, x in row.items()))
    print(f"figures (PDF, PNG, SVG) in {out_dir / 'figures'}/: {', '.join(summary['figures'])}")
    m = summary["minimal_stimulation"]
    print(f"minimal stimulation: F(-70) = {m['failure_rate_-70mV']:.3f}, "
          f"F(+40) = {m['failure_rate_+40mV']:.3f}, silent fraction estimate "
          f"{m['silent_fraction_estimate']:.3f} (true {m['silent_fraction_true']:.3f})")


PROG = "python -m synsim.demo"


def main(argv=None) -> int:
    """An OUT_DIR that cannot be written is one line on stderr and exit code 2, before anything
    runs."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", nargs="?", default=None,
                        help="output directory (default runs/synsim-<timestamp>)")
    parser.add_argument("--quick", action="store_true", help="shorter pairing and STDP trains")
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir or Path("runs") / f"synsim-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        files.check_writable(out_dir, directory=True)
        files.check_writable(out_dir / "figures", directory=True)
        summary = run_receptor_experiments(out_dir, quick=args.quick)
    except BAD_INPUT as e:
        return report(PROG, e)
    print_summary(summary, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
