"""Real models for the ONNX import tests: small PyTorch networks exported with
torch.onnx.export (the TorchScript exporter, dynamo=False: the dynamo path needs onnxscript)
with a dynamic batch axis, and onnx.helper-built equivalents for when torch is missing.

Each maker returns (ModelProto, example input shape without the batch dim). Weights are
seeded; BatchNorm running statistics are randomised so normalisation is not an identity.
"""
from __future__ import annotations

import io
import warnings


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_modules():
    import torch
    from torch import nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(),
                                     nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))

        def forward(self, x):
            return torch.log_softmax(self.net(x), dim=1)

    class LeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
                nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2))
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Tanh(), nn.Linear(120, 84),
                nn.Tanh(), nn.Linear(84, 10))

        def forward(self, x):
            return self.classifier(self.features(x))

    class BatchNormCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.bn2 = nn.BatchNorm2d(16)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(16 * 4 * 4, 32)
            self.bn3 = nn.BatchNorm1d(32)
            self.out = nn.Linear(32, 5)

        def forward(self, x):
            x = self.pool(torch.relu(self.bn1(self.conv1(x))))
            x = torch.relu(self.bn2(self.conv2(x)))
            x = torch.flatten(x, 1)
            return torch.softmax(self.out(torch.relu(self.bn3(self.fc(x)))), dim=1)

    class ResidualBlock(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.short = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                        nn.BatchNorm2d(c_out))
                          if stride != 1 or c_in != c_out else nn.Identity())

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(y)) + self.short(x))

    class SmallResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(16), nn.ReLU())
            self.block1 = ResidualBlock(16, 16, 1)
            self.block2 = ResidualBlock(16, 32, 2)
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            x = self.block2(self.block1(self.stem(x)))
            return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    class LSTMClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(input_size=12, hidden_size=24, num_layers=2, batch_first=True)
            self.fc = nn.Linear(24, 4)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -1, :])

    return {"mlp": (MLP, (1, 28, 28)), "lenet5": (LeNet5, (1, 28, 28)),
            "bn_cnn": (BatchNormCNN, (3, 16, 16)), "resnet_block": (SmallResNet, (3, 16, 16)),
            "lstm": (LSTMClassifier, (10, 12))}


TORCH_MODELS = ("mlp", "lenet5", "bn_cnn", "resnet_block", "lstm")


def export_torch_model(name: str, opset: int = 17):
    """(ModelProto, input shape without batch) of torch model `name`, exported in eval mode."""
    import onnx
    import torch
    cls, shape = _torch_modules()[name]
    torch.manual_seed(0)
    model = cls()
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros((2,) + shape),), buf, dynamo=False,
                          opset_version=opset, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                          do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue()), shape
