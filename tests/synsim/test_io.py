"""synsim.io: CF attributes, netCDF round trip, atomic writes, appending along a dimension."""

import numpy as np
import pytest
import xarray as xr

from synsim import io
from synsim.model import Circuit, Stimulus
from synsim.params import ModelParams
from synsim.simulate import simulate


def small_run():
    circuit = Circuit(syn_source=[0, 0], syn_post=[0, 1], n_sources=1, n_post=2,
                      v_hold_mV=[-70.0, 0.0], rho0=[0.3, 0.0])
    stim = Stimulus.from_times(120.0, 0.1, [0.0, 50.0], [0, 0])
    return simulate(circuit, stim, ModelParams(), attrs={"config": {"a": 1, "b": [1, 2]}})


def test_every_variable_has_units_and_long_name():
    ds = small_run()
    for name in ds.variables:
        assert "units" in ds[name].attrs and "long_name" in ds[name].attrs, name
        assert "since" not in ds[name].attrs["units"]
    assert ds.time.attrs["units"] == "ms" and ds.v.attrs["units"] == "mV"
    assert ds.i_ampa.attrs["units"] == "pA"
    assert ds.attrs["Conventions"].startswith("CF-")
    assert ds.attrs["tau_ca_ms"] == 20.0 and ds.attrs["discretisation"] == "exact"


def test_round_trip(tmp_path):
    ds = small_run()
    path = io.save(ds, tmp_path / "run.nc")
    back = io.load(path)
    assert back.functional.dtype == bool
    for name in ds.data_vars:
        np.testing.assert_array_equal(back[name].values, ds[name].values)
        assert back[name].attrs["units"] == ds[name].attrs["units"]
    assert back.attrs["tau_ca_ms"] == 20.0
    assert back.attrs["config"] == '{"a": 1, "b": [1, 2]}'
    assert not list(tmp_path.glob("*.tmp"))


def learner_slab(start, n, n_syn=3):
    step = np.arange(start, start + n)
    rng = np.random.default_rng(start)
    ds = xr.Dataset(
        {"ampa": (("step", "synapse"), rng.random((n, n_syn))),
         "calcium": (("step", "synapse"), rng.random((n, n_syn))),
         "functional": (("step", "synapse"), rng.random((n, n_syn)) > 0.5)},
        coords={"step": step, "task": ("step", np.full(n, start // 10)),
                "synapse": np.arange(n_syn), "synapse_task": ("synapse", np.arange(n_syn))})
    return io.annotate(ds)


def test_append_equals_concatenation(tmp_path):
    path = tmp_path / "synapses.nc"
    parts = [learner_slab(0, 10), learner_slab(10, 7), learner_slab(17, 5)]
    for part in parts:
        io.append(path, part, dim="step")
    back = io.load(path)
    full = xr.concat(parts, dim="step")
    for name in ("ampa", "calcium", "functional", "task", "step"):
        np.testing.assert_array_equal(back[name].values, full[name].values)
    assert back.functional.dtype == bool
    assert back.ampa.attrs["units"] == "1"


def test_append_errors_leave_the_file_intact(tmp_path):
    path = tmp_path / "synapses.nc"
    io.append(path, learner_slab(0, 4), dim="step")
    before = path.read_bytes()
    with pytest.raises(ValueError, match="has 4 entries along 'synapse' but the file has 3"):
        io.append(path, learner_slab(4, 2, n_syn=4), dim="step")
    with pytest.raises(ValueError, match="dim = 'time' is not a dimension"):
        io.append(path, learner_slab(4, 2), dim="time")
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.load(tmp_path / "missing.nc")
