"""Write a random-weight "speed twin" of InsightFace's ArcFace ``w600k_r50.onnx``.

The twin has the same architecture and compute cost as ``w600k_r50.onnx`` from
the ``buffalo_l`` pack: IResNet-50 (stages [3, 4, 14, 3], 64/128/256/512
channels), input ``input.1`` of shape [N, 3, 112, 112] with a dynamic batch,
and a 512-d embedding output. It mirrors the real PyTorch export: BatchNorm
that follows a Conv is folded into that Conv's bias, while the pre-activation
BatchNorm in each block and the two head BatchNorms stay BatchNormalization
nodes. Like the original, it has no Sub/Mul preprocessing nodes, so
InsightFace reads it with input_mean = input_std = 127.5.

The weights are random (fixed seed), so the embeddings are meaningless for
identity. Use it for speed benchmarks only, e.g. where the real weights are
not available.

Usage: python benchmarks/make_speed_twin.py [-o PATH]
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STAGES = ((64, 3), (128, 4), (256, 14), (512, 3))  # (channels, blocks), each stage strides by 2
EMBEDDING_DIM = 512
INPUT_SIZE = 112
BN_EPS = 1e-5
OPSET = 13


class _Graph:
    """Accumulates nodes and initializers; node names are unique op-type counters."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, op: str) -> str:
        # Names like "Conv_1" never start with "Sub"/"Mul", which ArcFaceONNX
        # would take as the sign of an mxnet model with built-in preprocessing.
        self._count += 1
        return f"{op}_{self._count}"

    def param(self, prefix: str, array: np.ndarray) -> str:
        name = f"{prefix}_{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def op(self, op: str, inputs: list[str], **attrs: object) -> str:
        name = self._name(op)
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name


def _conv(g: _Graph, x: str, cin: int, cout: int, k: int, stride: int = 1, gain: float = 1.0) -> str:
    """Conv with bias: the following BatchNorm is folded in, as in the real export."""
    # He init keeps activations in a normal float range; denormals or inf would
    # skew timings (and overflow if the twin is run in fp16).
    w = g.rng.standard_normal((cout, cin, k, k)) * gain * np.sqrt(2.0 / (cin * k * k))
    b = g.rng.standard_normal(cout) * 0.01
    return g.op(
        "Conv",
        [x, g.param("conv_w", w), g.param("conv_b", b)],
        kernel_shape=[k, k],
        strides=[stride, stride],
        pads=[k // 2] * 4,
    )


def _bn(g: _Graph, x: str, c: int) -> str:
    params = {
        "scale": 1.0 + 0.05 * g.rng.standard_normal(c),
        "bias": 0.05 * g.rng.standard_normal(c),
        "mean": 0.05 * g.rng.standard_normal(c),
        "var": 1.0 + 0.1 * g.rng.random(c),
    }
    names = [g.param(f"bn_{key}", value) for key, value in params.items()]
    return g.op("BatchNormalization", [x, *names], epsilon=BN_EPS)


def _prelu(g: _Graph, x: str, c: int) -> str:
    # [C, 1, 1] slope broadcasts over H and W, the shape torch exports for PReLU(C).
    return g.op("PRelu", [x, g.param("prelu", np.full((c, 1, 1), 0.25))])


def _block(g: _Graph, x: str, cin: int, cout: int, stride: int) -> str:
    """IBasicBlock: BN -> conv3x3 -> (BN) -> PReLU -> conv3x3(stride) -> (BN), plus shortcut."""
    y = _bn(g, x, cin)
    y = _conv(g, y, cin, cout, 3)
    y = _prelu(g, y, cout)
    # A damped residual branch stops activations growing ~2x per block over 24 blocks.
    y = _conv(g, y, cout, cout, 3, stride, gain=0.2)
    shortcut = x
    if stride != 1 or cin != cout:
        shortcut = _conv(g, x, cin, cout, 1, stride)  # conv1x1 + folded BN
    return g.op("Add", [y, shortcut])


def build_model(seed: int = 0) -> onnx.ModelProto:
    g = _Graph(seed)
    x = _prelu(g, _conv(g, "input.1", 3, 64, 3), 64)  # stem: conv3x3 + (BN) + PReLU
    cin = 64
    for cout, blocks in STAGES:
        for i in range(blocks):
            x = _block(g, x, cin, cout, stride=2 if i == 0 else 1)
            cin = cout
    side = INPUT_SIZE // 2 ** len(STAGES)  # 112 -> 7
    x = _bn(g, x, cin)
    x = g.op("Flatten", [x], axis=1)
    fc_in = cin * side * side
    fc_w = g.rng.standard_normal((EMBEDDING_DIM, fc_in)) * np.sqrt(1.0 / fc_in)
    fc_b = np.zeros(EMBEDDING_DIM)
    # transB=1 keeps the torch Linear [out, in] weight layout, as the export does.
    x = g.op("Gemm", [x, g.param("fc_w", fc_w), g.param("fc_b", fc_b)], transB=1)
    x = _bn(g, x, EMBEDDING_DIM)  # "features" BatchNorm1d
    g.nodes[-1].output[0] = "embedding"  # readable output name
    graph = helper.make_graph(
        g.nodes,
        "w600k_r50_speed_twin",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", EMBEDDING_DIM])],
        g.inits,
    )
    opset = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=opset, producer_name="facetrack")
    # Pin the IR version so older onnxruntime builds can load the file.
    model.ir_version = 8
    return model


def count_params(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="w600k_r50_speed_twin.onnx", help="output .onnx path")
    parser.add_argument("--seed", type=int, default=0, help="random weight seed")
    args = parser.parse_args()

    model = build_model(args.seed)
    onnx.checker.check_model(model)
    onnx.save(model, args.output)
    print(f"parameters: {count_params(model):,} ({count_params(model) / 1e6:.1f} M)")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
