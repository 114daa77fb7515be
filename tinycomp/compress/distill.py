"""Knowledge distillation: the input model teaches the compressed one.

During fine-tuning the loss mixes the labels' cross-entropy with the
cross-entropy to the teacher's outputs softened at temperature T (Hinton et
al., 2015): the teacher's near-misses (a 3 that looks like an 8) carry what
one-hot labels do not. The soft term is scaled by T^2 so its gradients keep
their size as T grows. The teacher's outputs are fixed, so they are computed
once and travel with the labels: a target row is [label, soft_1 .. soft_C].
"""
from __future__ import annotations

import numpy as np

ALPHA = 0.5  # weight of the labels' term; the teacher's gets 1 - ALPHA


def soften(outputs: np.ndarray, temperature: float, from_logits: bool) -> np.ndarray:
    """softmax(z / T) of the teacher's logits z (log-probabilities when it ends in softmax)."""
    from .analysis import softmax

    out = np.asarray(outputs, np.float64)
    z = out if from_logits else np.log(np.clip(out, 1e-12, 1.0))
    return softmax(z / temperature).astype(np.float32)


def pack(labels: np.ndarray, soft: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(labels, np.float32).reshape(-1, 1), soft], axis=1)


def loss(temperature: float, from_logits: bool):
    import keras
    from keras import ops

    def distillation_loss(y_true, y_pred):
        labels = ops.cast(y_true[:, 0], "int32")
        soft = y_true[:, 1:]
        z = y_pred if from_logits else ops.log(ops.clip(y_pred, 1e-12, 1.0))
        hard = keras.losses.sparse_categorical_crossentropy(labels, z, from_logits=True)
        student = ops.log_softmax(z / temperature, axis=-1)
        taught = -ops.sum(soft * student, axis=-1) * temperature ** 2
        return ALPHA * hard + (1.0 - ALPHA) * taught

    return distillation_loss


def accuracy(y_true, y_pred):
    from keras import ops

    hits = ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "float32"), y_true[:, 0])
    return ops.mean(ops.cast(hits, "float32"))
