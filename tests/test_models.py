"""Model loading: the resolver's order and errors, open_clip from a weights file, config."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from loupe.base.config import Settings, load_settings
from loupe.base.errors import ConfigError, ModelNotFoundError
from loupe.indexer import Indexer
from loupe.store.image_table import ImageTable
from tests.conftest import SMVS, SROIE, holidays_files, load_model
from loupe.tools.models import Models
from loupe.tools.models.image_encoders import EfficientNetEncoder, imagenet_classes
from loupe.tools.models.open_clip_encoder import OpenClipEncoder
from loupe.tools.models.registry import ModelKind
from loupe.tools.models.resolver import ModelSource, resolve
from loupe.tools.records import MatchLabel
from loupe.tools.toolbox import Toolbox

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A randomly initialised open_clip model saved to disk: (config JSON, weights file)."""
    folder = tmp_path_factory.mktemp("tiny_clip")
    config = folder / "loupe-tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP), encoding="utf-8")
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("loupe-tiny-clip", pretrained=None)
    weights = folder / "tiny_clip.pt"
    torch.save(model.state_dict(), weights)
    return config, weights


def test_resolver_prefers_configured_path_and_names_a_missing_one(tmp_path: Path) -> None:
    present = tmp_path / "weights.bin"
    present.write_bytes(b"x")
    source = ModelSource(name="test weights", how_to_get="Get them from the vendor.", local_path=str(present),
                         hub_repo="org/model", hub_file="w.bin")
    assert resolve(source, offline=True) == present
    missing = dataclasses.replace(source, local_path=str(tmp_path / "nope.bin"))
    with pytest.raises(ModelNotFoundError, match=r"test weights: the configured path .*nope.bin does not exist. "
                                                 r"Get them from the vendor."):
        resolve(missing, offline=True)


def test_resolver_offline_reports_every_place_it_looked() -> None:
    source = ModelSource(name="CLIP ViT-B-32 weights", how_to_get="Run `huggingface-cli download x`.",
                         package=("no_such_package_xyz", lambda m: Path("/nope")),
                         hub_repo="laion/not-in-cache-xyz", hub_file="open_clip_pytorch_model.bin")
    with pytest.raises(ModelNotFoundError) as error:
        resolve(source, offline=True)
    message = str(error.value)
    for expected in ("CLIP ViT-B-32 weights not found", "no_such_package_xyz is not installed",
                     "cache has no laion/not-in-cache-xyz", "offline", "huggingface-cli download"):
        assert expected in message


def test_packaged_efficientnet_resolves_offline_and_knows_imagenet() -> None:
    encoder = EfficientNetEncoder("", offline=True)
    # Located without importing ultralytics, whose import patches PIL.Image.open for the whole process.
    assets = Path(importlib.util.find_spec("ultralytics").submodule_search_locations[0]) / "assets"
    bus = Image.open(assets / "bus.jpg")
    result = encoder.embed_images([bus])
    assert result.vectors.shape == (1, 1280)
    assert abs(float(np.linalg.norm(result.vectors[0])) - 1) < 1e-5
    assert result.labels[0][0][0] in {"minibus", "school bus", "trolleybus", "passenger car", "streetcar"}


def test_the_onnx_encoder_matches_pytorch_on_shared_images(models: Models, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pictures = [Image.open(p).convert("RGB") for p in
                [*holidays_files(6), SROIE / "images" / "000.jpg", next(SMVS.rglob("*.jpg"))]]
    onnx_encoder, torch_encoder = models.image_encoder, EfficientNetEncoder("", offline=True, runtime="torch")
    assert onnx_encoder.runtime == "onnx" and torch_encoder.runtime == "torch"  # the CPU default is ONNX
    expected, got = torch_encoder.embed_images(pictures), onnx_encoder.embed_images(pictures)
    assert float((expected.vectors * got.vectors).sum(axis=1).min()) >= 0.999
    assert [tags[0][0] for tags in got.labels] == [tags[0][0] for tags in expected.labels]
    # Exported once into the cache: a second encoder loads the same file instead of exporting again.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fresh = EfficientNetEncoder("", offline=True, runtime="onnx")
    (exported_file,) = (tmp_path / "loupe" / "models").glob("efficientnet-lite0-*.onnx")
    stamp = exported_file.stat().st_mtime_ns
    EfficientNetEncoder("", offline=True, runtime="onnx")
    assert exported_file.stat().st_mtime_ns == stamp and fresh.runtime == "onnx"


def test_the_shipped_imagenet_class_names_are_torchvision_s() -> None:
    from torchvision.models import ResNet50_Weights

    assert imagenet_classes() == ResNet50_Weights.IMAGENET1K_V1.meta["categories"]


def test_open_clip_pretrained_tag_offline_says_how_to_get_it() -> None:
    with pytest.raises(ModelNotFoundError, match="open_clip ViT-B-32 weights .*huggingface-cli download"):
        OpenClipEncoder("ViT-B-32", "laion2b_s34b_b79k", "", offline=True)


def test_open_clip_from_weights_file_indexes_and_searches_text_to_image(
        tiny_clip: tuple[Path, Path], models: Models, tmp_path: Path) -> None:
    config, weights = tiny_clip
    base = models.settings
    settings = dataclasses.replace(
        base, index_dir=tmp_path / "index",
        models=dataclasses.replace(base.models, image_encoder="open_clip:loupe-tiny-clip",
                                   image_encoder_weights=str(weights), image_encoder_config=str(config)),
    )
    clip_models = Models(settings)
    clip_models.__dict__["text_embedder"] = models.text_embedder  # reuse the loaded MiniLM
    clip_models.__dict__["ocr"] = models.ocr
    encoder = clip_models.image_encoder
    assert encoder.name == "open_clip:loupe-tiny-clip" and encoder.dim == 32 and encoder.has_text_tower
    saved = torch.load(weights, weights_only=True)
    loaded = encoder._model.state_dict()
    assert all(torch.equal(loaded[name], saved[name]) for name in saved)  # the file's weights, not a new init
    encoder.text_match_cosine = -1.0  # random weights: every cosine is near 0, so keep all hits

    folder = tmp_path / "photos"
    folder.mkdir()
    for path in holidays_files(3):
        shutil.copyfile(path, folder / path.name)
    table = ImageTable.open_or_create(settings.index_dir, clip_models.index_info())
    report = Indexer(settings, clip_models, table).run([folder])
    assert report.added == 3 and table.info.image_dim == 32
    row = table.find("true", limit=1)[0]
    assert row["caption_kind"] == "tags" and row["caption"]  # zero-shot ImageNet tags through the text tower

    toolbox = Toolbox(settings, clip_models)
    found = toolbox.image_search(image=folder / holidays_files(1)[0].name, k=3)
    assert found.records[0].match == MatchLabel.IDENTICAL
    text = toolbox.text_search("a photo of a lake", k=3)
    assert any("image-text" in r.why for r in text.records)  # the text tower searched the pixels


def test_config_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "loupe.toml"
    config.write_text('index_dir = "/data/idx"\n[models]\nocr = "rapidocr"\ntext_embedder = "x/y"\n'
                      '[llm]\nbackend = "openai"\n', encoding="utf-8")
    monkeypatch.setenv("LOUPE_TEXT_EMBEDDER", "all-MiniLM-L6-v2")
    settings = load_settings(config)
    assert settings.index_dir == Path("/data/idx")
    assert settings.models.text_embedder == "all-MiniLM-L6-v2"  # the environment wins
    assert settings.llm.backend == "openai"
    config.write_text("[models]\nimage_encodr = 'typo'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(config)
    config.write_text("[models\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config)


def test_unknown_model_names_are_config_errors() -> None:
    settings = Settings(models=dataclasses.replace(Settings().models, image_encoder="resnet-9000", ocr="magic"))
    with pytest.raises(ConfigError, match="unknown image encoder 'resnet-9000'"):
        Models(settings).image_encoder
    with pytest.raises(ConfigError, match="unknown OCR backend 'magic'"):
        Models(settings).ocr


def _tiny_blip(folder: Path) -> Path:
    """A randomly initialised BLIP captioner with a 12-word vocabulary, saved like a hub download."""
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    folder.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "photo", "of", "bus", "dog", "the"]
    (folder / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), bos_token="[DEC]")
    config = BlipConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 64, "patch_size": 16},
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "bos_token_id": 5, "pad_token_id": 0, "sep_token_id": 3},
        projection_dim=32,
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 64, "width": 64}),
                  tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_transformers_captioner_from_a_local_folder(tmp_path: Path, models: Models) -> None:
    folder = _tiny_blip(tmp_path / "tiny-blip")
    settings = dataclasses.replace(models.settings,
                                   models=dataclasses.replace(models.settings.models, captioner=f"hf:{folder}"))
    captioner = Models(settings).captioner
    caption = captioner.describe(Image.open(holidays_files(1)[0]), labels=None, ocr_lines=0)
    assert caption.kind == "caption" and isinstance(caption.text, str)
    assert set(caption.text.split()) <= {"a", "photo", "of", "bus", "dog", "the"}  # words of its vocabulary
    missing = dataclasses.replace(settings.models, captioner=f"hf:{tmp_path / 'no-such-model'}")
    with pytest.raises(ModelNotFoundError, match="captioning model .*does not exist"):
        Models(dataclasses.replace(settings, models=missing)).captioner


def test_openai_text_embedder_against_a_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.scripted_openai import ScriptedOpenAI

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelNotFoundError, match="needs an API key"):
        load_model(ModelKind.TEXT_EMBEDDER, "openai:text-embedding-3-small")
    with ScriptedOpenAI(embedding_dim=1536) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        embedder = load_model(ModelKind.TEXT_EMBEDDER, "openai:text-embedding-3-small")
        vectors = embedder.embed(["TOTAL 9.00", "total 9.00", "BOOK TA .K"])
    assert embedder.dim == 1536 and vectors.shape == (3, 1536)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.allclose(vectors[0], vectors[1]) and not np.allclose(vectors[0], vectors[2])
    [request] = server.requests
    assert request["path"] == "/v1/embeddings"
    assert request["body"]["model"] == "text-embedding-3-small"
    assert request["body"]["input"] == ["TOTAL 9.00", "total 9.00", "BOOK TA .K"]
    with pytest.raises(ConfigError, match="unknown OpenAI embedding model"):
        load_model(ModelKind.TEXT_EMBEDDER, "openai:text-embedding-9")


def test_openai_captioner_against_a_local_server(monkeypatch: pytest.MonkeyPatch, models: Models) -> None:
    import base64
    import io

    from tests.scripted_openai import ScriptedOpenAI

    settings = dataclasses.replace(models.settings,
                                   models=dataclasses.replace(models.settings.models, captioner="openai:gpt-4o-mini"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelNotFoundError, match="needs an API key"):
        Models(settings).captioner
    reply = {"role": "assistant", "content": " A lake with boats at dawn. "}
    with ScriptedOpenAI(chat_replies=[reply]) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        caption = Models(settings).captioner.describe(Image.open(holidays_files(1)[0]), None, 0)
    assert (caption.text, caption.kind) == ("A lake with boats at dawn.", "caption")
    [request] = server.requests
    assert request["path"] == "/v1/chat/completions" and request["body"]["model"] == "gpt-4o-mini"
    image_part = request["body"]["messages"][0]["content"][1]
    header, data = image_part["image_url"]["url"].split(",", 1)
    assert header == "data:image/jpeg;base64"
    assert Image.open(io.BytesIO(base64.b64decode(data))).format == "JPEG"
