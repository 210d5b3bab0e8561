"""The benchmark models, defined once per framework with the SAME initial weights.

W1/W2: the 784-400-100-10 MLP (relu), softmax cross-entropy (mean), Adam(lr 1e-3, betas
0.9/0.999, eps 1e-8). W3: LeNet-5 (1x28x28 -> conv5x5x6 pad 2, relu, maxpool2, conv5x5x16,
relu, maxpool2, dense 120, 84, 10), same loss and optimizer. graphc's weights come from its
own initialisers; every peer copies them (dense w is (in, out) in graphc).
"""
from __future__ import annotations

import numpy as np

LR = 1e-3
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
MLP_SIZES = (784, 400, 100, 10)


# -- graphc --------------------------------------------------------------------------------------
def graphc_mlp():
    import graphc
    from graphc.nn import Dense, Net, ReLU
    return graphc.Model(net=Net([Dense(400), ReLU(), Dense(100), ReLU(), Dense(10)]),
                        loss=graphc.losses.SoftmaxCrossEntropy(),
                        optimizer=graphc.optim.Adam(lr=LR))


def graphc_lenet():
    import graphc
    from graphc.nn import Conv2D, Dense, Flatten, MaxPool2D, Net, ReLU
    net = Net([Conv2D(6, 5, padding=2), ReLU(), MaxPool2D(2), Conv2D(16, 5), ReLU(),
               MaxPool2D(2), Flatten(), Dense(120), ReLU(), Dense(84), ReLU(), Dense(10)])
    return graphc.Model(net=net, loss=graphc.losses.SoftmaxCrossEntropy(),
                        optimizer=graphc.optim.Adam(lr=LR))


def layer_weights(model) -> list:
    """[(w, b)] per dense/conv layer in order, copied out of a built graphc model."""
    params = model.net.params
    names = list(dict.fromkeys(k.rsplit(".", 1)[0] for k in params))
    return [(np.array(params[f"{n}.w"]), np.array(params[f"{n}.b"])) for n in names]


# -- PyTorch -------------------------------------------------------------------------------------
def torch_mlp(weights):
    import torch
    layers = []
    for k, (w, b) in enumerate(weights):
        lin = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if k < len(weights) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_lenet(weights):
    import torch
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                        nn.Linear(84, 10))
    params = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for m, (w, b) in zip(params, weights):
            m.weight.copy_(torch.from_numpy(w if w.ndim == 4 else w.T.copy()))
            m.bias.copy_(torch.from_numpy(b))
    return net


def torch_train_step(net):
    import torch
    try:
        opt = torch.optim.Adam(net.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS,
                               fused=True)
        kind = "fused Adam"
    except (RuntimeError, TypeError):
        opt = torch.optim.Adam(net.parameters(), lr=LR, foreach=True)
        kind = "foreach Adam"
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        return loss
    return step, kind


# -- JAX -----------------------------------------------------------------------------------------
def jax_mlp_apply(params, x):
    import jax.numpy as jnp
    for k, (w, b) in enumerate(params):
        x = x @ w + b
        if k < len(params) - 1:
            x = jnp.maximum(x, 0)
    return x


def jax_lenet_apply(params, x):
    import jax
    import jax.numpy as jnp
    dn = ("NCHW", "OIHW", "NCHW")

    def conv(x, w, b, pad):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), [(pad, pad), (pad, pad)],
                                         dimension_numbers=dn)
        return y + b[None, :, None, None]

    def pool(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2),
                                     "VALID")
    (w1, b1), (w2, b2), *dense = params
    x = pool(jnp.maximum(conv(x, w1, b1, 2), 0))
    x = pool(jnp.maximum(conv(x, w2, b2, 0), 0))
    return jax_mlp_apply(dense, x.reshape(x.shape[0], -1))


def jax_train_step(apply):
    """jit(value_and_grad + hand-written Adam), state donated."""
    import jax
    import jax.numpy as jnp

    def loss_fn(params, x, y):
        logits = apply(params, x)
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def step(params, m, v, t, x, y):
        loss, g = jax.value_and_grad(loss_fn)(params, x, y)
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: BETA1 * m + (1 - BETA1) * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: BETA2 * v + (1 - BETA2) * g * g, v, g)
        c1, c2 = 1 - BETA1 ** t, 1 - BETA2 ** t
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - LR * (m / c1) / (jnp.sqrt(v / c2) + EPS), params, m, v)
        return params, m, v, t, loss
    return jax.jit(step, donate_argnums=(0, 1, 2))


# -- ONNX (for onnxruntime) ---------------------------------------------------------------------
def onnx_mlp(weights) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    nodes, inits, x = [], [], "x"
    for k, (w, b) in enumerate(weights):
        inits += [numpy_helper.from_array(w, f"w{k}"), numpy_helper.from_array(b, f"b{k}")]
        out = f"h{k}" if k < len(weights) - 1 else "logits"
        nodes.append(helper.make_node("Gemm", [x, f"w{k}", f"b{k}"], [out + "_pre"
                                                                        if k < len(weights) - 1
                                                                        else out]))
        if k < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [out + "_pre"], [out]))
        x = out
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 784])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()
