"""The model registry: one parser for every model name, one factory per kind and family."""

from __future__ import annotations

import pytest

import loupe.agent.llm  # noqa: F401 - registers the LLM backends
from loupe.base.errors import ConfigError
from loupe.tools.models.registry import ModelKind, ModelSpec, families, parse

pytestmark = pytest.mark.fast  # no model is loaded: part of the fast tier


@pytest.mark.parametrize("kind, text, weights, spec", [
    (ModelKind.IMAGE_ENCODER, "efficientnet-lite0", "", ModelSpec(ModelKind.IMAGE_ENCODER, "efficientnet-lite0")),
    (ModelKind.IMAGE_ENCODER, "efficientnet-lite0@tuned.pt", "",
     ModelSpec(ModelKind.IMAGE_ENCODER, "efficientnet-lite0", "", "tuned.pt")),
    (ModelKind.IMAGE_ENCODER, "open_clip:ViT-B-32@clip.bin", "default.bin",
     ModelSpec(ModelKind.IMAGE_ENCODER, "open_clip", "ViT-B-32", "clip.bin")),
    (ModelKind.IMAGE_ENCODER, "open_clip:ViT-B-32", "laion2b",
     ModelSpec(ModelKind.IMAGE_ENCODER, "open_clip", "ViT-B-32", "laion2b")),
    (ModelKind.TEXT_EMBEDDER, "all-MiniLM-L6-v2", "", ModelSpec(ModelKind.TEXT_EMBEDDER, "all-MiniLM-L6-v2")),
    (ModelKind.TEXT_EMBEDDER, "thenlper/gte-base", "", ModelSpec(ModelKind.TEXT_EMBEDDER, "sentence-transformers",
                                                                 "thenlper/gte-base")),
    (ModelKind.TEXT_EMBEDDER, "openai:text-embedding-3-small", "",
     ModelSpec(ModelKind.TEXT_EMBEDDER, "openai", "text-embedding-3-small")),
    (ModelKind.OCR, "yolo+rapidocr@detector.pt", "", ModelSpec(ModelKind.OCR, "yolo+rapidocr", "", "detector.pt")),
    (ModelKind.OCR, "yolo+textract", "det.pt", ModelSpec(ModelKind.OCR, "yolo+textract", "", "det.pt")),
    (ModelKind.CAPTIONER, "hf:Salesforce/blip-image-captioning-base", "",
     ModelSpec(ModelKind.CAPTIONER, "hf", "Salesforce/blip-image-captioning-base")),
    (ModelKind.LLM, "openai-compatible", "", ModelSpec(ModelKind.LLM, "openai-compatible")),
])
def test_every_model_name_parses_in_one_place(kind: ModelKind, text: str, weights: str, spec: ModelSpec) -> None:
    assert parse(kind, text, weights) == spec
    assert parse(kind, str(spec), weights if not spec.weights else "") == spec  # round trip


@pytest.mark.parametrize("kind, text, listed", [
    (ModelKind.IMAGE_ENCODER, "resnet50", "open_clip:<architecture>[@weights]"),
    (ModelKind.OCR, "tesseract", "yolo+rapidocr[@detector.pt]"),
    (ModelKind.CAPTIONER, "blip", "hf:<model folder or hub id>"),
    (ModelKind.LLM, "gpt-banana", "rule-based"),
    (ModelKind.TEXT_EMBEDDER, "cohere:embed", "openai:<embedding model>"),
])
def test_unknown_names_list_the_registered_choices(kind: ModelKind, text: str, listed: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown {kind}") as error:
        parse(kind, text)
    assert listed in str(error.value)


def test_each_kind_has_its_families_registered_once() -> None:
    names = {kind: [f.name for f in families(kind)] for kind in ModelKind}
    assert names[ModelKind.OCR] == ["rapidocr", "rapidocr-every-image", "textract", "yolo+rapidocr", "yolo+textract"]
    assert names[ModelKind.LLM] == ["rule-based", "openai", "openai-compatible", "local", "hybrid"]
    assert names[ModelKind.IMAGE_ENCODER] == ["efficientnet-lite0", "open_clip"]
