"""One place that names every model and setting Loupe uses.

Settings come, lowest priority first, from the defaults below, a TOML file
(``$LOUPE_CONFIG``, else ``./loupe.toml``), and ``LOUPE_*`` environment
variables. Every model is named here and nowhere else, so a user can see at a
glance what runs and swap any stage without touching code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from loupe.base.errors import ConfigError


COSINE_LEVELS = ("similar_cosine", "near_duplicate_cosine", "text_match_cosine")  # ModelSettings' own levels


@dataclass(frozen=True)
class ModelSettings:
    """Which model runs each pipeline stage.

    image_encoder: ``auto`` (the best available: an existing index's encoder,
        else CLIP ViT-B-32 where open_clip is installed and its weights are
        cached or the hub is reachable, else EfficientNet-Lite0;
        tools/models/encoder_choice.py), ``efficientnet-lite0`` (packaged
        ImageNet CNN, offline) or ``open_clip:<architecture>`` (e.g.
        ``open_clip:ViT-B-32``).
    image_encoder_weights: a weights file, or an open_clip pretrained tag that
        the resolver finds in the cache or, when online, on the hub.
    image_encoder_config: an open_clip model-config JSON for architectures
        open_clip does not know (a fine-tuned or small model).
    text_embedder: ``all-MiniLM-L6-v2`` (packaged), a sentence-transformers
        model directory or hub id (e.g. ``thenlper/gte-base``), or
        ``openai:text-embedding-3-small``.
    ocr: ``rapidocr`` (PP-OCR detection + recognition, local, only on pictures
        where a quick detection finds text), ``rapidocr-every-image``, ``textract``
        (AWS Textract; credentials and region from the usual AWS chain), or
        ``yolo+rapidocr`` / ``yolo+textract`` (a YOLO text detector, then
        each box read by PP-OCR's recogniser or by Textract).
    ocr_detector_weights: the YOLO text detector's .pt file (from
        ``loupe train-detector``), for the ``yolo+...`` OCR backends.
    image_runtime: ``auto`` (ONNX Runtime on a CPU, PyTorch where a CUDA GPU
        is present), ``onnx`` or ``torch``: what runs the EfficientNet encoder.
        The ONNX file is exported once from the same weights and cached.
    captioner: ``tags`` (labels from the image encoder's classifier plus OCR
        words, labelled as tags), ``hf:<directory or hub id>`` for an
        image-to-text model run with transformers, or ``openai:<vision model>``.
    """

    image_encoder: str = "auto"
    image_encoder_weights: str = ""
    image_encoder_config: str = ""
    text_embedder: str = "all-MiniLM-L6-v2"
    ocr: str = "rapidocr"
    ocr_detector_weights: str = ""
    captioner: str = "tags"
    image_runtime: str = "auto"
    # The image encoder's cosine levels, where `loupe calibrate` measured other ones than the encoder's own
    # (tools/training/thresholds.py); 0 keeps the encoder's.
    similar_cosine: float = 0.0
    near_duplicate_cosine: float = 0.0
    text_match_cosine: float = 0.0


@dataclass(frozen=True)
class LLMSettings:
    """Which language model drives the agent.

    backend: ``rule-based`` (deterministic planner, offline), ``openai`` or
        ``openai-compatible`` (any server speaking the chat-completions
        protocol at ``base_url``: vLLM, llama.cpp server, Ollama), or
        ``local`` (a GGUF model run in process by llama.cpp, from the
        ``llm`` extra: ``pip install -e ".[llm]"``).
    model: the model's name for the server; for ``local``,
        ``qwen2.5-coder-1.5b`` (used while this is the OpenAI default),
        ``qwen2.5-coder-0.5b`` or the path of a ``.gguf`` file.
    """

    backend: str = "rule-based"
    model: str = "gpt-4o-mini"
    base_url: str = ""


# The memory one image's decoding may take, and what it takes per pixel at its peak. Pillow holds RGB,
# RGBA, LA, CMYK, I and F images at 4 bytes a pixel; the conversion to 8-bit RGB (on white where there
# is transparency) is a second 4-byte image, and a palette, 16-bit or 32-bit source adds up to 1 more
# while both live. Measured (python -m loupe.evals.decode_memory; ru_maxrss less the RSS after imports):
# RGB PNG 5.3 bytes a pixel, 16-bit grey 6.7, RGBA 7.7, LA 8.1, CMYK TIFF 8.2, palette with
# transparency 8.6, F and I TIFF 9.2. With a margin: 10, so 1 GiB / 10 bytes = 107 megapixels.
DECODE_MEMORY_BUDGET = 2**30
DECODE_BYTES_PER_PIXEL = 10


@dataclass(frozen=True)
class Settings:
    """Everything configurable, resolved once at start-up."""

    # The index folder; for an index on object storage, this machine's folder for its local files.
    index_dir: Path = field(default_factory=lambda: loupe_home() / "index")
    index_uri: str = ""  # an object-store index ("s3://bucket/prefix"); "" for a folder index (store/location.py)
    storage_endpoint_url: str = ""  # an S3-compatible store's endpoint (default: $AWS_ENDPOINT_URL)
    models: ModelSettings = field(default_factory=ModelSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    # Larger images are refused before decoding (LOUPE_MAX_PIXELS overrides it). JPEGs count at the size
    # they are decoded at (1/2 to 1/8 of a large one), so a 200 MP phone photo is still read.
    max_pixels: int = DECODE_MEMORY_BUDGET // DECODE_BYTES_PER_PIXEL
    offline: bool = False
    # An image attached to a conversation is kept, as bytes, in the saved conversation; phone photos
    # are 2-15 MB. The UI's upload limit is set to the same number.
    max_upload_bytes: int = 50 * 2**20
    # Host names the UI's WebSocket accepts (DNS-rebinding protection); add a name you serve it under.
    ui_allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")

    def with_index_dir(self, index: str | Path) -> Settings:
        """A copy that points at another index: a folder, or an object-store URI (the CLI's ``--index``)."""
        if is_object_store(str(index)):
            uri = str(index).rstrip("/")
            local = loupe_home() / "remote" / hashlib.sha256(uri.encode()).hexdigest()[:16]
            return dataclasses.replace(self, index_dir=local, index_uri=uri)
        return dataclasses.replace(self, index_dir=Path(index).expanduser(), index_uri="")

    @property
    def index_name(self) -> str:
        """The index as a user names it: its folder or its URI."""
        return self.index_uri or str(self.index_dir)


OBJECT_STORE_SCHEMES = ("s3://", "gs://", "az://")  # what Lance reaches; s3:// is the one tested (an emulator)


def is_object_store(location: str) -> bool:
    return location.startswith(OBJECT_STORE_SCHEMES)


def loupe_home() -> Path:
    """Loupe's own folder on this machine ($LOUPE_HOME, default ~/.loupe): the default index, the local files of
    an object-store index, the mirrors of object-store inputs."""
    return Path(os.environ.get("LOUPE_HOME", Path.home() / ".loupe")).expanduser()


_ENV_OVERRIDES = {
    "LOUPE_IMAGE_ENCODER": ("models", "image_encoder"),
    "LOUPE_IMAGE_ENCODER_WEIGHTS": ("models", "image_encoder_weights"),
    "LOUPE_IMAGE_ENCODER_CONFIG": ("models", "image_encoder_config"),
    "LOUPE_TEXT_EMBEDDER": ("models", "text_embedder"),
    "LOUPE_OCR": ("models", "ocr"),
    "LOUPE_OCR_DETECTOR_WEIGHTS": ("models", "ocr_detector_weights"),
    "LOUPE_CAPTIONER": ("models", "captioner"),
    "LOUPE_LLM": ("llm", "backend"),
    "LOUPE_LLM_MODEL": ("llm", "model"),
    "LOUPE_LLM_BASE_URL": ("llm", "base_url"),
}


def load_settings(config_file: str | Path | None = None) -> Settings:
    """Read defaults, then the TOML file, then ``LOUPE_*`` variables."""
    path = Path(config_file or os.environ.get("LOUPE_CONFIG") or "loupe.toml").expanduser()
    raw: dict = {}
    if path.is_file():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    elif config_file is not None:
        raise ConfigError(f"config file {path} does not exist")

    sections: dict[str, dict] = {"models": dict(raw.get("models", {})), "llm": dict(raw.get("llm", {}))}
    for variable, (section, key) in _ENV_OVERRIDES.items():
        if variable in os.environ:
            sections[section][key] = os.environ[variable]

    try:
        models = ModelSettings(**sections["models"])
        llm = LLMSettings(**sections["llm"])
    except TypeError as exc:
        raise ConfigError(f"unknown setting in {path}: {exc}") from exc
    for level in COSINE_LEVELS:
        value = getattr(models, level)
        if isinstance(value, bool) or not isinstance(value, int | float) or not -1.0 <= value <= 1.0:
            raise ConfigError(f"{level} in {path} must be a cosine between -1 and 1, got {value!r}")

    top: dict = {"storage_endpoint_url": str(raw.get("storage", {}).get("endpoint_url", ""))}
    max_pixels = os.environ.get("LOUPE_MAX_PIXELS") or raw.get("max_pixels")
    if max_pixels:
        try:
            top["max_pixels"] = int(max_pixels)
        except ValueError as exc:
            raise ConfigError(f"max_pixels must be a whole number, got {max_pixels!r}") from exc
    hosts = os.environ.get("LOUPE_UI_ALLOWED_HOSTS") or raw.get("ui", {}).get("allowed_hosts")
    if hosts:
        names = hosts.split(",") if isinstance(hosts, str) else hosts
        top["ui_allowed_hosts"] = tuple(str(name).strip() for name in names if str(name).strip())
    offline_flags = (os.environ.get("LOUPE_OFFLINE"), os.environ.get("HF_HUB_OFFLINE"))
    top["offline"] = bool(raw.get("offline", False)) or any(f not in (None, "", "0") for f in offline_flags)
    settings = Settings(models=models, llm=llm, **top)
    index = os.environ.get("LOUPE_INDEX") or raw.get("index_dir")
    return settings.with_index_dir(index) if index else settings
