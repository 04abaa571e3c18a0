"""Nothing in a model directory runs as code unless the config allows it: pickle weights are
refused (and, when allowed, go through torch.load(weights_only=True), which a malicious pickle
cannot get past), and a config's custom code (auto_map) is never imported by default."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file

from xstilts.errors import UserError
from xstilts.models.sources import LoadPolicy, load_encoder, load_masked_lm

PICKLES = LoadPolicy(allow_pickle_weights=True)


def pickle_copy(tiny_model: Path, out: Path) -> Path:
    """`tiny_model` with its weights as pytorch_model.bin (a state-dict pickle) instead of safetensors."""
    shutil.copytree(tiny_model, out)
    state = load_file(out / "model.safetensors")
    (out / "model.safetensors").unlink()
    torch.save(state, out / "pytorch_model.bin")
    return out


class Payload:
    """Unpickling this creates `marker`: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_weights_refused_by_default(tiny_model, tmp_path):
    model_dir = pickle_copy(tiny_model, tmp_path / "bin")
    with pytest.raises(UserError) as error:
        load_encoder(str(model_dir), tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert message == (
        f"model {str(model_dir)!r}: weights are pickle files (pytorch_model.bin); pickle can run code. Convert to "
        "safetensors, or set allow_pickle_weights: true to load them with torch.load(weights_only=True)"
    )


def test_pt_file_refused_by_default(tiny_model, tmp_path):
    model_dir = pickle_copy(tiny_model, tmp_path / "pt")
    (model_dir / "pytorch_model.bin").rename(model_dir / "weights.pt")
    with pytest.raises(UserError, match=r"weights are pickle files \(weights\.pt\)"):
        load_encoder(str(model_dir), tmp_path)


def test_pickle_weights_load_with_the_flag(tiny_model, tmp_path):
    model_dir = pickle_copy(tiny_model, tmp_path / "bin")
    encoder, _ = load_encoder(str(model_dir), tmp_path, policy=PICKLES)
    reference, _ = load_encoder(str(tiny_model), tmp_path)
    loaded, expected = encoder.state_dict(), reference.state_dict()
    assert loaded.keys() == expected.keys()
    # The pooler is not in the masked-LM checkpoint: transformers initialises it at random.
    assert all(torch.equal(loaded[key], expected[key]) for key in expected if not key.startswith("pooler."))


def test_masked_lm_start_takes_the_flag(tiny_model, tmp_path):
    model_dir = pickle_copy(tiny_model, tmp_path / "bin")
    with pytest.raises(UserError, match="weights are pickle files"):
        load_masked_lm(str(model_dir), tmp_path)
    _, _, head, reason = load_masked_lm(str(model_dir), tmp_path, policy=PICKLES)
    assert head is not None, reason


def test_trainer_leftovers_are_not_weights(tiny_model, tmp_path):
    """A Trainer's training_args.bin next to model.safetensors is never read: no refusal."""
    model_dir = tmp_path / "trained"
    shutil.copytree(tiny_model, model_dir)
    torch.save({"lr": 1e-3}, model_dir / "training_args.bin")
    encoder, _ = load_encoder(str(model_dir), tmp_path)
    assert encoder.config.hidden_size == 64


def test_malicious_pickle_never_runs_even_with_the_flag(tiny_model, tmp_path):
    model_dir = pickle_copy(tiny_model, tmp_path / "evil")
    marker = tmp_path / "pwned"
    state = torch.load(model_dir / "pytorch_model.bin", weights_only=True)
    state["payload"] = Payload(marker)
    torch.save(state, model_dir / "pytorch_model.bin")
    for policy in (LoadPolicy(), PICKLES):
        with pytest.raises(UserError) as error:
            load_encoder(str(model_dir), tmp_path, policy=policy)
        assert "\n" not in str(error.value)
    assert "refused by torch.load(weights_only=True) (WeightsUnpickler error: Unsupported global" in str(error.value)
    assert not marker.exists()


def remote_code_model(tiny_model: Path, out: Path, model_type: str | None) -> tuple[Path, Path]:
    """`tiny_model` whose config.json maps AutoModel to a module in the directory that, when
    imported, creates a marker file; `model_type` replaces the config's (None: keep bert)."""
    shutil.copytree(tiny_model, out)
    marker = out.parent / f"imported-{out.name}"
    (out / "custom_modeling.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
        "from transformers import BertConfig, BertModel\n"
        "class CustomConfig(BertConfig):\n    model_type = 'xstilts-custom'\n"
        "class CustomModel(BertModel):\n    config_class = CustomConfig\n"
    )
    config = json.loads((out / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "custom_modeling.CustomConfig", "AutoModel": "custom_modeling.CustomModel"}
    if model_type:
        config["model_type"] = model_type
    (out / "config.json").write_text(json.dumps(config))
    return out, marker


@pytest.mark.parametrize("model_type", [None, "xstilts-custom"], ids=["known-type", "unknown-type"])
def test_custom_code_is_not_imported_by_default(tiny_model, tmp_path, model_type):
    model_dir, marker = remote_code_model(tiny_model, tmp_path / "custom", model_type)
    with pytest.raises(UserError) as error:
        load_encoder(str(model_dir), tmp_path)
    # A model_type transformers knows gets xstilts' own refusal (transformers would quietly
    # substitute its built-in class); an unknown one, transformers' refusal in one line.
    where = "config.json" if model_type is None else "config"
    assert str(error.value) == (
        f"model {str(model_dir)!r}: its {where} asks to run the model's own Python code (auto_map); "
        "set trust_remote_code: true to run it"
    )
    assert not marker.exists()
    assert not any("custom_modeling" in name for name in sys.modules)


def test_custom_code_runs_when_trusted(tiny_model, tmp_path):
    model_dir, marker = remote_code_model(tiny_model, tmp_path / "trusted", "xstilts-custom")
    encoder, _ = load_encoder(str(model_dir), tmp_path, policy=LoadPolicy(trust_remote_code=True))
    assert type(encoder).__name__ == "CustomModel"
    assert marker.exists()


def test_custom_tokenizer_code_is_refused(tiny_model, tmp_path):
    model_dir = tmp_path / "custom-tokenizer"
    shutil.copytree(tiny_model, model_dir)
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": [None, "custom_tokenization.CustomTokenizer"]}
    (model_dir / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=r"its tokenizer_config\.json asks to run the model's own Python code"):
        load_encoder(str(model_dir), tmp_path)


def test_the_config_flag_reaches_a_runs_start_model(nli_fixture, tiny_model, tmp_path):
    from rich.console import Console

    from xstilts.config.loading import load_config
    from xstilts.config.schema import HandOff
    from xstilts.experiments.phases import RunContext, load_start
    from xstilts.experiments.store import ResultsStore
    from xstilts.tasks.registry import load_registry

    base = {
        "name": "pickles", "model": str(pickle_copy(tiny_model, tmp_path / "bin")),
        "task_specs": [str(nli_fixture["spec"])], "data": {"toy-xnli": str(nli_fixture["xnli"])},
        "target": {"task": "toy-xnli"},
    }

    def start(overrides: list[str]):
        config = load_config(None, overrides, base=base)
        ctx = RunContext("run", config, load_registry(config.task_specs), ResultsStore(tmp_path / "store"),
                         tmp_path, torch.device("cpu"), Console(quiet=True))
        return load_start(config.model, HandOff.ENCODER_ONLY, {}, ctx, dropout=0.0)

    with pytest.raises(UserError, match="set allow_pickle_weights: true"):
        start([])
    assert start(["allow_pickle_weights=true"]).model.hidden_size == 64


def test_a_directory_without_weights_is_not_called_pickle(tiny_model, tmp_path):
    model_dir = tmp_path / "empty"
    shutil.copytree(tiny_model, model_dir)
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(UserError) as error:
        load_encoder(str(model_dir), tmp_path)
    assert "pickle" not in str(error.value)
    assert str(error.value).startswith(f"model {str(model_dir)!r}: cannot load (")


def test_a_hub_model_without_safetensors_is_refused_as_pickle(tiny_model, tmp_path, monkeypatch):
    """transformers' own refusal under use_safetensors=True (a hub repo with .bin weights only)
    becomes the pickle message; the hub is stood in for by a model class that raises it."""
    import xstilts.models.sources as sources

    class HubWithBinOnly:
        @staticmethod
        def from_pretrained(source, **kwargs):
            assert kwargs["use_safetensors"] is True and kwargs["trust_remote_code"] is False
            raise OSError(f"{source} does not appear to have a file named model.safetensors or "
                          "model.safetensors.index.json and thus cannot be loaded with `safetensors`. "
                          "Please do not set `use_safetensors=True`.")

    class HubConfig:
        @staticmethod
        def from_pretrained(source, **kwargs):
            return transformers.AutoConfig.from_pretrained(str(tiny_model))

    monkeypatch.setattr(sources, "AutoModel", HubWithBinOnly)
    monkeypatch.setattr(sources, "AutoConfig", HubConfig)
    with pytest.raises(UserError) as error:
        load_encoder("org/old-model", tmp_path)
    assert str(error.value) == (
        "model 'org/old-model': weights are pickle files (the hub has no safetensors file); pickle can run code. "
        "Convert to safetensors, or set allow_pickle_weights: true to load them with torch.load(weights_only=True)"
    )


@pytest.mark.slow
def test_the_cli_prints_the_refusal_as_one_line_and_exits_2(tiny_model, nli_fixture, tmp_path, monkeypatch, capsys):
    from clitools import run

    model_dir = pickle_copy(tiny_model, tmp_path / "bin")
    args = ("eval", "--model", model_dir, "--task", "toy-xnli", "--data-dir", nli_fixture["xnli"], "--languages", "en",
            f"task_specs=[{nli_fixture['spec']}]", "--store", tmp_path / "store")
    code, _, err = run(monkeypatch, capsys, *args)
    assert code == 2
    assert [line for line in err.splitlines() if line.strip()] == [
        f"error: model {str(model_dir)!r}: weights are pickle files (pytorch_model.bin); pickle can run code. Convert to "
        "safetensors, or set allow_pickle_weights: true to load them with torch.load(weights_only=True)"
    ]
    # With the flag the model loads; the sweep then stops for want of a trained head (a bare model).
    code, _, err = run(monkeypatch, capsys, *args, "allow_pickle_weights=true")
    assert "pickle" not in err and "has no trained pair_classification head" in err
