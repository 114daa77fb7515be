"""Small PyTorch models trained in seconds on scikit-learn's digits (offline),
exported as .pt2 (torch.export.save) and .onnx (torch.onnx, dynamo exporter,
weights in a side file): the PyTorch front end's test subjects."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def digits():
    """(x_train, y_train, x_test, y_test): 8x8 images scaled to [0, 1], the
    demo's split (the last 450 images are the test set)."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    return x[:-450], y[:-450], x[-450:], y[-450:]


def _modules():
    import torch
    from torch import nn

    class Cnn2d(nn.Module):
        """Conv+BN+ReLU, depthwise+BN+ReLU6, 1x1 conv+BN, a residual add,
        Hardswish, max pool, conv, adaptive average pool, flatten, linear."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
            self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6(),
                                    nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8))
            self.tail = nn.Sequential(nn.Hardswish(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                                      nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                      nn.Linear(16, 10))

        def forward(self, x):
            x = self.stem(x)
            return self.tail(x + self.dw(x))

    class Cnn1d(nn.Module):
        """Two Conv1d branches concatenated (cat), max pool, depthwise Conv1d,
        average pool, flatten of (channels, steps), linear. Input (N, 8, 8):
        8 channels (image columns) over 8 steps (rows)."""

        def __init__(self):
            super().__init__()
            self.a = nn.Sequential(nn.Conv1d(8, 12, 3, padding=1), nn.BatchNorm1d(12), nn.ReLU())
            self.b = nn.Sequential(nn.Conv1d(8, 4, 1), nn.Tanh())
            self.tail = nn.Sequential(nn.MaxPool1d(2), nn.Conv1d(16, 16, 3, padding=1, groups=16), nn.ReLU(),
                                      nn.AvgPool1d(2), nn.Flatten(), nn.Linear(32, 10))

        def forward(self, x):
            return self.tail(torch.cat([self.a(x), self.b(x)], 1))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 24), nn.Sigmoid(),
                                     nn.Linear(24, 10))

        def forward(self, x):
            return self.net(x)

    return {"cnn2d": Cnn2d, "cnn1d": Cnn1d, "mlp": Mlp}


def layout(name: str, images: np.ndarray) -> np.ndarray:
    """Digits in each model's own input layout."""
    n = len(images)
    if name == "cnn2d":
        return images.reshape(n, 1, 8, 8)                   # NCHW
    if name == "cnn1d":
        return np.ascontiguousarray(images.transpose(0, 2, 1))  # (N, C=columns, L=rows)
    return images.reshape(n, 64)


@dataclass(frozen=True)
class TorchModel:
    name: str
    pt2: Path
    onnx: Path
    calibration: Path      # float samples in the model's layout (.npy)
    x_test: np.ndarray     # float, model layout
    y_test: np.ndarray
    float_accuracy: float  # the float PyTorch model on x_test


def train_and_export(name: str, out: Path, epochs: int = 12, seed: int = 0) -> TorchModel:
    """Train one model (seconds), export both formats into out/."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = digits()
    xt, xs = torch.from_numpy(layout(name, x_train)), layout(name, x_test)
    yt = torch.from_numpy(y_train)
    model = _modules()[name]()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(xs)).argmax(1).numpy() == y_test).mean())
    out.mkdir(parents=True, exist_ok=True)
    example = (xt[:1],)
    program = torch.export.export(model, example)
    torch.export.save(program, out / f"{name}.pt2")
    # The MLP's ONNX keeps a dynamic batch dimension: tinycomp fixes it to 1.
    dynamic = ({0: torch.export.Dim("batch", min=1, max=1024)},) if name == "mlp" else None
    torch.onnx.export(model, example, str(out / f"{name}.onnx"), dynamo=True, verbose=False,
                      dynamic_shapes=dynamic, external_data=True)
    calibration = out / f"{name}-calibration.npy"
    np.save(calibration, layout(name, x_train[:300]))
    return TorchModel(name, out / f"{name}.pt2", out / f"{name}.onnx", calibration, xs, y_test, acc)


MODELS = ("cnn2d", "cnn1d", "mlp")
EPOCHS = 30


def trained_models(cache_root: Path) -> dict[str, TorchModel]:
    """All three models, trained and exported once per source version and
    reused by later sessions and by the host and QEMU tests (the folder is
    named by this file's content and the torch version, and is moved into
    place whole under a lock, so a half-written one is never read)."""
    import fcntl
    import hashlib
    import json
    import os
    import shutil
    import tempfile

    import torch

    key = hashlib.sha256(Path(__file__).read_bytes() + torch.__version__.encode()).hexdigest()[:16]
    folder = Path(cache_root) / key
    folder.parent.mkdir(parents=True, exist_ok=True)
    # One trainer at a time: a second pytest-xdist worker waits for the
    # first one's models instead of training the same ones beside it.
    with open(folder.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "models.json").exists():
            stage = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder.parent))
            accuracy = {n: train_and_export(n, stage, epochs=EPOCHS).float_accuracy for n in MODELS}
            (stage / "models.json").write_text(json.dumps(accuracy))
            if folder.exists():  # a half-written folder from an interrupted older run
                shutil.rmtree(folder)
            os.replace(stage, folder)
    accuracy = json.loads((folder / "models.json").read_text())
    _, _, x_test, y_test = digits()
    return {n: TorchModel(n, folder / f"{n}.pt2", folder / f"{n}.onnx", folder / f"{n}-calibration.npy",
                          layout(n, x_test), y_test, accuracy[n]) for n in MODELS}
