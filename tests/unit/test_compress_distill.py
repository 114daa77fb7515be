"""Distillation's targets and loss, against the formula computed by hand."""
import numpy as np
import pytest

from tinycomp.compress import distill


def test_soften_from_probabilities_equals_from_logits():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3, size=(5, 4))
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    np.testing.assert_allclose(distill.soften(p, 4.0, from_logits=False), distill.soften(z, 4.0, from_logits=True),
                               rtol=1e-5)
    flat = distill.soften(z, 1e6, from_logits=True)  # very hot: uniform
    np.testing.assert_allclose(flat, 0.25, atol=1e-4)


@pytest.mark.tf
@pytest.mark.parametrize("from_logits", [False, True])
def test_loss_is_labels_plus_softened_teacher(from_logits):
    rng = np.random.default_rng(1)
    teacher, student = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    labels = rng.integers(0, 3, size=6)
    T = 3.0
    soft = distill.soften(teacher, T, from_logits=True)
    pred = student if from_logits else np.exp(student) / np.exp(student).sum(-1, keepdims=True)
    got = np.asarray(distill.loss(T, from_logits)(distill.pack(labels, soft), pred.astype(np.float32)))

    def log_softmax(z):
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    hard = -log_softmax(student)[np.arange(6), labels]
    taught = -(soft * log_softmax(student / T)).sum(-1) * T * T
    np.testing.assert_allclose(got, distill.ALPHA * hard + (1 - distill.ALPHA) * taught, rtol=1e-4)
    hits = np.asarray(distill.accuracy(distill.pack(labels, soft), pred.astype(np.float32)))
    assert hits == pytest.approx(np.mean(student.argmax(-1) == labels))
