"""artsy.config: defaults, YAML loading, dotted overrides, validation, atomic round trip."""

import dataclasses
import os
from pathlib import Path

import pytest
import yaml

from artsy import config as C
from artsy.config import Config, apply_overrides, dump_yaml, from_dict, load_config, to_dict
from artsy.errors import ConfigError

FIXTURE = Path(__file__).parent / "fixtures" / "config_minimal.yaml"


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    return msg


def test_defaults_follow_method_md():
    c = Config()
    assert (c.data.name, c.data.image_size, c.data.init_cls, c.data.increment) == (
        "cifar100", 224, 10, 10)
    assert (c.data.class_order, c.data.seed, c.data.tiny_protocol) == ("seed", 1993, "b100")
    assert c.data.max_per_class_train is None and c.data.cache_dir is None
    assert c.backbone.name == "vit_base_patch16_224_in21k" and c.backbone.pretrained is True
    assert c.backbone.checkpoint is None and c.backbone.model_kwargs == {}
    assert (c.adapter.r, c.adapter.scale, c.adapter.dropout) == (64, 0.1, 0.1)
    t = c.train
    assert (t.epochs, t.batch_size, t.lr, t.momentum, t.weight_decay, t.min_lr) == (
        20, 48, 0.025, 0.9, 5e-4, 0.0)
    assert (t.optimizer, t.scheduler, t.device, t.amp) == ("sgd", "cosine", "auto", "bf16")
    s = c.synapse
    assert (s.gate, s.hidden, s.epochs, s.lr, s.batch_size, s.thr) == (
        "ngai", 256, 2, 1e-3, 256, 0.5)
    assert (s.negatives, s.retrain, s.fallback) == ("cache", "all", "argmax")
    assert s.record_every is None  # the synapse log keeps at most ~500 rows per task
    assert (s.ngai.depolarisation, s.ngai.target_open_rate, s.ngai.delta_ms) == (
        "prototype_share", 0.9, None)  # None: the rule's own window, the calcium peak time
    p = c.prototypes
    assert (p.alpha, p.divide_alpha_by_tasks, p.beta) == (0.1, True, 0.0)
    assert (c.run.out_dir, c.run.seed, c.run.eval_batch_size, c.run.save_checkpoints) == (
        "runs", 1993, 128, True)
    assert c.seeds == [1993, 1994, 1995]
    assert from_dict({}) == c and from_dict(None) == c


def test_named_configs_are_package_data():
    assert Path(str(C.CONFIG_DIR)) == Path(__file__).resolve().parents[2] / "artsy" / "configs"
    assert {"cifar100", "demo", "tiny-synthetic"} <= set(C.config_names())


def test_load_by_path_fills_defaults():
    c = load_config(FIXTURE)
    assert c.data.name == "synthetic" and c.data.synthetic.n_classes == 6
    assert c.data.synthetic.train_per_class == 50  # omitted: default
    assert c.backbone.pretrained is False and c.backbone.model_kwargs["embed_dim"] == 48
    assert c.train.epochs == 1 and c.train.lr == 1e-3 and isinstance(c.train.lr, float)
    assert c.train.batch_size == 48 and c.synapse.gate == "mlp"
    assert c.synapse.ngai.target_open_rate == 0.8 and c.synapse.ngai.delta_ms is None
    assert c.run.name == "tiny" and c.seeds == [1, 2] and c.adapter == C.AdapterConfig()
    assert load_config(str(FIXTURE)) == c


def test_load_by_name_from_configs(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "CONFIG_DIR", tmp_path)
    (tmp_path / "demo.yaml").write_text("train: {epochs: 3}\n")
    (tmp_path / "cifar100.yaml").write_text("data: {name: cifar100}\n")
    assert load_config("demo").train.epochs == 3
    assert load_config("cifar100") == Config()
    with pytest.raises(ConfigError, match=r"no config named 'demoo': expected .*demoo.yaml "
                                          r"\(available: cifar100, demo\)") as e:
        load_config("demoo")
    one_line(e)
    with pytest.raises(ConfigError, match=r"config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_an_empty_file_is_refused_and_empty_sections_are_defaults(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    (tmp_path / "sections.yaml").write_text("train:\nsynapse:\n  ngai:\n")
    with pytest.raises(ConfigError, match=r"empty.yaml is empty: give the keys"):
        load_config(tmp_path / "empty.yaml")  # not silently the cifar100 defaults
    assert load_config(tmp_path / "sections.yaml") == Config()


def test_overrides_apply_in_order_and_parse_yaml_values():
    base = load_config(FIXTURE)
    c = apply_overrides(base, [
        "train.epochs=5", "train.epochs=7", "train.lr=0.05", "synapse.gate=none",
        "data.class_order=[2, 0, 1]", "data.max_per_class_train=10", "backbone.checkpoint=null",
        "backbone.model_kwargs.depth=4", "backbone.model_kwargs.extra.x=1",
        "synapse.ngai.delta_ms=null", "run.save_checkpoints=false", "seeds=[7]",
        "run.name=a=b", "data.root=/data/x:y"])
    assert c.train.epochs == 7 and c.train.lr == 0.05 and c.synapse.gate == "none"
    assert c.data.class_order == [2, 0, 1] and c.data.max_per_class_train == 10
    assert c.backbone.model_kwargs == {"img_size": 32, "patch_size": 4, "depth": 4,
                                       "embed_dim": 48, "num_heads": 3, "extra": {"x": 1}}
    assert c.synapse.ngai.delta_ms is None and c.run.save_checkpoints is False
    assert c.seeds == [7] and c.run.name == "a=b" and c.data.root == "/data/x:y"
    assert base.train.epochs == 1  # the input is not mutated
    c = apply_overrides(base, ["train={epochs: 3, batch_size: 8}", "data.synthetic={noise: 0}"])
    assert (c.train.epochs, c.train.batch_size, c.train.lr) == (3, 8, 1e-3)
    assert c.data.synthetic.noise == 0.0 and c.data.synthetic.n_classes == 6
    assert load_config(FIXTURE, ["train.epochs=9"]).train.epochs == 9


@pytest.mark.parametrize("override, message", [
    ("train.lr_rate=0.1", "unknown config key 'train.lr_rate': did you mean 'train.lr'?"),
    ("train.epoch=3", "unknown config key 'train.epoch': did you mean 'train.epochs'?"),
    ("trian.lr=3", "unknown config key 'trian.lr': did you mean 'train.lr'?"),
    ("synapse.ngia.delta_ms=3",
     "unknown config key 'synapse.ngia.delta_ms': did you mean 'synapse.ngai.delta_ms'?"),
    ("data.batchsize=3", "unknown config key 'data.batchsize': valid keys in 'data' are name, "),
    ("seed=3", "unknown config key 'seed': did you mean 'seeds'?"),
    ("train.lr.x=3", "config key 'train.lr' is a value, not a section: cannot set 'train.lr.x'"),
    ("train=3", "config key 'train' is a section: set its fields"),
    ("train.lr", "override 'train.lr' must look like key.sub=value"),
    ("=3", "override '=3' must look like key.sub=value"),
])
def test_bad_override_keys(override, message):
    with pytest.raises(ValueError) as e:
        apply_overrides(Config(), [override])
    assert one_line(e).startswith(message)


@pytest.mark.parametrize("override, message", [
    ("train.epochs=abc", "config key 'train.epochs': expected an integer, got 'abc' (str)"),
    ("train.epochs=2.5", "config key 'train.epochs': expected an integer, got 2.5 (float)"),
    ("train.epochs=true", "config key 'train.epochs': expected an integer, got True (bool)"),
    ("train.lr=fast", "config key 'train.lr': expected a finite number, got 'fast' (str)"),
    ("adapter.scale=.inf", "config key 'adapter.scale': expected a finite number, got inf (float)"),
    ("train.lr=nan", "config key 'train.lr': expected a finite number, got 'nan' (str)"),
    ("backbone.pretrained=maybe",
     "config key 'backbone.pretrained': expected true or false, got 'maybe' (str)"),
    ("run.name=123", "config key 'run.name': expected a string, got 123 (int)"),
    ("seeds=5", "config key 'seeds': expected a list of integers, got 5 (int)"),
    ("seeds=[1, x]", "config key 'seeds[1]': expected an integer, got 'x' (str)"),
    ("data.max_per_class_test=many",
     "config key 'data.max_per_class_test': expected an integer or null, got 'many' (str)"),
    ("data.class_order=random", "config key 'data.class_order': expected one of 'seed', "
                                "'identity' or a list of integers, got 'random' (str)"),
    ("backbone.model_kwargs=[1]",
     "config key 'backbone.model_kwargs': expected a mapping, got [1] (list)"),
])
def test_type_errors_name_key_value_and_type(override, message):
    with pytest.raises(ConfigError) as e:
        apply_overrides(Config(), [override])
    assert one_line(e) == message


@pytest.mark.parametrize("override, allowed", [
    ("synapse.gate=random", "'ngai', 'none', 'mlp', 'oracle'"),
    ("synapse.negatives=replay", "'cache', 'gaussian'"),
    ("synapse.retrain=old", "'all', 'new_only'"),
    ("synapse.ngai.depolarisation=spike", "'prototype_share', 'own_prototype'"),
    ("data.name=cifar20", "'cifar100', 'cifar10', 'tinyimagenet', 'imagefolder', 'synthetic', "
                          "'digits'"),
    ("data.tiny_protocol=b50", "'b100', 'b0'"),
    ("train.optimizer=lbfgs", "'sgd', 'adam', 'adamw'"),
    ("train.amp=fp8", "'bf16', 'fp16', 'none'"),
])
def test_enumerations_are_validated(override, allowed):
    with pytest.raises(ConfigError, match="expected one of " + allowed) as e:
        apply_overrides(Config(), [override])
    one_line(e)


@pytest.mark.parametrize("override, match", [
    ("train.epochs=-1", r"'train.epochs': expected a value >= 0, got -1"),
    ("train.batch_size=0", r"'train.batch_size': expected a value >= 1, got 0"),
    ("adapter.dropout=1.5", r"'adapter.dropout': expected a value in \[0.0, 1.0\], got 1.5"),
    ("synapse.thr=-0.1", r"'synapse.thr': expected a value in \[0.0, 1.0\]"),
    ("train.lr=-0.1", r"'train.lr': expected a value >= 0.0, got -0.1"),
    ("data.max_per_class_train=0", r"'data.max_per_class_train': expected a value >= 1"),
    ("train.device=gpu", r"'train.device': expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("data.class_order=[0, 2]", r"'data.class_order': class order must be a permutation of "
                                r"range\(2\), got 2 entries with invalid ids \[2\], missing \[1\]"),
    ("seeds=[]", r"'seeds': expected a non-empty list"),
])
def test_ranges_and_consistency(override, match):
    with pytest.raises(ConfigError, match=match) as e:
        apply_overrides(Config(), [override])
    one_line(e)


def test_valid_devices():
    for device in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        assert apply_overrides(Config(), [f"train.device={device}"]).train.device == device


def test_tiny_protocol_must_match_the_split():
    tiny = ["data.name=tinyimagenet"]
    assert apply_overrides(Config(), tiny + ["data.init_cls=100", "data.increment=20"])
    assert apply_overrides(Config(), tiny + ["data.tiny_protocol=b0", "data.init_cls=20",
                                             "data.increment=20"])
    with pytest.raises(ConfigError, match=r"tiny_protocol='b100' needs data.init_cls=100 \(got "
                                          r"10\)"):
        apply_overrides(Config(), tiny)
    with pytest.raises(ConfigError, match=r"tiny_protocol='b0' needs data.init_cls == "
                                          r"data.increment \(got 100 and 20\)"):
        apply_overrides(Config(), tiny + ["data.tiny_protocol=b0", "data.init_cls=100",
                                          "data.increment=20"])


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'train.lr_rate': did you "
                                          r"mean 'train.lr'\?") as e:
        load_config(bad)
    one_line(e)
    bad.write_text("trian:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'trian': did you mean 'train'\?"):
        load_config(bad)
    bad.write_text("train:\n  epochs: [1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML: ") as e:
        load_config(bad)
    one_line(e)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"a config file must be a mapping of keys to values"):
        load_config(bad)
    bad.write_text("train: 5\n")
    with pytest.raises(ConfigError, match=r"config key 'train' must be a mapping"):
        load_config(bad)
    bad.write_text("synapse: {gate: magic}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: config key 'synapse.gate': expected one of"):
        load_config(bad)


def test_dump_and_load_round_trip(tmp_path):
    c = apply_overrides(load_config(FIXTURE), [
        "data.class_order=[5, 4, 3, 2, 1, 0]", "synapse.ngai.delta_ms=null", "train.lr=1e-5",
        "data.cache_dir=/tmp/c", "synapse.gate=none",
        "train.amp=none"])
    out = dump_yaml(c, tmp_path / "run" / "config.yaml")
    assert out == tmp_path / "run" / "config.yaml"
    assert load_config(out) == c
    assert yaml.safe_load(out.read_text()) == to_dict(c)
    assert list(yaml.safe_load(out.read_text())) == [f.name for f in dataclasses.fields(Config)]
    assert load_config(dump_yaml(Config(), tmp_path / "d.yaml")) == Config()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.yaml"]


def test_dump_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    dump_yaml(Config(), path)
    before = path.read_text()

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(C.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        dump_yaml(apply_overrides(Config(), ["train.epochs=1"]), path)
    assert path.read_text() == before  # the old file is intact
    assert os.listdir(tmp_path) == ["config.yaml"]  # and no temp file is left


def test_every_field_has_a_supported_type():
    """A new field with a type the converter does not know would fail here, not in a run."""
    for key in C._all_keys():
        value = to_dict(Config())
        for part in key.split("."):
            value = value[part]
        if not isinstance(value, dict):
            assert apply_overrides(Config(), [f"{key}={yaml.safe_dump(value).strip()}"]) \
                == Config(), key


def test_a_run_config_written_before_the_removed_keys_still_loads(tmp_path):
    """config.yaml of older runs holds synapse.input: h0 and prototypes.fusion: concat."""
    old = to_dict(load_config("tiny-synthetic"))
    old["synapse"]["input"], old["prototypes"]["fusion"] = "h0", "concat"
    old["synapse"]["ngai"]["delta_ms"] = 42.4  # the value such runs were made with
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    cfg = load_config(path)
    assert cfg.synapse.ngai.delta_ms == 42.4 and cfg == apply_overrides(
        load_config("tiny-synthetic"), ["synapse.ngai.delta_ms=42.4"])
    old["prototypes"]["fusion"] = "additive"  # never worked: still an unknown key
    path.write_text(yaml.safe_dump(old))
    with pytest.raises(ConfigError, match="unknown config key 'prototypes.fusion'"):
        load_config(path)


def test_seeds_are_distinct():
    with pytest.raises(ConfigError, match=r"config key 'seeds': each seed once, got \[1, 1\]"):
        apply_overrides(Config(), ["seeds=[1, 1]"])


def test_a_run_config_without_a_later_key_keeps_the_behaviour_of_its_day(tmp_path):
    """Runs written before synapse.ngai.pre existed used the MLP release; resume keeps it."""
    old = to_dict(load_config("tiny-synthetic"))
    del old["synapse"]["ngai"]["pre"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    assert C.load_run_config(path).synapse.ngai.pre == "mlp"
    assert load_config(path).synapse.ngai.pre == "ridge"  # a user's own file takes the default
    dump_yaml(load_config("tiny-synthetic"), path)
    assert C.load_run_config(path).synapse.ngai.pre == "ridge"  # written today: as written
