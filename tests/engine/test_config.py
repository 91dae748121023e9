from dataclasses import dataclass
from pathlib import Path

import pytest

from pcseg.engine.config import load_config, parse_overrides
from pcseg.errors import ConfigError


@dataclass
class Recipe:
    lr: float = 0.1
    epochs: int = 3
    name: str = "run"
    widths: list[int] | None = None
    cuda: bool = False


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("lr: 0.5\nwidths: [32, 64]\n")
    cfg = load_config(Recipe, path, ["epochs=7", "name=abc", "cuda=true"])
    assert cfg == Recipe(lr=0.5, epochs=7, name="abc", widths=[32, 64], cuda=True)
    assert parse_overrides(["a=1", "b=x"]) == {"a": 1, "b": "x"}


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("lr: 0.5\nepcohs: 3\n")
    with pytest.raises(ConfigError, match=r"r.yaml: unknown key 'epcohs' \(did you mean 'epochs'\?\)") as e:
        load_config(Recipe, path)
    assert "'cuda'" not in str(e.value)  # the closest key, not all of them


def test_an_override_is_blamed_on_the_command_line_not_the_file(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("lr: 0.5\n")
    with pytest.raises(ConfigError, match=r"^command-line override: unknown key 'epoch' \(did you mean 'epochs'\?\)") as e:
        load_config(Recipe, path, ["epoch=3"])
    assert "r.yaml" not in str(e.value)
    with pytest.raises(ConfigError, match=r"^command-line override: epochs: expected int"):
        load_config(Recipe, path, ["epochs=x"])
    with pytest.raises(ConfigError, match=r"unknown key 'zzz'(?! \(did)"):
        load_config(Recipe, path, ["zzz=1"])


def test_exponent_floats_without_a_dot_are_floats(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("lr: 1e-3\n")  # YAML 1.1 reads this as a string
    assert load_config(Recipe, path, []).lr == 0.001
    assert load_config(Recipe, None, ["lr=5e-4"]).lr == 0.0005
    with pytest.raises(ConfigError, match="lr: expected float"):
        load_config(Recipe, None, ["lr=fast"])


def test_broken_yaml_in_an_override_is_a_config_error():
    with pytest.raises(ConfigError, match=r"override 'widths=\[32,64': the value is not valid YAML"):
        parse_overrides(["widths=[32,64"])


@pytest.mark.parametrize("override, message", [
    ("epochs=1.5", "epochs: expected int"), ("cuda=3", "cuda: expected bool"),
    ("widths=5", "widths: expected a list"), ("lr", "expected key=value"),
])
def test_bad_values(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Recipe, None, [override])


def test_missing_and_non_mapping_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Recipe, tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="flat mapping"):
        load_config(Recipe, path)


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_with_its_checks(path):
    from pcseg.apps.compare import CompareConfig
    from pcseg.apps.demo import DemoConfig
    from pcseg.pipelines import load_recipe

    if path.stem == "demo":
        load_config(DemoConfig, path)
    elif path.stem.startswith("compare"):
        load_config(CompareConfig, path)
    else:
        pipeline, recipe = load_recipe(path)
        assert pipeline.name in ("bottomup", "grid", "maskrcnn2d") and recipe.out_dir
