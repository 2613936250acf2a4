"""One model registry: every backend of every kind is one registered factory.

A model is named by a string such as ``open_clip:ViT-B-32@clip.bin``: a family
(``open_clip``), a name within it (``ViT-B-32``) and a weights file. That string
is parsed here and nowhere else, into a :class:`ModelSpec`, and loaded by the
factory registered for its kind and family. The configuration, ``loupe eval
--compare``, the UI's choices and the error messages all read the same table,
so a new backend (a local LLM, a CLIP-class encoder, a text detector) is one
``@register`` away, with no if-chain to extend.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from loupe.base.config import Settings
from loupe.base.errors import ConfigError, MissingExtraError

# What each pip extra of pyproject.toml installs that a backend imports: the default install has none of it.
EXTRA_MODULES = {
    "train": ("torch", "torchvision", "efficientnet_lite_pytorch", "ultralytics"),
    "clip": ("torch", "open_clip"),
    "transformers": ("torch", "transformers", "sentence_transformers"),
    "openai": ("openai", "langchain_openai"),
    "aws": ("boto3",),
    "llm": ("xllamacpp",),
    "mcp": ("mcp",),
    "ray": ("ray",),
}


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that are not installed ([] when the extra is)."""
    return [name for name in EXTRA_MODULES[extra] if importlib.util.find_spec(name) is None]


def require_extra(extra: str, what: str) -> None:
    """Raise the one-line MissingExtraError when ``what`` needs ``extra`` and it is not installed."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(f"{what} needs the [{extra}] extra ({', '.join(missing)} not installed): "
                                f"pip install 'loupe[{extra}]' (from a checkout: pip install -e '.[{extra}]')")


class ModelKind(StrEnum):
    IMAGE_ENCODER = "image encoder"
    TEXT_EMBEDDER = "text embedder"
    OCR = "OCR backend"
    CAPTIONER = "captioner"
    LLM = "LLM backend"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model name: ``family[:name][@weights]``."""

    kind: ModelKind
    family: str
    name: str = ""
    weights: str = ""

    @property
    def named(self) -> str:
        """``family[:name]`` without the weights, as the ``image_encoder`` setting writes it."""
        return f"{self.family}:{self.name}" if self.name else self.family

    def __str__(self) -> str:
        return f"{self.named}@{self.weights}" if self.weights else self.named


Factory = Callable[..., Any]


@dataclass(frozen=True)
class Family:
    kind: ModelKind
    name: str
    factory: Factory
    usage: str  # how to name it, for choices and error messages, e.g. "open_clip:<architecture>"
    takes_name: bool  # "family:name" (open_clip, openai, hf) rather than the bare family
    any_bare_name: bool  # a bare string that is no family's name belongs to this family (a hub id, a folder)
    extra: str  # the pip extra it needs ("" for the default install)


_FAMILIES: dict[tuple[ModelKind, str], Family] = {}


def register(kind: ModelKind, family: str, usage: str = "", takes_name: bool = False,
             any_bare_name: bool = False, extra: str = "") -> Callable[[Factory], Factory]:
    """Register ``factory(spec, settings, **dependencies)`` as the loader of one family of one kind."""
    if extra and extra not in EXTRA_MODULES:
        raise ValueError(f"unknown extra {extra!r}")

    def decorate(factory: Factory) -> Factory:
        _FAMILIES[(kind, family)] = Family(kind, family, factory, usage or family, takes_name, any_bare_name, extra)
        return factory
    return decorate


def families(kind: ModelKind) -> list[Family]:
    """The registered families of one kind, in registration order."""
    return [f for (k, _), f in _FAMILIES.items() if k == kind]


def parse(kind: ModelKind, text: str, weights: str = "") -> ModelSpec:
    """``text`` as a spec of ``kind``; ``weights`` (a separate setting) is used when the text names none.

    ``efficientnet-lite0@tuned.pt``, ``open_clip:ViT-B-32@clip.bin``, ``yolo+rapidocr@detector.pt``,
    ``openai:text-embedding-3-small`` and a bare sentence-transformers hub id or folder all parse here.
    """
    text = text.strip()
    named, at, inline_weights = text.partition("@")
    weights = inline_weights if at else weights
    family, colon, name = named.partition(":")
    if colon and (kind, family) in _FAMILIES and _FAMILIES[(kind, family)].takes_name:
        return ModelSpec(kind, family, name, weights)
    if (kind, named) in _FAMILIES and not _FAMILIES[(kind, named)].takes_name:
        return ModelSpec(kind, named, "", weights)
    catch_all = next((f for f in families(kind) if f.any_bare_name), None)
    if catch_all is not None and named and not colon:
        return ModelSpec(kind, catch_all.name, named, weights)
    choices = ", ".join(repr(f.usage) for f in families(kind))
    raise ConfigError(f"unknown {kind} {text!r}: use one of {choices}")


def load(spec: ModelSpec, settings: Settings, **dependencies: Any) -> Any:
    """The model a spec names, built by its family's factory (errors say what is missing and how to get it)."""
    family = _FAMILIES[(spec.kind, spec.family)]
    if family.extra:
        require_extra(family.extra, f"the {spec.kind} {spec.named!r}")
    return family.factory(spec, settings, **dependencies)
