"""open_clip models as Loupe image encoders: an image and a text tower in one embedding space.

Needs the ``[clip]`` extra (open_clip and torch); the registry imports this module only when
``image_encoder`` names an ``open_clip:`` model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image

from loupe.tools.models.image_embeddings import ImageEmbeddings
from loupe.tools.models.resolver import ModelSource, resolve


def _normalise(vectors: torch.Tensor) -> np.ndarray:
    return F.normalize(vectors.float(), dim=-1).cpu().numpy().astype(np.float32)


class OpenClipEncoder:
    """Any open_clip model: image and text towers in one embedding space."""

    has_text_tower = True
    # CLIP-family image-image cosines run higher than a CNN's; these are the
    # usual values for ViT-B models. Re-check them with `loupe eval`.
    similar_cosine = 0.75
    near_duplicate_cosine = 0.95
    text_match_cosine = 0.20  # CLIP text-image cosines are low in absolute terms

    def __init__(self, architecture: str, weights: str, config: str, offline: bool) -> None:
        if config:
            config_path = resolve(
                ModelSource(name=f"open_clip config {config}", local_path=config,
                            how_to_get="Point image_encoder_config at the model's JSON config."),
                offline,
            )
            open_clip.add_model_config(config_path)
            architecture = architecture or Path(config_path).stem
        if architecture not in open_clip.list_models():
            from loupe.base.errors import ConfigError

            raise ConfigError(
                f"open_clip has no architecture {architecture!r}; give its JSON with image_encoder_config"
            )
        weights_path = self.weights_file(architecture, weights, offline)
        self._model, _, self._preprocess = open_clip.create_model_and_transforms(
            architecture, pretrained=str(weights_path)
        )
        self._model.eval()
        self._tokenizer = open_clip.get_tokenizer(architecture)
        self.name = f"open_clip:{architecture}"
        self.dim = int(open_clip.get_model_config(architecture)["embed_dim"])

    @staticmethod
    def weights_file(architecture: str, weights: str, offline: bool) -> Path:
        """A weights file: a path, else an open_clip pretrained tag from the cache or hub."""
        how = (
            f"Download the weights of {architecture} on a machine with internet (e.g. "
            f"`huggingface-cli download laion/CLIP-{architecture}-laion2B-s34B-b79K "
            "open_clip_pytorch_model.bin`) and set image_encoder_weights to the file."
        )
        if weights and not open_clip.get_pretrained_cfg(architecture, weights):
            return resolve(ModelSource(name=f"open_clip {architecture} weights", local_path=weights,
                                       how_to_get=how), offline)
        tag = weights or (open_clip.list_pretrained_tags_by_model(architecture) or [""])[0]
        hub = open_clip.get_pretrained_cfg(architecture, tag).get("hf_hub", "").rstrip("/")
        return resolve(
            ModelSource(name=f"open_clip {architecture} weights ({tag or 'no pretrained tag'})",
                        hub_repo=hub, hub_file="open_clip_pytorch_model.bin" if hub else "",
                        how_to_get=how),
            offline,
        )

    @torch.inference_mode()
    def embed_images(self, images: list[Image.Image]) -> ImageEmbeddings:
        batch = torch.stack([self._preprocess(img.convert("RGB")) for img in images])
        return ImageEmbeddings(vectors=_normalise(self._model.encode_image(batch)))

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.encode_text(self._tokenizer(texts)))
