"""Each compression method on the digits CNN or a small MLP (Keras 3, no tfmot)."""
import numpy as np
import pytest

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def env():
    from tinycomp import datasets
    from tinycomp.frontends.keras import quiet_tensorflow
    from tests.support.models import digits_model

    d = digits_model()
    split = datasets.load_digits(0)
    with quiet_tensorflow():
        import keras
    return d, split, keras


def _load(env):
    d, split, keras = env
    return keras.models.load_model(d.keras_path, compile=False)


def _int8_inputs(buf, x):
    from ai_edge_litert.interpreter import Interpreter

    s, z = Interpreter(model_content=buf).get_input_details()[0]["quantization"]
    return np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)[:, None]


def test_magnitude_pruning_exact_sparsity(env):
    from tinycomp.compress import prune

    d, split, _ = env
    model = _load(env)
    prune.prune_magnitude(model, split.x_train[:400], split.y_train[:400], 0.6, epochs=1, allocation="uniform")
    for layer in prune.prunable_layers(model):
        kernel = layer.kernel.numpy()
        assert np.count_nonzero(kernel == 0.0) == round(0.6 * kernel.size), layer.name


def test_lamp_allocation_prunes_overall_and_protects_small_layers(env):
    """--prune S removes S of all weights, spread by LAMP score: every layer keeps
    its largest weight, and the 144-weight first conv is pruned far less than S."""
    from tinycomp.compress import prune

    d, split, _ = env
    model = _load(env)
    spread = prune.prune_magnitude(model, split.x_train[:400], split.y_train[:400], 0.8, epochs=1)
    layers = prune.prunable_layers(model)
    kernels = {l.name: l.kernel.numpy() for l in layers}
    total = sum(k.size for k in kernels.values())
    assert sum(np.count_nonzero(k == 0.0) for k in kernels.values()) == round(0.8 * total)
    for name, k in kernels.items():
        assert np.count_nonzero(k == 0.0) == round(spread[name] * k.size), name
        assert np.count_nonzero(k) > 0, name
    assert spread["conv2d"] < 0.5 < max(spread.values())


def test_channel_pruning_fewer_macs_and_bit_exact(env):
    from tests.support.harness import assert_bit_exact
    from tinycomp.compress import channels, qat
    from tinycomp.compress.calibrate import calibrated_model
    from tinycomp.compress.graph import count_macs
    from tinycomp.frontends.keras import quiet_tensorflow

    d, split, _ = env
    model = _load(env)
    small = channels.prune_channels(model, 0.5)
    assert count_macs(small) < count_macs(model) / 2
    assert small.layers[1].filters == 8
    budget = channels.prune_channels(model, mac_budget=count_macs(model) // 2)
    assert count_macs(budget) <= count_macs(model) // 2
    # The rebuilt model is the original restricted to the kept channels: with
    # nothing removed it must compute the same function.
    with quiet_tensorflow():
        buf = qat.qat_to_tflite(calibrated_model(small, split.x_train[:200], "minmax")[0])
    assert_bit_exact(buf, _int8_inputs(buf, split.x_test[:20]))


def test_fold_batchnorm_keeps_function(env):
    from tinycomp.compress.graph import fold_batchnorm

    d, split, _ = env
    model = _load(env)
    folded = fold_batchnorm(model)
    assert not any(type(l).__name__ == "BatchNormalization" for l in folded.layers)
    np.testing.assert_allclose(folded.predict(split.x_test[:32], verbose=0),
                               model.predict(split.x_test[:32], verbose=0), atol=1e-5)


def test_low_rank_reduces_parameters(env):
    from tinycomp.compress import lowrank
    from tinycomp.compress.graph import count_params

    _, _, keras = env
    keras.utils.set_random_seed(0)
    # Named layers: Keras' automatic names depend on what the process built before.
    mlp = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu", name="d0"),
                            keras.layers.Dense(64, activation="relu", name="d1"),
                            keras.layers.Dense(10, name="d2")])
    factored, ranks = lowrank.factorise(mlp, param_budget=16 * 128)
    assert count_params(factored) < count_params(mlp)
    assert ranks["d1"][0] <= 16  # 64 x 64 within 16 * 128 weights
    # Full energy keeps the function (layers where a split would not save are left whole).
    exact, _ = lowrank.factorise(mlp, energy=1.0)
    x = np.random.default_rng(0).normal(size=(8, 32)).astype(np.float32)
    np.testing.assert_allclose(exact.predict(x, verbose=0), mlp.predict(x, verbose=0), atol=1e-4)


def test_qat_converts_full_integer_and_bit_exact(env):
    from tests.support.harness import assert_bit_exact
    from tinycomp.compress import qat
    from tinycomp.frontends.keras import quiet_tensorflow

    d, split, _ = env
    model = _load(env)
    with quiet_tensorflow():
        qmodel = qat.qat_train(model, split.x_train[:300], split.y_train[:300], epochs=1)
        buf = qat.qat_to_tflite(qmodel)
    assert qat.float_tensors(buf) == []
    assert_bit_exact(buf, _int8_inputs(buf, split.x_test[:20]))


def test_calibration_ranges_are_imposed(env):
    from ai_edge_litert.interpreter import Interpreter

    from tinycomp.compress import qat
    from tinycomp.compress.calibrate import calibrated_model
    from tinycomp.frontends.keras import quiet_tensorflow

    d, split, _ = env
    model = _load(env)
    with quiet_tensorflow():
        qmodel, ranges = calibrated_model(model, split.x_train[:200], "percentile")
        buf = qat.qat_to_tflite(qmodel)
    lo, hi = ranges["conv2d_1"] if "conv2d_1" in ranges else list(ranges.values())[3]
    scales = [t["quantization"][0] for t in Interpreter(model_content=buf).get_tensor_details()]
    # The fake-quant op nudges the range so 0 is exact; the scale stays (hi - lo) / 255.
    assert any(abs(s - (hi - lo) / 255) < 1e-6 for s in scales)


def test_all_zero_filter_keeps_a_sane_scale(env):
    """A filter pruned to all zeros must not get a near-zero weight scale: its
    int32 bias (bias / (input scale x weight scale)) would saturate and the
    device would output garbage for that channel."""
    from tinycomp.compress import qat
    from tinycomp.compress.calibrate import calibrated_model
    from tinycomp.frontends.keras import quiet_tensorflow
    from tinycomp.frontends.tflite import parse_tflite

    d, split, _ = env
    model = _load(env)
    conv = next(l for l in model.layers if type(l).__name__ == "Conv2D")
    kernel, *rest = conv.get_weights()
    kernel[..., 0] = 0.0
    conv.set_weights([kernel, *rest])
    with quiet_tensorflow():
        buf = qat.qat_to_tflite(calibrated_model(model, split.x_train[:200], "minmax")[0])
    graph = parse_tflite(buf)
    biases = [graph.tensor(n.inputs[2]).data for n in graph.nodes
              if n.op.value == "CONV_2D" and len(n.inputs) > 2 and n.inputs[2] >= 0]
    assert biases and all(np.abs(b.astype(np.int64)).max() < 2**30 for b in biases)


def test_stochastic_rounding_is_unbiased_in_training_and_nearest_after(env):
    """--rounding stochastic: each training step rounds every weight to one of its
    two neighbouring int8 levels, with the expected value the weight itself; an
    inference call (and so the converter) rounds to nearest, like the device."""
    from tinycomp.compress import qat
    from tinycomp.frontends.keras import quiet_tensorflow

    d, split, keras = env
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(4)])
    rng = np.random.default_rng(5)
    kernel = rng.normal(size=(16, 4)).astype(np.float32)
    model.layers[0].set_weights([kernel, np.zeros(4, np.float32)])
    with quiet_tensorflow():
        qmodel = qat.quantize_model(model, rounding="stochastic")
        dense = next(l for l in qmodel.layers if type(l).__name__ == "QuantDense")
        eye = np.eye(16, dtype=np.float32)  # the output rows are the kernel the layer used
        draws = np.stack([np.asarray(dense(eye, training=True)) for _ in range(2000)])
        nearest = np.asarray(dense(eye, training=False))
        copy = qat.quantize_model(model)  # round to nearest throughout
        plain = next(l for l in copy.layers if type(l).__name__ == "QuantDense")
    step = np.abs(kernel).max() / 127
    codes = draws / step
    assert np.allclose(codes, np.round(codes), atol=1e-3)  # on the grid
    assert np.all(np.abs(draws - kernel) < step * 1.001)  # one of the two neighbours
    assert np.all(np.abs(draws.mean(0) - kernel) < step * 0.06)  # unbiased (2000 draws: sd <= 0.011 steps)
    assert np.allclose(nearest, np.round(kernel / step) * step, atol=1e-6)
    assert np.allclose(np.asarray(plain(eye, training=True)), nearest, atol=1e-6)
    assert dense.get_config()["rounding"] == "stochastic"


def test_fisher_diagonal_is_the_mean_squared_per_sample_gradient(env):
    """For softmax regression the per-sample gradient of the cross-entropy
    w.r.t. the kernel is x (p - onehot(y))^T: the Fisher diagonal is the mean
    of its square, not the square of the batch's mean."""
    from tinycomp.compress.sensitivity import fisher_diagonal

    _, _, keras = env
    rng = np.random.default_rng(2)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    model.layers[0].set_weights([rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)])
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    w, b = model.layers[0].get_weights()
    z = x @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = x[:, :, None] * (p - np.eye(3)[y])[:, None, :]
    fisher = fisher_diagonal(model, x, y)[model.layers[0].name]
    np.testing.assert_allclose(fisher, np.mean(g * g, axis=0), rtol=1e-4, atol=1e-9)


def test_fisher_allocation_protects_the_sensitive_layer():
    """Second-order saliency F w^2 / 2 ranks weights across layers: a layer the
    loss is sensitive to keeps its weights, the overall count is exact, and no
    layer goes beyond MAX_LAYER_SPARSITY."""
    from types import SimpleNamespace

    from tinycomp.compress import prune

    rng = np.random.default_rng(4)

    def layer(name, n):
        w = rng.normal(size=n)
        return SimpleNamespace(name=name, kernel=SimpleNamespace(numpy=lambda w=w: w))

    layers = [layer("a", 100), layer("b", 300), layer("c", 600)]
    fisher = {"a": np.full(100, 1e3), "b": np.ones(300), "c": np.full(600, 1e-3)}
    spread = prune.fisher_sparsities(layers, fisher, 0.6)
    assert spread["a"] == 0.0 and spread["c"] == pytest.approx(prune.MAX_LAYER_SPARSITY, abs=0.01)
    assert sum(spread[l.name] * n for l, n in zip(layers, (100, 300, 600))) == pytest.approx(600, abs=1)
