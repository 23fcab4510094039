from pathlib import Path

import pytest
import yaml

from atlas.config import Config, load_config
from atlas.errors import AtlasError, ConfigError
from atlas.store import CONFIG_RECORD, record_config

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_demo_config_validates_into_typed_sections():
    config = load_config(ROOT / "configs" / "demo.yaml")
    assert config.model.arch == "atlas.demo.net:DemoCNN"
    assert config.model.mean == (0.5, 0.5, 0.5)
    assert isinstance(config.train.epochs, int)
    assert config.data.image_size == 64


def test_unknown_key_is_named_with_suggestion(tmp_path):
    path = write(tmp_path, "model: {arch: resnet18}\ntrain:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "unknown key train.epoch" in message
    assert "did you mean epochs" in message
    assert "\n" not in message


def test_unknown_section_lists_valid_sections(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key trian .*did you mean train"):
        load_config(write(tmp_path, "trian: {}\n"))


def test_wrong_type_names_the_key_and_value(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.epochs: .*integer.*'many'"):
        load_config(write(tmp_path, "train: {epochs: many}\n"))


def test_malformed_yaml_gives_position(tmp_path):
    with pytest.raises(ConfigError, match=r"malformed YAML at line 3, column 2"):
        load_config(write(tmp_path, "train:\n  epochs: 3\n bad indent: 1\n"))


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_missing_file_is_an_atlas_error(tmp_path):
    with pytest.raises(AtlasError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_dotted_overrides_parse_yaml_values(tmp_path):
    path = write(tmp_path, "model: {arch: resnet18}\n")
    config = load_config(
        path,
        [
            "train.epochs=3",
            "model.mean=[0.1, 0.2, 0.3]",
            "train.augment=false",
            "model.weights=a.pt",
        ],
    )
    assert config.train.epochs == 3
    assert config.model.mean == (0.1, 0.2, 0.3)
    assert config.train.augment is False
    assert config.model.weights == "a.pt"


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("train.epochs", "not of the form"),
        ("model.arch.name=x", "model.arch is a value"),
        ("train.epochz=3", "unknown key train.epochz"),
        ("train.lr=-1", "train.lr: .*greater than 0"),
    ],
)
def test_bad_overrides_are_config_errors(tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, "model: {arch: resnet18}\n"), [override])


def test_section_hash_depends_only_on_named_sections():
    base = Config.model_validate({"model": {"arch": "resnet18"}})
    other_train = Config.model_validate({"model": {"arch": "resnet18"}, "train": {"epochs": 2}})
    assert base.section_hash("data") == other_train.section_hash("data")
    assert base.section_hash("train") != other_train.section_hash("train")
    assert base.section_hash() != other_train.section_hash()


def test_recorded_config_reloads_to_the_same_sections(tmp_path):
    config = load_config(ROOT / "configs" / "demo.yaml", ["train.epochs=2"])
    record_config(tmp_path, config.record("model", "train"), store=False)
    text = (tmp_path / CONFIG_RECORD).read_text()
    assert config.section_hash("model", "train") in text
    recorded = yaml.safe_load(text)
    assert set(recorded) == {"model", "train"}
    assert Config.model_validate(recorded).train == config.train
