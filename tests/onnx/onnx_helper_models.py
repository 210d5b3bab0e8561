"""The real-model test networks built directly with onnx.helper (for machines without torch):
an MLP, LeNet-5, a CNN with BatchNormalization, a small ResNet block and an LSTM classifier,
with the op patterns PyTorch's exporter produces (Gemm with transB, Flatten, Shape/Gather/
Concat/ConstantOfShape for the LSTM's zero state, ...) and a symbolic batch dim."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.count = 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, arr, hint="c"):
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def weight(self, shape, hint="w", lo=-0.5, hi=0.5):
        return self.const(self.rng.uniform(lo, hi, shape).astype(np.float32), hint)

    def op(self, op_type, inputs, n_out=1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type),
                                           **attrs))
        return outs[0] if n_out == 1 else outs

    def dense(self, x, n_in, n_out):
        return self.op("Gemm", [x, self.weight((n_out, n_in)), self.weight((n_out,))], transB=1)

    def conv(self, x, c_in, c_out, k, stride=1, pad=0, bias=True):
        ins = [x, self.weight((c_out, c_in, k, k))] + ([self.weight((c_out,))] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[stride, stride],
                       pads=[pad] * 4)

    def batch_norm(self, x, c):
        return self.op("BatchNormalization",
                       [x, self.weight((c,), "scale", 0.5, 1.5), self.weight((c,), "bias", -.2, .2),
                        self.weight((c,), "mean"), self.weight((c,), "var", 0.5, 2.0)],
                       epsilon=1e-5)

    def model(self, shape, y, classes, opset=17):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape])
        out = helper.make_tensor_value_info(y, TensorProto.FLOAT, ["batch", classes])
        g = helper.make_graph(self.nodes, "model", [x], [out], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        onnx.checker.check_model(m, full_check=True)
        return m


def mlp():
    b = Builder(1)
    h = b.op("Flatten", ["x"], axis=1)
    h = b.op("Relu", [b.dense(h, 784, 128)])
    h = b.op("Relu", [b.dense(h, 128, 64)])
    return b.model((1, 28, 28), b.op("LogSoftmax", [b.dense(h, 64, 10)], axis=1), 10), (1, 28, 28)


def lenet5():
    b = Builder(2)
    h = b.op("Tanh", [b.conv("x", 1, 6, 5, pad=2)])
    h = b.op("AveragePool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.op("Tanh", [b.conv(h, 6, 16, 5)])
    h = b.op("AveragePool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.op("Flatten", [h], axis=1)
    h = b.op("Tanh", [b.dense(h, 400, 120)])
    h = b.op("Tanh", [b.dense(h, 120, 84)])
    return b.model((1, 28, 28), b.dense(h, 84, 10), 10), (1, 28, 28)


def bn_cnn():
    b = Builder(3)
    h = b.op("Relu", [b.batch_norm(b.conv("x", 3, 8, 3, pad=1), 8)])
    h = b.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.op("Relu", [b.batch_norm(b.conv(h, 8, 16, 3, stride=2, pad=1), 16)])
    h = b.op("Flatten", [h], axis=1)
    h = b.op("Relu", [b.batch_norm(b.dense(h, 256, 32), 32)])
    return b.model((3, 16, 16), b.op("Softmax", [b.dense(h, 32, 5)], axis=1), 5), (3, 16, 16)


def resnet_block():
    b = Builder(4)

    def block(x, c_in, c_out, stride):
        y = b.op("Relu", [b.batch_norm(b.conv(x, c_in, c_out, 3, stride, 1, False), c_out)])
        y = b.batch_norm(b.conv(y, c_out, c_out, 3, 1, 1, False), c_out)
        short = x if stride == 1 and c_in == c_out else \
            b.batch_norm(b.conv(x, c_in, c_out, 1, stride, 0, False), c_out)
        return b.op("Relu", [b.op("Add", [y, short])])

    h = b.op("Relu", [b.batch_norm(b.conv("x", 3, 16, 3, 1, 1, False), 16)])
    h = block(block(h, 16, 16, 1), 16, 32, 2)
    h = b.op("Flatten", [b.op("GlobalAveragePool", [h])], axis=1)
    return b.model((3, 16, 16), b.dense(h, 32, 10), 10), (3, 16, 16)


def lstm():
    b = Builder(5)
    hidden, seq, n_in = 24, 10, 12
    batch = b.op("Gather", [b.op("Shape", ["x"]), b.const(np.array(0, np.int64))], axis=0)
    state_shape = b.op("Concat", [b.const(np.array([1], np.int64)),
                                  b.op("Unsqueeze", [batch, b.const(np.array([0], np.int64))]),
                                  b.const(np.array([hidden], np.int64))], axis=0)
    zeros = b.op("ConstantOfShape", [state_shape],
                 value=numpy_helper.from_array(np.zeros(1, np.float32)))
    h = b.op("Transpose", ["x"], perm=[1, 0, 2])
    for layer, size in enumerate((n_in, hidden)):
        y, _, _ = b.op("LSTM", [h, b.weight((1, 4 * hidden, size)),
                                b.weight((1, 4 * hidden, hidden)), b.weight((1, 8 * hidden)),
                                "", zeros, zeros], n_out=3, hidden_size=hidden)
        h = b.op("Squeeze", [y, b.const(np.array([1], np.int64))])
    last = b.op("Gather", [h, b.const(np.array(seq - 1, np.int64))], axis=0)
    return b.model((seq, n_in), b.dense(last, hidden, 4), 4), (seq, n_in)


HELPER_MODELS = {"mlp": mlp, "lenet5": lenet5, "bn_cnn": bn_cnn, "resnet_block": resnet_block,
                 "lstm": lstm}
