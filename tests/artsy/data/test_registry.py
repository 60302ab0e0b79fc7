"""artsy.data.registry: one spec per dataset, filed under its name; loading, dry-run shapes and
config checks go through it."""

import dataclasses

import numpy as np
import pytest

from artsy.config import Config, DataConfig, SyntheticConfig, apply_overrides
from artsy.data import DATASETS, dataset_shape, dataset_spec, load_source
from artsy.errors import ConfigError, DataError

from .cifar_fixtures import one_line


@pytest.fixture
def fixture_configs(cifar, cifar10, tiny, folder):
    """A DataConfig per registered dataset, on the smallest fixture of its layout."""
    return {"cifar100": DataConfig(name="cifar100", root=str(cifar[0])),
            "cifar10": DataConfig(name="cifar10", root=str(cifar10[0])),
            "tinyimagenet": DataConfig(name="tinyimagenet", root=str(tiny)),
            "imagefolder": DataConfig(name="imagefolder", root=str(folder)),
            "synthetic": DataConfig(name="synthetic", root=None, synthetic=SyntheticConfig(
                n_classes=3, train_per_class=4, test_per_class=2, image_size=8)),
            "digits": DataConfig(name="digits", root=None)}


def test_the_registered_datasets():
    assert list(DATASETS) == ["cifar100", "cifar10", "tinyimagenet", "imagefolder", "synthetic",
                              "digits"]


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_spec_is_filed_under_its_name_and_loads(name, fixture_configs):
    spec = DATASETS[name]
    assert spec.name == name and dataset_spec(name) is spec
    assert set(spec.config_keys) <= {f.name for f in dataclasses.fields(DataConfig)}
    src = load_source(fixture_configs[name])
    assert src.name == name and src.n_classes == len(src.class_names) > 1
    assert len(src.train) > 0 and len(src.test) > 0
    img, y = src.train[0]
    assert img.mode == "RGB" and 0 <= y < src.n_classes


def test_every_dataset_has_a_fixture_here(fixture_configs):
    assert set(fixture_configs) == set(DATASETS)


def test_only_cifar_downloads_and_only_generated_data_needs_no_root():
    assert [n for n, s in DATASETS.items() if s.downloadable] == ["cifar100", "cifar10"]
    assert [n for n, s in DATASETS.items() if not s.needs_root] == ["synthetic", "digits"]


@pytest.mark.parametrize("caps", [(None, None), (1, 1), (3, 1)])
@pytest.mark.parametrize("name", list(DATASETS))
def test_dataset_shape_agrees_with_the_loaded_source(name, caps, fixture_configs):
    cfg = dataclasses.replace(fixture_configs[name], max_per_class_train=caps[0],
                              max_per_class_test=caps[1])
    spec = DATASETS[name]
    n, train, test = dataset_shape(cfg)
    if spec.fixed_size:  # the official sizes, not the fixture's: no file is read
        n, train, test = dataset_shape(dataclasses.replace(cfg, root="/no/such/folder"))
        assert n == spec.n_classes
        assert train.tolist() == [min(spec.train_per_class, caps[0] or np.inf)] * n
        assert test.tolist() == [min(spec.test_per_class, caps[1] or np.inf)] * n
    else:
        src = load_source(cfg)
        assert n == src.n_classes
        assert train.tolist() == np.bincount(src.train.targets, minlength=n).tolist()
        assert test.tolist() == np.bincount(src.test.targets, minlength=n).tolist()


def test_load_source_reads_each_dataset(cifar, tiny, folder):
    assert load_source(DataConfig(name="cifar100", root=str(cifar[0]))).name == "cifar100"
    assert load_source(DataConfig(name="tinyimagenet", root=str(tiny))).name == "tinyimagenet"
    assert load_source(DataConfig(name="imagefolder", root=str(folder))).name == "imagefolder"
    assert load_source(DataConfig(name="synthetic", synthetic=SyntheticConfig(
        n_classes=4))).n_classes == 4
    assert set(DATASETS) == {"cifar100", "cifar10", "tinyimagenet", "imagefolder", "synthetic",
                             "digits"}


def test_load_source_errors():
    with pytest.raises(DataError, match=r"unknown dataset 'cifar20': expected one of cifar10, "
                                        r"cifar100, digits, imagefolder, synthetic, "
                                        r"tinyimagenet") as e:
        load_source(DataConfig(name="cifar20", root="/data"))
    one_line(e)
    with pytest.raises(DataError, match=r"unknown dataset 'cifar20'"):
        dataset_spec("cifar20")
    with pytest.raises(DataError, match=r"dataset 'cifar100' needs a root directory"):
        load_source(DataConfig(name="cifar100", root=None))


def test_registry_and_config_know_the_new_datasets(cifar10):
    assert {"cifar10", "digits"} <= set(DATASETS)
    assert load_source(DataConfig(name="cifar10", root=str(cifar10[0]))).name == "cifar10"
    for name in ("cifar10", "digits"):
        assert apply_overrides(Config(), [f"data.name={name}"]).data.name == name
    with pytest.raises(DataError, match=r"dataset 'cifar10' needs a root directory"):
        load_source(DataConfig(name="cifar10", root=None))


def test_config_accepts_exactly_the_registered_names():
    for name in DATASETS:
        split = ["data.init_cls=100", "data.increment=20"] if name == "tinyimagenet" else []
        assert apply_overrides(Config(), [f"data.name={name}", *split]).data.name == name
    with pytest.raises(ConfigError) as e:
        apply_overrides(Config(), ["data.name=cifar20"])
    assert one_line(e) == ("config key 'data.name': expected one of 'cifar100', 'cifar10', "
                           "'tinyimagenet', 'imagefolder', 'synthetic', 'digits', got 'cifar20' "
                           "(str)")


def test_config_runs_the_spec_check():
    """tinyimagenet's protocol rule lives in its spec and fires at config load time."""
    cfg = DataConfig(name="tinyimagenet", tiny_protocol="b0", init_cls=20, increment=10)
    with pytest.raises(ConfigError, match=r"tiny_protocol='b0' needs data.init_cls == "
                                          r"data.increment \(got 20 and 10\)"):
        DATASETS["tinyimagenet"].check(cfg)
    with pytest.raises(ConfigError, match=r"tiny_protocol='b0'"):
        apply_overrides(Config(), ["data.name=tinyimagenet", "data.tiny_protocol=b0",
                                   "data.init_cls=20", "data.increment=10"])
    DATASETS["tinyimagenet"].check(dataclasses.replace(cfg, increment=20))  # consistent: passes


def test_dataset_shape_of_a_dry_run(cifar10):
    cfg = apply_overrides(Config(), ["data.name=cifar10", f"data.root={cifar10[0]}"])
    n, train, test = dataset_shape(cfg.data)  # the official sizes: no file is read
    assert n == 10 and train.tolist() == [5000] * 10 and test.tolist() == [1000] * 10
    n, train, test = dataset_shape(apply_overrides(cfg, ["data.name=digits"]).data)
    assert n == 10 and train.sum() + test.sum() == 1797
