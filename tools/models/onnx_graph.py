"""A small helper for writing ONNX graphs by hand from a model's weights.

Loupe's default install has no torch to export models with, so the image
encoder and the text embedder are written node by node
(tools/models/efficientnet_onnx.py, tools/models/minilm_onnx.py). This keeps
the bookkeeping of that out of their way: unique names, weights stored as
initialisers, and one call per node. The onnx package is imported only when a
graph is built (it takes a second): a cached graph runs on onnxruntime alone,
so a one-shot CLI query never pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

OPSET = 17
FLOAT, INT64 = 1, 7  # onnx.TensorProto's element types, named here so callers need not import onnx


class GraphBuilder:
    """Nodes and weights of one graph, named in order, so a layer reads like the PyTorch module."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self.state = state
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, value: np.ndarray, hint: str) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def scalar(self, value: float, hint: str) -> str:
        return self.constant(np.array(value, np.float32), hint)

    def ints(self, values: list[int], hint: str) -> str:
        return self.constant(np.array(values, np.int64), hint)

    def node(self, op: str, inputs: list[str], hint: str, **attributes) -> str:
        from onnx import helper

        output = self.name(hint)
        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def model(self, name: str, inputs: list[tuple[str, int, list]], outputs: list[tuple[str, str, int, list]]
              ) -> onnx.ModelProto:
        """The checked model. Inputs are (name, element type, shape); outputs are (the node output it is, its
        declared name, element type, shape)."""
        import onnx
        from onnx import helper

        self.nodes += [helper.make_node("Identity", [source], [declared]) for source, declared, _, _ in outputs]
        graph = helper.make_graph(self.nodes, name,
                                  [helper.make_tensor_value_info(*declared) for declared in inputs],
                                  [helper.make_tensor_value_info(*declared) for _, *declared in outputs],
                                  self.weights)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="loupe")
        onnx.checker.check_model(model)
        return model
