"""Captioners: a short description of an image, stored, embedded and searched.

``models.captioner`` picks one:

* ``tags`` (offline default) - no image-to-text model ships in a package, so
  this is an honest list of what the models do know: the image encoder's top
  ImageNet labels (zero-shot through the text tower for open_clip), plus
  "printed text" when OCR found some. It is stored with ``caption_kind =
  "tags"`` and shown as tags, never as a sentence a model wrote.
* ``hf:<folder or hub id>`` - an image-to-text model (BLIP, GIT, ...) run with
  transformers; stored with ``caption_kind = "caption"``.
* ``openai:<vision model>`` - e.g. ``openai:gpt-4o-mini`` through the OpenAI API
  (key from ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` for a compatible server).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from loupe.base.config import Settings
from loupe.tools.models.image_encoders import ImageEncoder
from loupe.tools.models.openai_client import openai_client
from loupe.tools.models.registry import ModelKind, ModelSpec, register
from loupe.tools.models.resolver import ModelSource, resolve

MIN_TAG_PROBABILITY = 0.08
MAX_TAGS = 3


@dataclass(frozen=True)
class Caption:
    text: str
    kind: str  # "tags" or "caption"


class Captioner(Protocol):
    name: str

    def describe(self, image: Image.Image, labels: list[tuple[str, float]] | None, ocr_lines: int) -> Caption: ...


@register(ModelKind.CAPTIONER, "tags")
def _tags(spec: ModelSpec, settings: Settings, encoder: ImageEncoder) -> Captioner:
    return TagCaptioner(encoder)


@register(ModelKind.CAPTIONER, "hf", "hf:<model folder or hub id>", takes_name=True, extra="transformers")
def _transformers(spec: ModelSpec, settings: Settings, encoder: ImageEncoder) -> Captioner:
    return TransformersCaptioner(spec.name, settings.offline)


@register(ModelKind.CAPTIONER, "openai", "openai:<vision model>", takes_name=True, extra="openai")
def _openai(spec: ModelSpec, settings: Settings, encoder: ImageEncoder) -> Captioner:
    return OpenAICaptioner(spec.name)


class TagCaptioner:
    """Tags from the image encoder's class labels and the OCR result."""

    name = "tags"

    def __init__(self, encoder: ImageEncoder) -> None:
        self._encoder = encoder
        self._class_vectors = None  # zero-shot ImageNet prompts, built on first use

    def describe(self, image: Image.Image, labels: list[tuple[str, float]] | None, ocr_lines: int) -> Caption:
        if labels is None:
            labels = self._zero_shot_labels(image)
        tags = [name for name, probability in labels[:MAX_TAGS] if probability >= MIN_TAG_PROBABILITY]
        if not tags and labels:
            tags = [labels[0][0]]
        if ocr_lines:
            tags.append("printed text")
        return Caption(text=", ".join(tags), kind="tags")

    def _zero_shot_labels(self, image: Image.Image) -> list[tuple[str, float]]:
        """ImageNet labels for encoders without a classifier, through their text tower."""
        import numpy as np
        from open_clip import IMAGENET_CLASSNAMES

        if self._class_vectors is None:
            self._class_vectors = self._encoder.embed_texts([f"a photo of a {c}." for c in IMAGENET_CLASSNAMES])
        image_vector = self._encoder.embed_images([image]).vectors[0]
        logits = 100.0 * self._class_vectors @ image_vector
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        best = np.argsort(-probabilities)[:MAX_TAGS]
        return [(IMAGENET_CLASSNAMES[i], float(probabilities[i])) for i in best]


class TransformersCaptioner:
    """An image-to-text model from a local folder (or the cache / hub when online)."""

    def __init__(self, model: str, offline: bool) -> None:
        from pathlib import Path

        from transformers import AutoModelForImageTextToText, AutoProcessor

        is_path = Path(model).expanduser().exists() or model.startswith((".", "/", "~"))
        path = resolve(
            ModelSource(
                name=f"captioning model {model}",
                local_path=model if is_path else "",
                hub_repo="" if is_path else model,
                how_to_get=(f"On a machine with internet run `huggingface-cli download {model}`, copy the "
                            "folder here and set captioner to hf:<that folder>."),
            ),
            offline,
        )
        self._processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        self._model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True).eval()
        self.name = f"hf:{model}"

    def describe(self, image: Image.Image, labels: list[tuple[str, float]] | None, ocr_lines: int) -> Caption:
        import torch

        inputs = self._processor(images=image.convert("RGB"), return_tensors="pt")
        with torch.inference_mode():
            output = self._model.generate(**inputs, max_new_tokens=30)
        text = self._processor.batch_decode(output, skip_special_tokens=True)[0].strip()
        return Caption(text=text, kind="caption")


class OpenAICaptioner:
    """A vision chat model describes the image in one sentence."""

    PROMPT = ("Describe this image in one plain sentence for a search index: the main subject, the setting, "
              "and any prominent printed text.")

    def __init__(self, model: str) -> None:
        self._client = openai_client(f"captioner openai:{model}", "use captioner = 'tags' (local)")
        self._model = model
        self.name = f"openai:{model}"

    def describe(self, image: Image.Image, labels: list[tuple[str, float]] | None, ocr_lines: int) -> Caption:
        import base64
        import io

        picture = image.convert("RGB")
        picture.thumbnail((768, 768))
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=85)
        data_url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
        response = self._client.chat.completions.create(
            model=self._model, max_tokens=80, temperature=0,
            messages=[{"role": "user", "content": [{"type": "text", "text": self.PROMPT},
                                                   {"type": "image_url", "image_url": {"url": data_url}}]}],
        )
        return Caption(text=(response.choices[0].message.content or "").strip(), kind="caption")
