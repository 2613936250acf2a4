"""Fine-tune an open_clip model on a user's own image-caption pairs (``loupe train-clip``).

The loss is CLIP's own: in a batch of n pairs, each image must pick its
caption among the n captions and each caption its image (symmetric
cross-entropy over cosine similarities, open_clip's ``ClipLoss``). Training
starts from a weights file, or from random weights for a small architecture
(no CLIP weights can be downloaded here). A tenth of the images is held out
and text-to-image Recall@1/5 on them is reported before and after, so a run
that made things worse says so.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from loupe.base.errors import LoupeError
from loupe.tools.training.caption_pairs import read_pairs
from loupe.tools.image_file import read_image
from loupe.tools.models.open_clip_encoder import OpenClipEncoder
from loupe.tools.training.encoder_training import pick_device


@dataclass
class ClipTrainingReport:
    pairs: int
    images: int
    held_out_images: int
    seconds: float
    loss_per_epoch: list[float] = field(default_factory=list)
    recall_before: dict[str, float] = field(default_factory=dict)  # on the held-out images
    recall_after: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def build_model(architecture: str, weights: str, config: str, offline: bool):
    """(model, training transform, eval transform, tokenizer, architecture name)."""
    import open_clip

    if config:
        if not Path(config).is_file():
            raise LoupeError(f"open_clip config {config} does not exist")
        open_clip.add_model_config(config)
        architecture = architecture or Path(config).stem
    if architecture not in open_clip.list_models():
        raise LoupeError(f"open_clip has no architecture {architecture!r}; give its JSON with --config")
    pretrained = str(OpenClipEncoder.weights_file(architecture, weights, offline)) if weights else None
    model, train_transform, eval_transform = open_clip.create_model_and_transforms(architecture, pretrained=pretrained)
    return model, train_transform, eval_transform, open_clip.get_tokenizer(architecture), architecture


@torch.no_grad()
def text_to_image_recall(model, tokenizer, transform, pairs: list[tuple], device: torch.device) -> dict[str, float]:
    """Recall@1 and @5 of each caption finding its own image among the pairs' images (path, picture, caption)."""
    images = sorted({path for path, _, _ in pairs}, key=str)
    if len(images) < 2:
        return {}
    model.eval()
    pictures = {path: picture for path, picture, _ in pairs}
    image_vectors = F.normalize(model.encode_image(torch.stack([transform(pictures[p]) for p in images]).to(device)), dim=-1)
    text_vectors = F.normalize(model.encode_text(tokenizer([caption for _, _, caption in pairs]).to(device)), dim=-1)
    ranks = (text_vectors @ image_vectors.T).argsort(dim=-1, descending=True).cpu()
    truth = torch.tensor([images.index(path) for path, _, _ in pairs])
    position = (ranks == truth[:, None]).float().argmax(dim=-1)
    return {"R@1": float((position < 1).float().mean()), "R@5": float((position < 5).float().mean())}


def train_clip(captions: Path, images: Path, out: Path, *, architecture: str = "", weights: str = "", config: str = "",
               epochs: int = 5, batch_size: int = 32, learning_rate: float = 1e-5, device: str = "auto",
               offline: bool = True, max_pixels: int = 256_000_000, seed: int = 0,
               progress: Callable[[str], None] = print) -> ClipTrainingReport:
    """Fine-tune with the contrastive loss and write a state dict that ``open_clip:<architecture>`` loads."""
    from open_clip.loss import ClipLoss

    if batch_size < 2:
        raise LoupeError("--batch-size must be at least 2: the loss contrasts the pairs within a batch")
    target = pick_device(device)
    model, train_transform, eval_transform, tokenizer, architecture = build_model(architecture, weights, config, offline)
    progress(f"open_clip {architecture} from {'weights ' + weights if weights else 'random weights'}, on {target}")
    report = ClipTrainingReport(pairs=0, images=0, held_out_images=0, seconds=0.0)
    loaded: dict[Path, object] = {}
    pairs = []
    for path, caption in read_pairs(captions, images):
        if path not in loaded:
            try:
                picture = read_image(path, max_pixels).image
            except LoupeError as exc:
                report.skipped.append(f"{path}: {exc}")
                loaded[path] = None
                continue
            picture.thumbnail((512, 512))
            loaded[path] = picture
        if loaded[path] is not None:
            pairs.append((path, loaded[path], caption))
    names = sorted({path for path, _, _ in pairs}, key=str)
    if len(names) < 2:
        raise LoupeError(f"training needs pairs for at least two readable images, found {len(names)}")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    held = set(rng.sample(names, max(2, len(names) // 10))) if len(names) >= 10 else set()
    train_pairs = [pair for pair in pairs if pair[0] not in held]
    test_pairs = [pair for pair in pairs if pair[0] in held]
    report.pairs, report.images, report.held_out_images = len(train_pairs), len(names) - len(held), len(held)
    model.to(target)
    report.recall_before = text_to_image_recall(model, tokenizer, eval_transform, test_pairs, target)
    loss_fn = ClipLoss()
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate,
                                  weight_decay=0.1)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        by_image: dict[Path, list] = {}
        for pair in train_pairs:
            by_image.setdefault(pair[0], []).append(pair)
        # one caption per image per epoch: the same image twice in a batch would be its own negative
        chosen = [rng.choice(group) for group in by_image.values()]
        rng.shuffle(chosen)
        losses = []
        for first in range(0, len(chosen), batch_size):
            batch = chosen[first:first + batch_size]
            if len(batch) < 2:
                continue
            pictures = torch.stack([train_transform(picture) for _, picture, _ in batch]).to(target)
            texts = tokenizer([caption for _, _, caption in batch]).to(target)
            image_features = model.encode_image(pictures, normalize=True)
            text_features = model.encode_text(texts, normalize=True)
            loss = loss_fn(image_features, text_features, model.logit_scale.exp())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, 4.6052)  # temperature at most 100, as in CLIP
            losses.append(float(loss.detach()))
        report.loss_per_epoch.append(sum(losses) / max(len(losses), 1))
        progress(f"epoch {epoch + 1}/{epochs}: contrastive loss {report.loss_per_epoch[-1]:.4f} "
                 f"({time.perf_counter() - start:.0f}s)")
    report.seconds = time.perf_counter() - start
    report.recall_after = text_to_image_recall(model, tokenizer, eval_transform, test_pairs, target)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, out)
    return report
