"""artsy.synapse_log: the recorded rows; synapses.nc grows along two unlimited dims, keeps its
schema, truncates."""

import json

import netCDF4
import numpy as np

from artsy.synapse_log import LOG_VARIABLES, SynapseLog, empty_rows, log_attrs, record_positions
from synsim import io

N_TASKS = 3


def rows(task, n):
    out = {name: np.full((n, N_TASKS), np.nan) for name in LOG_VARIABLES if name != "functional"}
    out["pre"][:, : task + 1] = 0.5
    out["functional"] = np.zeros((n, N_TASKS), dtype=bool)
    out["functional"][:, task] = True
    out["position"] = np.arange(0, 2 * n, 2)
    return out


def append(log, task, offset, n):
    """K_eff 2 and open rate 0.5 for the synapses calibrated so far, NaN for the later ones."""
    rate = np.full((N_TASKS, N_TASKS), np.nan)
    rate[: task + 1, : task + 1] = np.eye(task + 1)
    calibration = [{"after_task": task, "synapse": i, "K_eff": 2.0, "target_open_rate": 0.5,
                    "open_rate": 0.5} for i in range(task + 1)]
    log.append_task(task, offset, rows(task, n), rate, rate * 0.9, calibration)


def test_record_positions_keep_at_most_about_500_rows_and_the_last():
    pos = record_positions(2500, None)
    assert len(pos) <= 501 and pos[0] == 0 and pos[-1] == 2499
    assert record_positions(7, 3).tolist() == [0, 3, 6]
    assert record_positions(8, 3).tolist() == [0, 3, 6, 7]


def test_empty_rows_are_silent_synapses():
    out = empty_rows(np.array([0, 3, 6]), N_TASKS)
    assert set(out) == {*LOG_VARIABLES, "position"} and out["position"].tolist() == [0, 3, 6]
    assert out["functional"].dtype == bool and not out["functional"].any()
    assert all(np.isnan(out[name]).all() and out[name].shape == (3, N_TASKS)
               for name in LOG_VARIABLES if name != "functional")


def test_log_schema_and_growth(tmp_path):
    path = tmp_path / "synapses.nc"
    log = SynapseLog(path, N_TASKS, log_attrs("ngai", {"run": {"seed": 1}}, {"rule_K": 2.0}))
    append(log, 0, 0, 4)
    append(log, 1, 8, 3)
    with netCDF4.Dataset(path) as nc:
        assert nc.dimensions["step"].isunlimited() and nc.dimensions["after_task"].isunlimited()
    ds = io.load(path)
    assert dict(ds.sizes) == {"step": 7, "synapse": N_TASKS, "after_task": 2, "input_task": N_TASKS}
    assert ds.step.values.tolist() == [0, 2, 4, 6, 8, 10, 12]
    assert ds.task.dims == ("step",) and ds.task.values.tolist() == [0] * 4 + [1] * 3
    assert ds.synapse_task.dims == ("synapse",) and ds.synapse_task.values.tolist() == [0, 1, 2]
    for name in LOG_VARIABLES:
        assert ds[name].dims == ("step", "synapse")
        assert ds[name].attrs["units"] == "1" and ds[name].attrs["long_name"]
    assert ds.functional.dtype == bool and ds.functional.values[-1].tolist() == [False, True, False]
    assert ds.gate_open_rate.dims == ("after_task", "input_task", "synapse")
    assert ds.gate_open_rate.attrs["units"] == "1"
    assert ds.K_eff.dims == ("after_task", "synapse") and ds.K_eff.attrs["long_name"]
    np.testing.assert_array_equal(ds.K_eff.values, [[2.0, np.nan, np.nan], [2.0, 2.0, np.nan]])
    np.testing.assert_array_equal(ds.calibrated_open_rate.values[1], [0.5, 0.5, np.nan])
    np.testing.assert_array_equal(ds.gate_open_rate.values[1, :2, :2], np.eye(2))
    assert np.isnan(ds.gate_open_rate.values[0, 1:]).all()
    assert ds.attrs["gate"] == "ngai" and ds.attrs["rule_K"] == 2.0
    assert json.loads(ds.attrs["config"]) == {"run": {"seed": 1}}
    assert ds.attrs["Conventions"].startswith("CF-") and "package_version" in ds.attrs


def test_truncate_drops_tasks_beyond_the_checkpoint(tmp_path):
    path = tmp_path / "synapses.nc"
    log = SynapseLog(path, N_TASKS, log_attrs("mlp", {}, {}))
    for t, offset in ((0, 0), (1, 8), (2, 14)):
        append(log, t, offset, 3)
    log.truncate(2)
    ds = io.load(path)
    assert ds.after_task.values.tolist() == [0, 1] and set(ds.task.values) == {0, 1}
    append(log, 2, 14, 3)  # and it still grows
    assert io.load(path).sizes["after_task"] == 3
    log.truncate(0)
    assert not path.exists()
