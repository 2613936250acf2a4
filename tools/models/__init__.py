"""The models of one configuration, each loaded on first use.

A text query never pays for loading the OCR engine, and a query image never
loads the text embedder unless it has text to search.
"""

from __future__ import annotations

from functools import cached_property

from loupe.base.config import COSINE_LEVELS, Settings
from loupe.store.location import index_location
from loupe.store.schema import IndexInfo
from loupe.tools.document_fields import FIELDS_VERSION
from loupe.tools.models.captioners import Captioner
from loupe.tools.models.encoder_choice import EncoderChoice, choose_image_encoder
from loupe.tools.models.image_encoders import ImageEncoder
from loupe.tools.models.ocr_backends import OcrBackend
from loupe.tools.models.registry import ModelKind, load, parse
from loupe.tools.models.text_embedders import TextEmbedder


class Models:
    """Lazily loaded encoder, text embedder, OCR backend and captioner."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def encoder_choice(self) -> EncoderChoice:
        """Which image encoder the setting means here (``auto``: the best available), and why."""
        m = self.settings.models
        return choose_image_encoder(m.image_encoder, m.image_encoder_weights, index_location(self.settings),
                                    self.settings.offline)

    @cached_property
    def image_encoder(self) -> ImageEncoder:
        choice = self.encoder_choice
        encoder = load(parse(ModelKind.IMAGE_ENCODER, choice.setting, choice.weights), self.settings)
        for level in COSINE_LEVELS:  # levels that `loupe calibrate` measured and the user configured
            if getattr(self.settings.models, level):
                setattr(encoder, level, float(getattr(self.settings.models, level)))
        return encoder

    @cached_property
    def text_embedder(self) -> TextEmbedder:
        return load(parse(ModelKind.TEXT_EMBEDDER, self.settings.models.text_embedder), self.settings)

    @cached_property
    def ocr(self) -> OcrBackend:
        m = self.settings.models
        return load(parse(ModelKind.OCR, m.ocr, m.ocr_detector_weights), self.settings)

    @cached_property
    def captioner(self) -> Captioner:
        spec = parse(ModelKind.CAPTIONER, self.settings.models.captioner)
        return load(spec, self.settings, encoder=self.image_encoder)

    def index_info(self) -> IndexInfo:
        """What an index built with these models records about them."""
        return IndexInfo(
            image_encoder=self.image_encoder.name,
            image_dim=self.image_encoder.dim,
            text_embedder=self.text_embedder.name,
            text_dim=self.text_embedder.dim,
            ocr=str(parse(ModelKind.OCR, self.settings.models.ocr, self.settings.models.ocr_detector_weights)),
            captioner=str(parse(ModelKind.CAPTIONER, self.settings.models.captioner)),
            fields_version=FIELDS_VERSION,
        )
