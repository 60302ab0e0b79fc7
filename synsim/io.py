"""The simulator's variable schema (units, long names) and netCDF save / load / append.

Variable names, units and long names are the simulator's own (CF conventions, UDUNITS strings);
a caller with names of its own passes them to `annotate` as a vocabulary. Files are written
atomically (synsim.files): to a temporary file beside the target,
then renamed, so an interrupted write never damages what was already there. `append` grows a file
along one dimension by streaming a copy on disk and writing only the new slab with netCDF4, never
loading the existing content into memory.

Bad input is refused with one line and nothing written: `load` of a file that is not a readable
synsim netCDF raises `DataFileError` (a ValueError); `append` of data that does not continue the
file (another `synapse` coordinate, steps not after the stored ones, values the stored dtype
cannot hold) raises ValueError and leaves the file as it was.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Mapping, Optional

import numpy as np
import xarray as xr

from .errors import DataFileError
from .files import atomic_path

CONVENTIONS = "CF-1.10"
ENGINE = "netcdf4"

# name -> (units, long_name)
VARIABLES: dict[str, tuple[str, str]] = {
    "time": ("ms", "simulation time"),
    "pre": ("1", "presynaptic release probability"),
    "depolarisation": ("1", "postsynaptic depolarisation"),
    "mg_block": ("1", "NMDA Mg2+ block (unblocked fraction)"),
    "calcium": ("1", "NMDA calcium (normalised, theta_d = 1)"),
    "ampa": ("1", "AMPA slot occupancy"),
    "functional": ("1", "functional (unsilenced) synapse"),
    "w_A": ("nS", "AMPA conductance scale"),
    "v": ("mV", "membrane potential"),
    "s_ampa": ("1", "open AMPA fraction (peak-normalised)"),
    "s_nmda": ("1", "open NMDA fraction (peak-normalised)"),
    "bap": ("mV", "back-propagating spike depolarisation"),
    "i_ampa": ("pA", "AMPA current (outward positive, voltage-clamp convention)"),
    "i_nmda": ("pA", "NMDA current (outward positive, voltage-clamp convention)"),
    "i_syn": ("pA", "total synaptic current (outward positive, voltage-clamp convention)"),
    "synapse": ("1", "synapse index"),
    "post": ("1", "postsynaptic neuron index"),
    "pre_neuron": ("1", "presynaptic neuron of the synapse"),
    "post_neuron": ("1", "postsynaptic neuron of the synapse"),
    "spike_time": ("ms", "postsynaptic spike time"),
    "spike_neuron": ("1", "neuron that spiked"),
    "event": ("1", "silencing/unsilencing event index"),
    "event_time": ("ms", "time of the silencing/unsilencing event"),
    "event_synapse": ("1", "synapse of the event"),
    "event_kind": ("1", "+1 unsilenced (rho crossed rho_sil upwards), -1 silenced"),
    "release_time": ("ms", "presynaptic release time"),
    "release_source": ("1", "source (presynaptic trace set) that released"),
    "release_amplitude": ("1", "release amplitude (1 = one full release)"),
}


def annotate(ds: xr.Dataset, vocabulary: Optional[Mapping[str, tuple[str, str]]] = None,
             **global_attrs) -> xr.Dataset:
    """Attach units/long_name to every known variable and coordinate, plus global attributes.

    `vocabulary` adds a caller's own names (e.g. a learner's log) to the simulator's VARIABLES.
    """
    known = {**VARIABLES, **(vocabulary or {})}
    for name in list(ds.variables):
        if name in known:
            units, long_name = known[name]
            ds[name].attrs.setdefault("units", units)
            ds[name].attrs.setdefault("long_name", long_name)
    ds.attrs.setdefault("Conventions", CONVENTIONS)
    ds.attrs.setdefault("package_version", _version())
    ds.attrs.update(global_attrs)
    return ds


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("synsim-artsy")
    except Exception:  # pragma: no cover - not installed as a distribution
        return "unknown"


def _netcdf_attr(value):
    """netCDF attributes hold numbers, strings and 1-D numeric arrays; anything else becomes JSON."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) and all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            for v in value):
        return np.asarray(value)
    return json.dumps(value, default=str)


def _encodable(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs = {k: _netcdf_attr(v) for k, v in ds.attrs.items() if v is not None}
    for name in ds.variables:
        ds[name].attrs = {k: _netcdf_attr(v) for k, v in ds[name].attrs.items() if v is not None}
    return ds


def save(ds: xr.Dataset, path, unlimited_dims=()) -> Path:
    """Write `ds` to netCDF-4 atomically; `unlimited_dims` can later grow with `append`."""
    with atomic_path(path) as tmp:
        _encodable(ds).to_netcdf(tmp, engine=ENGINE, format="NETCDF4",
                                 unlimited_dims=list(unlimited_dims))
    return Path(path)


def _unreadable(path: Path, error: BaseException) -> DataFileError:
    reason = getattr(error, "strerror", None) or " ".join(str(error).split())[:160]
    return DataFileError(f"{path} is not a readable synsim netCDF file ({type(error).__name__}: "
                         f"{reason}): rerun the simulation that wrote it")


def load(path) -> xr.Dataset:
    """Read a file written by `save`/`append` fully into memory (booleans restored).

    Raises FileNotFoundError when `path` does not exist, and `synsim.errors.DataFileError` (a
    ValueError) naming the file when it is not a readable netCDF file (a text file, a directory,
    a truncated write): the fix is to rerun the simulation that wrote it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: expected a netCDF file written by synsim.io")
    if path.is_dir():
        raise DataFileError(f"{path} is a directory, not a synsim netCDF file: give the path of "
                            "a .nc file")
    try:
        return xr.load_dataset(path, engine=ENGINE)
    except (PermissionError, MemoryError):
        raise
    except Exception as e:  # netCDF/HDF5 and xarray decoding errors alike: the file is unusable
        raise _unreadable(path, e) from e


def _first_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.flatnonzero(a != b)[0])


def _check_continues(path: Path, nc, ds: xr.Dataset, dim: str, offset: int) -> None:
    """`ds` continues the file along `dim`: the same coordinates on every other dimension, and
    `dim`'s coordinate strictly increasing and after the file's last entry."""
    for d in ds.dims:
        if d == dim or d not in ds.coords or d not in nc.variables:
            continue
        new, old = np.asarray(ds[d].values), np.asarray(nc.variables[d][:])
        if new.shape != old.shape or new.dtype.kind not in "iuf" or old.dtype.kind not in "iuf":
            continue  # a size mismatch is reported below, per variable
        if not np.array_equal(new, old):
            i = _first_difference(new, old)
            raise ValueError(f"{path}: coordinate {d!r} differs from the file's at index {i} "
                             f"({new[i].item()!r} vs {old[i].item()!r}): append only data with "
                             f"the file's {d} values, or write a new file")
    if dim not in ds.coords or ds[dim].dtype.kind not in "iuf":
        return
    new = np.asarray(ds[dim].values)
    if new.dtype.kind == "f" and not np.isfinite(new).all():
        raise ValueError(f"{path}: coordinate {dim!r} contains "
                         f"{new[~np.isfinite(new)][0].item()!r}: must be finite")
    steps = np.diff(new)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0])
        raise ValueError(f"{path}: {dim} {new[i + 1].item()!r} follows {new[i].item()!r}: the "
                         f"appended {dim} values must be strictly increasing")
    if offset > 0 and dim in nc.variables and new.size:
        last = np.asarray(nc.variables[dim][offset - 1]).item()
        if not new[0] > last:
            raise ValueError(f"{path}: {dim} {new[0].item()!r} is not after the file's last "
                             f"{dim} {last!r}: append only {dim} values > {last!r}")


def _check_fits(path: Path, name: str, values: np.ndarray, stored: np.dtype) -> None:
    """The stored dtype holds every value: no finite float that overflows to inf (float64 into
    float32), no integer that wraps around."""
    stored = np.dtype(stored)
    if values.size == 0 or values.dtype.kind not in "iuf":
        return
    if stored.kind == "f" and values.dtype.kind == "f" and stored.itemsize < values.dtype.itemsize:
        big = np.isfinite(values) & (np.abs(values) > np.finfo(stored).max)
        if big.any():
            raise ValueError(f"{path}: variable {name!r} holds {values[big][0].item()!r}, beyond "
                             f"the file's {stored} range (+-{np.finfo(stored).max:.3g}): rescale "
                             "it, or write a new file that stores it as float64")
    elif stored.kind in "iu" and values.dtype.kind in "iu":
        info = np.iinfo(stored)
        out = (values < info.min) | (values > info.max)
        if out.any():
            raise ValueError(f"{path}: variable {name!r} holds {values[out][0].item()!r}, beyond "
                             f"the file's {stored} range [{info.min}, {info.max}]")


def append(path, ds: xr.Dataset, dim: str) -> Path:
    """Append `ds` along `dim` to the file at `path` (created, with `dim` unlimited, if absent).

    Variables that lack `dim` must already be in the file or are added; variables with `dim` are
    written as a new slab after the existing entries. The file is updated atomically.

    Raises ValueError (one line; the file unchanged) when `ds` does not continue the file: a
    coordinate of another dimension (e.g. `synapse`) differs from the stored one; `dim`'s
    coordinate is not strictly increasing or not after the stored last entry; a value does not fit
    the stored dtype (finite in float64 but inf in a float32 variable). A file that is not a
    readable netCDF raises `synsim.errors.DataFileError`.
    """
    import netCDF4

    path = Path(path)
    if dim not in ds.dims:
        raise ValueError(f"dim = {dim!r} is not a dimension of the dataset: it has {list(ds.dims)}")
    if not path.exists():
        return save(ds, path, unlimited_dims=[dim])
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        try:
            nc = netCDF4.Dataset(tmp, "a")
        except OSError as e:
            raise _unreadable(path, e) from e
        with nc:
            if dim not in nc.dimensions or not nc.dimensions[dim].isunlimited():
                raise ValueError(f"{path} cannot grow along {dim!r}: it was not saved with "
                                 f"unlimited_dims=[{dim!r}]")
            offset = len(nc.dimensions[dim])
            _check_continues(path, nc, ds, dim, offset)
            encoded = _encodable(ds)
            for name, var in encoded.variables.items():
                enc = xr.conventions.encode_cf_variable(var, name=name)
                if name not in nc.variables:
                    if dim in var.dims and offset > 0:
                        raise ValueError(f"variable {name!r} is new but has dim {dim!r}: the file "
                                         f"already holds {offset} entries along it")
                    for d in var.dims:
                        if d not in nc.dimensions:
                            nc.createDimension(d, None if d == dim else var.sizes[d])
                    fill = enc.attrs.pop("_FillValue", None)
                    _check_fits(path, name, np.asarray(enc.values), enc.dtype)
                    out = nc.createVariable(name, enc.dtype, var.dims, fill_value=fill)
                    out.setncatts(enc.attrs)
                    out[...] = enc.values
                    continue
                out = nc.variables[name]
                if tuple(out.dimensions) != tuple(var.dims):
                    raise ValueError(f"variable {name!r} has dims {var.dims} but the file has "
                                     f"{tuple(out.dimensions)}")
                if dim not in var.dims:
                    continue  # static variable, already written
                index = tuple(slice(offset, offset + var.sizes[d]) if d == dim
                              else slice(0, var.sizes[d]) for d in var.dims)
                for d in var.dims:
                    if d != dim and var.sizes[d] != len(nc.dimensions[d]):
                        raise ValueError(f"variable {name!r} has {var.sizes[d]} entries along "
                                         f"{d!r} but the file has {len(nc.dimensions[d])}")
                _check_fits(path, name, np.asarray(enc.values), out.dtype)
                out[index] = enc.values
    return path
