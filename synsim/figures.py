"""Publication figures from synsim datasets: `python -m synsim.figures [OUT_DIR] [--from RUN_DIR]`.

One style for every figure: sizes that fit a journal column (89 mm single, 183 mm double), the
Okabe-Ito colour-blind-safe palette, axis labels built from each variable's CF `long_name` and
`units`. Each figure function returns (figure, data) where `data` holds the arrays it plotted, so
tests compare them with the dataset instead of pixels. Every figure is written as PDF, PNG (300
dpi) and SVG, atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import xarray as xr

SINGLE_COLUMN_IN = 89 / 25.4
DOUBLE_COLUMN_IN = 183 / 25.4
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00",
             "purple": "#CC79A7"}
FORMATS = ("pdf", "png", "svg")
STYLE = {
    "font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "xtick.labelsize": 6,
    "ytick.labelsize": 6, "legend.fontsize": 6, "legend.frameon": False, "lines.linewidth": 1.0,
    "axes.linewidth": 0.6, "xtick.major.width": 0.6, "ytick.major.width": 0.6,
    "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100,
    "savefig.bbox": "tight", "savefig.pad_inches": 0.02, "pdf.fonttype": 42, "svg.fonttype": "none",
    "axes.prop_cycle": None,  # set in style()
}


def style():
    """Apply the house style to matplotlib (the backend is left alone: inline in Jupyter, Agg on
    a headless machine)."""
    import matplotlib.pyplot as plt
    from cycler import cycler

    rc = dict(STYLE)
    rc["axes.prop_cycle"] = cycler(color=[OKABE_ITO[c] for c in
                                          ("blue", "vermillion", "green", "orange", "purple",
                                           "sky", "black")])
    plt.rcParams.update(rc)
    return plt


def label(da: xr.DataArray, name: str | None = None) -> str:
    """'long name (units)' from CF attributes."""
    long_name = name or da.attrs.get("long_name", da.name)
    units = da.attrs.get("units")
    return f"{long_name} ({units})" if units else str(long_name)


def save(fig, out_dir: Path, name: str) -> list[Path]:
    """Write the figure in every format, each atomically."""
    from . import files

    paths = []
    for ext in FORMATS:
        with files.atomic_path(out_dir / f"{name}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=300 if ext == "png" else None)
        paths.append(out_dir / f"{name}.{ext}")
    return paths


# ---------------------------------------------------------------- figures
def fig_epsc(ds: xr.Dataset):
    """Dual-holding-potential EPSCs of a silent and a functional synapse (Kerchner & Nicoll 2008)."""
    plt = style()
    fig, axes = plt.subplots(1, 2, figsize=(SINGLE_COLUMN_IN, 1.6), sharey=True)
    data = {}
    colours = {-70.0: OKABE_ITO["blue"], 40.0: OKABE_ITO["vermillion"]}
    for ax, rho0, title in zip(axes, (0.0, float(ds.rho0.max())), ("silent", "functional")):
        for post in ds.post.values[ds.rho0.values == rho0]:
            v = float(ds.v_hold[post])
            trace = ds.i_syn.sel(post=post)
            ax.plot(ds.time, trace, color=colours.get(v), label=f"{v:+.0f} mV")
            data[f"{title} {v:+.0f} mV"] = trace.values
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_title(f"{title} (AMPA occupancy {rho0:g})")
        ax.set_xlabel(label(ds.time))
    axes[0].set_ylabel(label(ds.i_syn, "EPSC"))
    axes[1].legend(loc="upper right")
    return fig, data


def fig_iv(ds: xr.Dataset):
    """Peak AMPA and NMDA currents against holding potential, with the Mg2+ block inset."""
    plt = style()
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN_IN * 0.6, 1.8))
    v = ds.v_hold.values
    ax.plot(v, ds.i_ampa_peak, "o-", ms=2.5, label="AMPA", color=OKABE_ITO["blue"])
    ax.plot(v, ds.i_nmda_peak, "s-", ms=2.5, label="NMDA", color=OKABE_ITO["vermillion"])
    ax.axhline(0, color="0.6", lw=0.5)
    ax.axvline(0, color="0.6", lw=0.5)
    ax.set_xlabel(label(ds.v_hold))
    ax.set_ylabel("peak current (pA)")
    ax.legend(loc="upper left")
    inset = ax.inset_axes([0.62, 0.24, 0.34, 0.26])
    inset.plot(v, ds.mg_block, color=OKABE_ITO["black"])
    inset.set_xlabel("V (mV)", fontsize=5, labelpad=1)
    inset.set_ylabel("B (1)", fontsize=5, labelpad=1)
    inset.tick_params(labelsize=5)
    inset.set_xticks([-100, 0, 50])
    return fig, {"v_hold": v, "i_ampa_peak": ds.i_ampa_peak.values,
                 "i_nmda_peak": ds.i_nmda_peak.values, "mg_block": ds.mg_block.values}


def fig_calcium(ds: xr.Dataset, window_ms: float = 3000.0):
    """Calcium against the theta_d / theta_p bands, and the AMPA occupancy it drives."""
    plt = style()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(SINGLE_COLUMN_IN, 2.6), sharex=True)
    theta_d, theta_p = ds.attrs["theta_d"], ds.attrs["theta_p"]
    part = ds.sel(time=slice(0, window_ms))
    c_max = float(part.calcium.max())
    top.axhspan(theta_d, theta_p, color=OKABE_ITO["orange"], alpha=0.18, lw=0,
                label="silencing band")
    top.axhspan(theta_p, max(c_max, theta_p) * 1.05, color=OKABE_ITO["green"], alpha=0.12, lw=0,
                label="insertion")
    data = {}
    for syn in part.synapse.values:
        v, rho0 = float(part.v_clamp[syn]), float(part.rho0[syn])
        if rho0 != float(part.rho0.max()):
            continue  # one curve per voltage (the calcium does not depend on rho)
        top.plot(part.time, part.calcium.sel(synapse=syn), label=f"{v:+.0f} mV")
        bottom.plot(part.time, part.ampa.sel(synapse=syn), label=f"{v:+.0f} mV")
        data[f"calcium {v:+.0f} mV"] = part.calcium.sel(synapse=syn).values
        data[f"ampa {v:+.0f} mV"] = part.ampa.sel(synapse=syn).values
    bottom.axhline(ds.attrs["rho_sil"], color="0.5", ls=":", lw=0.8, label=r"$\rho_{sil}$")
    top.set_ylabel(label(ds.calcium, "calcium"))
    bottom.set_ylabel(label(ds.ampa, "AMPA occupancy"))
    top.set_ylim(0, max(c_max, theta_p) * 1.05)
    bottom.set_xlabel(label(ds.time))
    top.legend(ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return fig, data


def _delta_rho_curves(ds: xr.Dataset, x: str, figsize=(SINGLE_COLUMN_IN * 0.6, 1.8)):
    """Delta rho against a protocol variable, one curve per initial occupancy."""
    plt = style()
    fig, ax = plt.subplots(figsize=figsize)
    data = {x: ds[x].values}
    for rho0, marker in zip(ds.rho0_value.values, "os^v"):
        y = ds.delta_ampa.sel(rho0_value=rho0).values
        ax.plot(ds[x].values, y, marker + "-", ms=2.5, label=f"initial {rho0:g}")
        data[f"delta_ampa rho0={rho0:g}"] = y
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set_ylabel(label(ds.delta_ampa, r"$\Delta\rho$"))
    ax.legend(loc="upper left")
    return fig, ax, data


def fig_plasticity_vs_voltage(ds: xr.Dataset):
    """Change of AMPA occupancy after pairing against the clamp potential (Artola et al. 1990)."""
    fig, ax, data = _delta_rho_curves(ds, "v_clamp_mV")
    ax.set_xlabel(label(ds.v_clamp_mV))
    ax.set_title(f"{ds.attrs.get('n_pulses', '')} pulses at {ds.attrs.get('frequency_hz', '')} Hz")
    return fig, data


def fig_stdp(ds: xr.Dataset):
    """Spike-timing window: change of occupancy, and unsilencing of initially silent synapses."""
    fig, ax, data = _delta_rho_curves(ds, "delay_ms")
    ax.axvline(0, color="0.6", lw=0.5)
    ax.set_xlabel(r"$\Delta t = t_{post} - t_{pre}$ (ms)")
    ax.set_title(f"{ds.attrs.get('n_pairings', '')} pairings at {ds.attrs.get('frequency_hz', '')} Hz")
    return fig, data


def silent_fraction(ds: xr.Dataset) -> np.ndarray:
    """Share of recorded synapses that are silent (rho < rho_sil) at each recorded time."""
    return 1.0 - ds.functional.values.mean(axis=1)


def fig_silent_fraction(ds: xr.Dataset):
    """Silent fraction of a population over time."""
    plt = style()
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN_IN * 0.6, 1.6))
    frac = silent_fraction(ds)
    ax.plot(ds.time, frac, color=OKABE_ITO["blue"])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(label(ds.time))
    ax.set_ylabel("silent fraction (1)")
    return fig, {"time": ds.time.values, "silent_fraction": frac}


def fig_raster_heatmap(ds: xr.Dataset):
    """Release raster and postsynaptic spikes above a synapse x time heatmap of AMPA occupancy."""
    plt = style()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(DOUBLE_COLUMN_IN * 0.6, 2.8), sharex=True,
                                      gridspec_kw={"height_ratios": [1, 1.6]})
    top.plot(ds.release_time, ds.release_source, "|", ms=2, color=OKABE_ITO["black"])
    spike_row = int(ds.release_source.max()) + 3 if ds.sizes["release"] else 1
    top.plot(ds.spike_time, np.full(ds.sizes["spike"], spike_row), "|", ms=4,
             color=OKABE_ITO["vermillion"])
    top.set_ylabel("source")
    top.set_title("presynaptic releases (black), postsynaptic spikes (red, top row)")
    ampa = ds.ampa.transpose("synapse", "time").values
    masked = np.ma.masked_where(ds.functional.transpose("synapse", "time").values == 0, ampa)
    image = bottom.pcolormesh(ds.time.values, ds.synapse.values, masked, cmap="viridis",
                              shading="nearest", vmin=0, vmax=max(float(ampa.max()), 1e-6),
                              rasterized=True)
    bottom.set_facecolor("0.85")  # silent synapses (masked) show grey
    bottom.set_ylabel("synapse")
    bottom.set_xlabel(label(ds.time))
    bottom.set_xlim(float(ds.time[0]), float(ds.time[-1]))
    cbar = fig.colorbar(image, ax=[top, bottom], shrink=0.6, pad=0.02)
    cbar.set_label(label(ds.ampa, "AMPA occupancy"))
    return fig, {"release_time": ds.release_time.values, "release_source": ds.release_source.values,
                 "spike_time": ds.spike_time.values, "ampa": ampa}


def fig_trajectories(ds: xr.Dataset, variables=("ampa", "calcium"), along: str | None = None):
    """Each synapse's trajectory of `variables` along `time` (simulator) or `step` (learner).

    Learner logs carry a `task` coordinate on `step`: task boundaries are marked. Synapses that do
    not exist yet are NaN and simply not drawn.
    """
    plt = style()
    along = along or ("step" if "step" in ds.dims else "time")
    variables = [v for v in variables if v in ds]
    fig, axes = plt.subplots(len(variables), 1, figsize=(DOUBLE_COLUMN_IN * 0.6,
                             1.3 * len(variables) + 0.4), sharex=True, squeeze=False)
    x = np.arange(ds.sizes[along]) if along == "step" else ds[along].values
    data = {along: x}
    for ax, name in zip(axes[:, 0], variables):
        values = ds[name].transpose(along, "synapse").values.astype(float)
        for j, syn in enumerate(ds.synapse.values):
            ax.plot(x, values[:, j], lw=0.8, label=f"synapse {syn}")
        data[name] = values
        ax.set_ylabel(label(ds[name], name))
        if "task" in ds.coords and along == "step":
            tasks = ds.task.values
            for b in np.flatnonzero(np.diff(tasks)) + 0.5:
                ax.axvline(b, color="0.6", lw=0.5, ls=":")
    if "ampa" in variables and "rho_sil" in ds.attrs:
        axes[variables.index("ampa"), 0].axhline(ds.attrs["rho_sil"], color="0.5", ls="--",
                                                 lw=0.6)
    axes[-1, 0].set_xlabel("presentation (recorded rows, task boundaries dotted)" if along == "step"
                           else label(ds[along]))
    if ds.sizes["synapse"] <= 10:
        axes[0, 0].legend(ncol=min(5, ds.sizes["synapse"]), loc="lower center",
                          bbox_to_anchor=(0.5, 1.0))
    return fig, data


def fig_residuals(ours: xr.Dataset, ref: xr.Dataset, variable: str = "calcium"):
    """synsim and Brian2 overlaid, with the residual in a panel below."""
    plt = style()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(SINGLE_COLUMN_IN, 2.4), sharex=True,
                                      gridspec_kw={"height_ratios": [2, 1]})
    syn = int(ours.synapse.values[np.argmax(np.abs(ours[variable].values).max(axis=0))])
    a, b = ours[variable].sel(synapse=syn), ref[variable].sel(synapse=syn)
    top.plot(ours.time, a, color=OKABE_ITO["blue"], label="synsim")
    top.plot(ref.time, b, color=OKABE_ITO["orange"], ls="--", label="Brian2")
    units = ours[variable].attrs.get("units", "1")
    top.set_ylabel(f"{variable} ({units})")
    top.legend(loc="lower center")
    residual = a.values - b.values
    bottom.plot(ours.time, residual, color=OKABE_ITO["black"], lw=0.6)
    bottom.set_ylabel(f"residual ({units})")
    bottom.set_xlabel(label(ours.time))
    bottom.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    return fig, {"synsim": a.values, "brian2": b.values, "residual": residual}


# ---------------------------------------------------------------- datasets and the CLI
DATASETS = ("epsc", "iv", "calcium", "plasticity", "stdp", "population")


def default_datasets(quick: bool = False, only=DATASETS) -> dict:
    """Run the protocols each figure needs (short versions when `quick`)."""
    from . import protocols

    n_pulses = 20 if quick else 200
    makers = {
        "epsc": lambda: protocols.epsc((-70.0, 40.0), (0.0, 0.5)),
        "iv": lambda: protocols.iv(),
        "calcium": lambda: protocols.pairing(2.0, 6 if quick else 10, (-30.0, -20.0, -10.0, 0.0),
                                             (0.3,), record_every_ms=0.5),
        "plasticity": lambda: protocols.pairing(
            2.0, n_pulses, np.arange(-70.0, 1.0, 10.0 if quick else 5.0), (0.3, 0.0),
            record_every_ms=50.0, progress=not quick),
        "stdp": lambda: protocols.stdp((-50.0, -20.0, -10.0, -5.0, -2.0, 2.0, 5.0, 10.0, 20.0,
                                        50.0), 10 if quick else 60, 5.0, record_every_ms=10.0),
        "population": lambda: population(quick=quick),
    }
    return {name: makers[name]() for name in only}


def population(quick: bool = False) -> xr.Dataset:
    """50 Poisson inputs onto a spiking neuron, about half silent at first: once the neuron fires,
    its back-propagating spikes unsilence the inputs active just before them, which drives more
    firing — Hebbian unsilencing, and without homeostasis, its runaway."""
    from . import protocols
    from .params import ModelParams

    rng = np.random.default_rng(7)
    n = 50
    rho0 = np.where(rng.random(n) < 0.5, 0.0, 0.3)
    params = ModelParams()
    return protocols.spiking_neuron(n_inputs=n, rate_hz=10.0, i_ext_pA=340.0,
                                    duration_ms=3000.0, rho0=rho0, seed=1,
                                    params=params, record_every_ms=5.0)


def make_all(out_dir: Path, datasets: dict | None = None, quick: bool = False,
             brian2: bool = True) -> dict:
    """Write every figure; returns {name: [paths]}."""
    import matplotlib.pyplot as plt

    datasets = datasets or default_datasets(quick)
    jobs = {
        "epsc": lambda: fig_epsc(datasets["epsc"]),
        "iv": lambda: fig_iv(datasets["iv"]),
        "calcium_thresholds": lambda: fig_calcium(datasets["calcium"]),
        "plasticity_vs_voltage": lambda: fig_plasticity_vs_voltage(datasets["plasticity"]),
        "stdp_window": lambda: fig_stdp(datasets["stdp"]),
        "silent_fraction": lambda: fig_silent_fraction(datasets["population"]),
        "raster_ampa_heatmap": lambda: fig_raster_heatmap(datasets["population"]),
    }
    if brian2:
        try:
            from .crosscheck import CANONICAL, brian2_simulator
            from .params import ModelParams
            from .simulate import simulate

            ours = CANONICAL["pairing"](ModelParams(), simulate)
            ref = CANONICAL["pairing"](ModelParams(), brian2_simulator("numpy"))
            jobs["residuals_brian2"] = lambda: fig_residuals(ours, ref)
        except ImportError:
            print("brian2 is not installed: skipping the residual figure", file=sys.stderr)
    written = {}
    for name, job in jobs.items():
        fig, _ = job()
        written[name] = [str(p) for p in save(fig, out_dir, name)]
        plt.close(fig)
    return written


def load_run(run_dir: Path) -> dict:
    """Datasets from a `python -m synsim.demo` run directory, where present."""
    from . import io

    names = {"epsc": "epsc", "iv": "iv", "calcium": "pairing_calcium",
             "plasticity": "pairing", "stdp": "stdp", "population": "population"}
    return {key: io.load(run_dir / f"{stem}.nc") for key, stem in names.items()
            if (run_dir / f"{stem}.nc").exists()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synsim.figures",
                                     description="write the synsim figure set (PDF, PNG, SVG)")
    parser.add_argument("out_dir", nargs="?", default="figures", type=Path)
    parser.add_argument("--from", dest="run_dir", type=Path,
                        help="a synsim demo run directory whose datasets to draw")
    parser.add_argument("--quick", action="store_true", help="shorter protocols")
    parser.add_argument("--no-brian2", action="store_true", help="skip the Brian2 residual figure")
    args = parser.parse_args(argv)
    datasets = None
    if args.run_dir is not None:
        if not args.run_dir.is_dir():
            print(f"--from {args.run_dir}: not a directory (expected a synsim demo run)",
                  file=sys.stderr)
            return 2
        datasets = load_run(args.run_dir)
        datasets.update(default_datasets(args.quick, [k for k in DATASETS if k not in datasets]))
    written = make_all(args.out_dir, datasets, quick=args.quick, brian2=not args.no_brian2)
    for name, paths in written.items():
        print(f"{name}: {', '.join(paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
