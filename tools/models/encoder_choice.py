"""What ``image_encoder = "auto"`` (the default) means: the best encoder this machine can have, said out loud.

A CLIP-class model has a text tower, so words find pictures by their pixels; the packaged EfficientNet-Lite0
has none and reaches pictures from words only through its tags and the text bridge. CLIP's weights are not
packaged: they come from the Hugging Face hub, once, into its cache. So "auto" is, in this order:

0. with only image_encoder_weights set (what ``loupe train-encoder`` says to do), EfficientNet-Lite0 with them;
1. the encoder an existing index was built with (an index is never mixed with another encoder's vectors);
2. open_clip ViT-B-32 with LAION-2B weights, when open_clip and torch are installed (the ``[clip]`` extra)
   and its weights are in the Hugging Face cache or the hub can be reached (then they are downloaded once);
3. EfficientNet-Lite0 otherwise.

ViT-B-32 because it is the cheapest CLIP on a CPU (a 224 px picture is 49 patches: about a quarter of
ViT-B-16's work) while its LAION-2B weights rank captions well (published zero-shot text-to-image R@10 on
Flickr30k about 0.9; ImageNet top-1 66%). The choice and its reason are one line (``Models.encoder_choice``)
for the entry points to print, so a user offline learns why words find pictures less well, and how to change it.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from loupe.store.location import IndexLocation, as_location
from loupe.store.schema import IndexInfo

AUTO = "auto"
OFFLINE_ENCODER = "efficientnet-lite0"
BEST_ARCH, BEST_TAG = "ViT-B-32", "laion2b_s34b_b79k"  # an open_clip architecture and pretrained tag
BEST_HUB_REPO, BEST_HUB_FILE = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip_pytorch_model.bin"
LIMITED = "text-to-image search is limited to tags and the text bridge"
HUB_PROBE_SECONDS = 3.0


@dataclass(frozen=True)
class EncoderChoice:
    """The registry string and weights to load (tools/models/registry.py) and, in one line, why."""

    setting: str
    weights: str
    reason: str


def choose_image_encoder(configured: str, weights: str, index: IndexLocation | Path, offline: bool) -> EncoderChoice:
    """The image encoder to load for the image_encoder setting ``configured`` (a registry string, or "auto")
    and the image_encoder_weights setting ``weights``."""
    if configured != AUTO:
        return EncoderChoice(configured, weights, "configured (image_encoder)")
    if weights:  # `loupe train-encoder` tells its user to set only this
        return EncoderChoice(OFFLINE_ENCODER, weights, "image_encoder_weights is set: EfficientNet-Lite0 with them")
    index = as_location(index)
    recorded = IndexInfo.load(index) if index.remote or index.local_dir.is_dir() else None
    if recorded is not None and recorded.image_encoder == OFFLINE_ENCODER:
        return EncoderChoice(OFFLINE_ENCODER, "", f"the index in {index} was built with it")
    best = _cached_best_weights()
    if recorded is not None and recorded.image_encoder == f"open_clip:{BEST_ARCH}":
        # Never the other encoder for this index: without the weights, loading says how to get them.
        return EncoderChoice(f"open_clip:{BEST_ARCH}", best or BEST_TAG, f"the index in {index} was built with it")
    missing = [name for name in ("torch", "open_clip") if importlib.util.find_spec(name) is None]
    if missing:
        return EncoderChoice(OFFLINE_ENCODER, "", "open_clip is not installed (pip install 'loupe[clip]' for CLIP); "
                                                  f"{LIMITED}")
    if best:
        return EncoderChoice(f"open_clip:{BEST_ARCH}", best, f"CLIP {BEST_ARCH} weights are in the Hugging Face cache")
    if offline:
        return EncoderChoice(OFFLINE_ENCODER, "", f"offline, and no CLIP weights in the Hugging Face cache; {LIMITED}")
    if not hub_reachable():
        return EncoderChoice(OFFLINE_ENCODER, "", f"the Hugging Face hub cannot be reached; {LIMITED}")
    return EncoderChoice(f"open_clip:{BEST_ARCH}", BEST_TAG, f"the Hugging Face hub is reachable: CLIP {BEST_ARCH} "
                                                             "weights are downloaded once (605 MB) and cached")


def _cached_best_weights() -> str:
    """The CLIP weights file in the Hugging Face cache, or ''."""
    if importlib.util.find_spec("huggingface_hub") is None:
        return ""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(BEST_HUB_REPO, BEST_HUB_FILE)
    return cached if isinstance(cached, str) else ""


def hub_reachable() -> bool:
    """Whether a TCP connection to the hub opens within a few seconds (a download would otherwise retry for
    half a minute on a machine without a network before failing)."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", endpoint.port or 443),
                                      timeout=HUB_PROBE_SECONDS):
            return True
    except OSError:
        return False
