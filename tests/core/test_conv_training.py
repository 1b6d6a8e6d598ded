"""Learning tests: the book's SimpleConvNet fits a small generated image task, and float16
inference of the trained CNN ("bit reduction", the book's ch. 8.3.4) keeps its accuracy.

Float16 inference: ``model.astype("float16")`` casts every parameter and
buffer; a floating input is cast to the layer's dtype. The conv/linear
products multiply float16 data with float32 accumulation (NumPy has no float16
BLAS), then round to float16; elementwise layers compute in float16.
``model.astype("float32")`` restores full precision for training.
"""
import numpy as np
import pytest

from core.losses import CrossEntropyLoss
from core.optim import Adam
from tests.core.convnets import simple_conv_net

SIZE = 12


def make_shapes(n: int, seed: int):
    """``n`` noisy 1x12x12 images of 4 classes, the shape at a random position:
    0 horizontal bar, 1 vertical bar, 2 diagonal, 3 filled 3x3 square."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n)
    x = 0.15 * rng.standard_normal((n, 1, SIZE, SIZE)).astype(np.float32)
    r, c = rng.integers(1, SIZE - 6, size=(2, n))
    idx = np.arange(5)
    for i in range(n):
        if y[i] == 0:
            x[i, 0, r[i] + 2, c[i] + idx] += 1.0
        elif y[i] == 1:
            x[i, 0, r[i] + idx, c[i] + 2] += 1.0
        elif y[i] == 2:
            x[i, 0, r[i] + idx, c[i] + idx] += 1.0
        else:
            x[i, 0, r[i] + 1:r[i] + 4, c[i] + 1:c[i] + 4] += 1.0
    return x, y


def small_simple_conv_net(seed: int = 0):
    """The book's SimpleConvNet layout (Conv - ReLU - Pool 2 - Linear - ReLU - Linear), sized for 12x12 input."""
    return simple_conv_net(input_shape=(1, SIZE, SIZE), filters=8, kernel=3, hidden=32, num_classes=4, rng=seed)


def accuracy(model, x, y, batch: int = 250) -> float:
    model.eval()
    pred = np.concatenate([np.argmax(model(x[i:i + batch]), axis=1) for i in range(0, len(x), batch)])
    model.train()
    return float(np.mean(pred == y))


def train(model, x, y, epochs: int, seed: int = 0, lr: float = 3e-3, batch: int = 32):
    loss_fn = CrossEntropyLoss()
    opt = Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    model[0].requires_input_grad = False
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            b = order[i:i + batch]
            loss_fn(model(x[b]), y[b])
            opt.zero_grad()
            model.backward(loss_fn.backward())
            opt.step()
    return model


@pytest.fixture(scope="module")
def trained():
    x, y = make_shapes(600, seed=0)
    return train(small_simple_conv_net(), x, y, epochs=6), x, y


def test_simple_conv_net_fits_generated_images(trained):
    model, x, y = trained
    acc = accuracy(model, x, y)
    assert acc > 0.95, f"training accuracy {acc:.3f}"


def test_untrained_net_is_at_chance():
    """The learning test can fail: before training the net is near 25%."""
    x, y = make_shapes(600, seed=0)
    assert accuracy(small_simple_conv_net(), x, y) < 0.6


def test_float16_inference_keeps_accuracy_and_halves_parameter_memory(trained):
    model, _, _ = trained
    x, y = make_shapes(2000, seed=1)  # fresh images: 0.5 points = 10 of them
    acc32 = accuracy(model, x, y)
    state = model.state_dict()
    bytes32 = sum(p.data.nbytes for p in model.parameters())
    model.astype("float16")
    try:
        assert all(p.data.dtype == np.float16 for p in model.parameters())
        assert model(x[:4]).dtype == np.float16  # float32 images are cast by the first layer
        acc16 = accuracy(model, x, y)
        bytes16 = sum(p.data.nbytes for p in model.parameters())
        model.astype("float32")  # ... and back: float32 again, values rounded to float16 precision
        for name, p in model.named_parameters():
            assert p.data.dtype == np.float32
            np.testing.assert_allclose(p.data, state[name], rtol=2 ** -11, atol=2 ** -24, err_msg=name)
    finally:
        model.astype("float32")
        model.load_state_dict(state)
    assert bytes16 * 2 == bytes32
    assert acc32 > 0.9
    assert abs(acc16 - acc32) < 0.005, f"float32 {acc32:.4f} vs float16 {acc16:.4f}"
