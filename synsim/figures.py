"""Publication figures from synsim datasets: `python -m synsim.figures [OUT_DIR] [--from RUN_DIR]`.

Figure functions only draw: they take Datasets. The canonical ones come from synsim.experiments;
the CLI runs them (or loads them from a demo run) and draws. One style for every figure: sizes
that fit a journal column (89 mm single, 183 mm double), the Okabe-Ito colour-blind-safe palette,
axis labels built from each variable's CF `long_name` and `units`. Each figure function returns
(figure, data) where `data` holds the arrays it plotted, so tests compare them with the dataset
instead of pixels. Every figure is written as PDF, PNG (300 dpi) and SVG, atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from .errors import BAD_INPUT, UsageError, report

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


def fig_trajectories(ds: xr.Dataset, variables=("ampa", "calcium"), along: str | None = None,
                     boundaries: str | None = None):
    """Each synapse's trajectory of `variables` along one dimension (the simulator's `time`, or a
    caller's own, such as a log's row index).

    `along` defaults to the variables' dimension other than `synapse`. `boundaries` names a
    coordinate on `along` whose changes are marked (dotted): the recorded rows are then drawn
    evenly spaced, one per row, so that every segment between boundaries is visible however
    sparsely it was recorded. NaN values (synapses that do not exist yet) are simply not drawn.
    """
    plt = style()
    variables = [v for v in variables if v in ds]
    along = along or next(d for d in ds[variables[0]].dims if d != "synapse")
    fig, axes = plt.subplots(len(variables), 1, figsize=(DOUBLE_COLUMN_IN * 0.6,
                             1.3 * len(variables) + 0.4), sharex=True, squeeze=False)
    by_row = boundaries is not None or along not in ds.coords
    x = np.arange(ds.sizes[along]) if by_row else ds[along].values
    data = {along: x}
    for ax, name in zip(axes[:, 0], variables):
        values = ds[name].transpose(along, "synapse").values.astype(float)
        for j, syn in enumerate(ds.synapse.values):
            ax.plot(x, values[:, j], lw=0.8, label=f"synapse {syn}")
        data[name] = values
        ax.set_ylabel(label(ds[name], name))
        if boundaries is not None:
            for b in np.flatnonzero(np.diff(ds[boundaries].values)) + 0.5:
                ax.axvline(b, color="0.6", lw=0.5, ls=":")
    if "ampa" in variables and "rho_sil" in ds.attrs:
        axes[variables.index("ampa"), 0].axhline(ds.attrs["rho_sil"], color="0.5", ls="--",
                                                 lw=0.6)
    if boundaries is not None:
        name = ds[along].attrs.get("long_name", along) if along in ds.coords else along
        axes[-1, 0].set_xlabel(f"{name} (recorded rows, {boundaries} boundaries dotted)")
    else:
        axes[-1, 0].set_xlabel(label(ds[along]) if along in ds.coords else f"{along} (row)")
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


def fig_sweep_heatmap(ds: xr.Dataset, x: str, y: str, summary: str, at: dict | None = None):
    """A summary of a parameter sweep (synsim.sweep) over two of its dimensions, as a heatmap.

    Every other dimension of `summary` is taken at the index `at[dim]` when given, else averaged
    (NaN, a point not computed yet, is left out of the mean). Cells are evenly spaced, one per
    grid value in the grid's order, labelled with the values. `data` holds the x and y
    coordinates and the drawn (y, x) array.
    """
    da = ds[summary]
    at = dict(at or {})
    if x == y or x not in da.dims or y not in da.dims:
        raise ValueError(f"x = {x!r}, y = {y!r}: must be two different dimensions of {summary} "
                         f"{da.dims}")
    taken = []
    for dim in da.dims:
        if dim in (x, y):
            continue
        if dim in at:
            value = ds[dim].values[at[dim]] if dim in ds.coords else at[dim]
            units = ds[dim].attrs.get("units", "") if dim in ds.coords else ""
            units = "" if units in ("", "1") else f" {units}"
            da = da.isel({dim: at[dim]})
            taken.append(f"{dim} = {value:g}{units}")
        else:
            da = da.mean(dim, keep_attrs=True)
            taken.append(f"mean over {dim}")
    values = da.transpose(y, x).values.astype(float)
    plt = style()
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN_IN, SINGLE_COLUMN_IN * 0.8))
    nx, ny = values.shape[1], values.shape[0]
    mesh = ax.pcolormesh(np.arange(nx), np.arange(ny), values, shading="nearest",
                         cmap="viridis", rasterized=True)
    for axis, name, n in ((ax.xaxis, x, nx), (ax.yaxis, y, ny)):
        ticks = np.arange(0, n, max(1, int(np.ceil(n / 8))))
        axis.set_ticks(ticks)
        axis.set_ticklabels([f"{v:g}" for v in ds[name].values[ticks]])
    ax.set_xlabel(label(ds[x]))
    ax.set_ylabel(label(ds[y]))
    cbar = fig.colorbar(mesh, ax=ax, pad=0.02)
    cbar.set_label(label(ds[summary]))
    if taken:
        ax.set_title("; ".join(taken))
    return fig, {x: ds[x].values, y: ds[y].values, summary: values}


# ---------------------------------------------------------------- the figure set and its CLI
# figure name -> (the synsim.experiments.CLASSIC dataset it draws, the drawing function)
FIGURES = {
    "epsc": ("epsc", fig_epsc),
    "iv": ("iv", fig_iv),
    "calcium_thresholds": ("pairing_calcium", fig_calcium),
    "plasticity_vs_voltage": ("pairing", fig_plasticity_vs_voltage),
    "stdp_window": ("stdp", fig_stdp),
    "silent_fraction": ("population", fig_silent_fraction),
    "raster_ampa_heatmap": ("population", fig_raster_heatmap),
}


def make_all(out_dir: Path, datasets: dict, residuals: tuple | None = None) -> dict:
    """Write every figure of FIGURES from `datasets` (keyed by experiment name), and the residual
    figure from a (synsim, Brian2) pair when given; returns {name: [paths]}."""
    import matplotlib.pyplot as plt

    jobs = [(name, draw, (datasets[dataset],)) for name, (dataset, draw) in FIGURES.items()]
    if residuals is not None:
        jobs.append(("residuals_brian2", fig_residuals, tuple(residuals)))
    written = {}
    for name, draw, args in jobs:
        fig, _ = draw(*args)
        written[name] = [str(p) for p in save(fig, out_dir, name)]
        plt.close(fig)
    return written


PROG = "python -m synsim.figures"


def main(argv=None) -> int:
    """Run (or, with --from, load) the figure set's experiments, then draw them.

    Bad input (a --from directory that holds no synsim run or an unreadable dataset, an output
    directory that cannot be written) is one line on stderr and exit code 2, checked before any
    experiment runs or any file is written."""
    parser = argparse.ArgumentParser(prog=PROG,
                                     description="write the synsim figure set (PDF, PNG, SVG)")
    parser.add_argument("out_dir", nargs="?", default="figures", type=Path)
    parser.add_argument("--from", dest="run_dir", type=Path,
                        help="a synsim demo run directory whose datasets to draw")
    parser.add_argument("--quick", action="store_true", help="shorter protocols")
    parser.add_argument("--no-brian2", action="store_true", help="skip the Brian2 residual figure")
    args = parser.parse_args(argv)
    try:
        written = _run(args)
    except BAD_INPUT as e:
        return report(PROG, e)
    for name, paths in written.items():
        print(f"{name}: {', '.join(paths)}")
    return 0


def _run(args) -> dict:
    from . import experiments, files

    needed = list(dict.fromkeys(dataset for dataset, _ in FIGURES.values()))
    if args.run_dir is not None:
        if not args.run_dir.is_dir():
            what = "a file" if args.run_dir.exists() else "it does not exist"
            raise UsageError(f"--from {args.run_dir}: not a directory ({what}); give a synsim "
                             "run directory written by python -m synsim.demo")
        if not any((args.run_dir / f"{name}.nc").exists() for name in needed):
            raise UsageError(f"--from {args.run_dir}: not a synsim run (none of "
                             f"{', '.join(f'{n}.nc' for n in needed)} there); give a directory "
                             "written by python -m synsim.demo")
    files.check_writable(args.out_dir, directory=True)
    datasets = {} if args.run_dir is None else experiments.load(args.run_dir, needed)
    for name in needed:
        if name not in datasets:
            datasets[name] = experiments.CLASSIC[name](quick=args.quick)
    residuals = None if args.no_brian2 else experiments.brian2_pair()
    return make_all(args.out_dir, datasets, residuals)


if __name__ == "__main__":
    sys.exit(main())
