"""EfficientNet-Lite0 written as an ONNX graph straight from its weights, with no PyTorch.

The default install runs the image encoder on ONNX Runtime and has no torch
to export it with, so the graph is built here from the state dict: the same
layers as ``efficientnet_lite_pytorch`` (stem, 16 inverted-residual blocks,
head, ReLU6 throughout, TensorFlow-style "same" paddings fixed for the 224 px
input the network was built for), with each batch norm folded into the
convolution before it. The outputs are the ones Loupe uses: the features
GeM-pooled (the embedding, not yet normalised) and the ImageNet class
probabilities of the average-pooled features (the tags). Where torch is
installed, the tests and the first build compare them with PyTorch's.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from loupe.tools.models.onnx_files import INPUT_NAME
from loupe.tools.models.onnx_graph import FLOAT, GraphBuilder

if TYPE_CHECKING:
    import onnx

OUTPUT_NAMES = ["embedding", "probabilities"]
# (repeats, kernel, stride, expand ratio, output filters) per stage of efficientnet-lite0; its stem has 32
# filters and its head 1280 (lite models do not scale them), and no block has squeeze-and-excitation.
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
BUILT_FOR_SIZE = 224  # the static "same" paddings are computed for this input size, as in the PyTorch model
BATCH_NORM_EPS = 1e-3


def same_padding(size: int, kernel: int, stride: int) -> list[int]:
    """TensorFlow's "same" padding of a square input as ONNX pads (top, left, bottom, right)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return [total // 2, total // 2, total - total // 2, total - total // 2]


class _EfficientNetGraph(GraphBuilder):
    """The graph builder with EfficientNet's two layer kinds."""

    def conv_bn(self, x: str, conv: str, bn: str, stride: int, pads: list[int], groups: int = 1,
                relu6: bool = True) -> str:
        """A bias-free convolution and the batch norm after it, folded into one convolution (+ ReLU6)."""
        weight = self.state[f"{conv}.weight"].astype(np.float64)
        scale = self.state[f"{bn}.weight"] / np.sqrt(self.state[f"{bn}.running_var"] + BATCH_NORM_EPS)
        bias = self.state[f"{bn}.bias"] - self.state[f"{bn}.running_mean"] * scale
        inputs = [x, self.constant((weight * scale[:, None, None, None]).astype(np.float32), f"{conv}.w"),
                  self.constant(bias.astype(np.float32), f"{conv}.b")]
        y = self.node("Conv", inputs, conv, strides=[stride, stride], pads=pads, group=groups,
                      kernel_shape=list(weight.shape[2:]))
        return self.relu6(y) if relu6 else y

    def relu6(self, x: str) -> str:
        return self.node("Clip", [x, self.scalar(0.0, "zero"), self.scalar(6.0, "six")], "relu6")


def _block(graph: _EfficientNetGraph, x: str, index: int, kernel: int, stride: int, expand: int, channels_in: int,
           channels_out: int, size: int) -> str:
    """One inverted-residual block: 1x1 expansion, depthwise k x k, 1x1 projection, skip when shapes agree."""
    prefix = f"_blocks.{index}"
    y = x
    if expand != 1:
        y = graph.conv_bn(y, f"{prefix}._expand_conv", f"{prefix}._bn0", 1, [0, 0, 0, 0])
    y = graph.conv_bn(y, f"{prefix}._depthwise_conv", f"{prefix}._bn1", stride, same_padding(size, kernel, stride),
                      groups=channels_in * expand)
    y = graph.conv_bn(y, f"{prefix}._project_conv", f"{prefix}._bn2", 1, [0, 0, 0, 0], relu6=False)
    if stride == 1 and channels_in == channels_out:
        y = graph.node("Add", [y, x], f"{prefix}.skip")
    return y


def build_efficientnet_graph(state: dict[str, np.ndarray], gem_power: float) -> onnx.ModelProto:
    """The graph: float pixels (n, 3, h, w) in; GeM-pooled features (n, 1280) and probabilities (n, 1000) out."""
    graph = _EfficientNetGraph(state)
    size = BUILT_FOR_SIZE
    x = graph.conv_bn(INPUT_NAME, "_conv_stem", "_bn0", 2, same_padding(size, 3, 2))
    size = math.ceil(size / 2)
    channels, index = 32, 0
    for repeats, kernel, stride, expand, channels_out in STAGES:
        for repeat in range(repeats):
            step = stride if repeat == 0 else 1
            x = _block(graph, x, index, kernel, step, expand, channels, channels_out, size)
            size, channels, index = math.ceil(size / step), channels_out, index + 1
    features = graph.conv_bn(x, "_conv_head", "_bn1", 1, [0, 0, 0, 0])

    floor = graph.node("Clip", [features, graph.scalar(1e-6, "eps")], "clamp")
    pooled = graph.node("ReduceMean", [graph.node("Pow", [floor, graph.scalar(gem_power, "p")], "pow")], "gem_mean",
                        axes=[2, 3], keepdims=0)
    embedding = graph.node("Pow", [pooled, graph.scalar(1 / gem_power, "inv_p")], "gem")
    average = graph.node("ReduceMean", [features], "average", axes=[2, 3], keepdims=0)
    logits = graph.node("Gemm", [average, graph.constant(state["_fc.weight"].astype(np.float32), "fc.w"),
                                 graph.constant(state["_fc.bias"].astype(np.float32), "fc.b")], "fc", transB=1)
    probabilities = graph.node("Softmax", [logits], "softmax", axis=-1)
    return graph.model("efficientnet-lite0", [(INPUT_NAME, FLOAT, ["batch", 3, "height", "width"])],
                       [(embedding, OUTPUT_NAMES[0], FLOAT, ["batch", 1280]),
                        (probabilities, OUTPUT_NAMES[1], FLOAT, ["batch", 1000])])
