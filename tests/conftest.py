"""Fixtures shared by the host and QEMU tests."""
import pytest


@pytest.fixture(scope="session")
def torch_models():
    """The PyTorch test models, trained once and cached (.pt2 and .onnx)."""
    from tests.support.harness import REPO
    from tests.support.torch_models import trained_models

    return trained_models(REPO / ".cache" / "torch-models")
