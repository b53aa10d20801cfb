r"""Backpropagation written out by hand in NumPy (chapter 2).

A fully connected network with :math:`L` layers computes, for a batch :math:`A^{(0)} = X`,

.. math::

    Z^{(l)} = A^{(l-1)} W^{(l)} + \mathbf b^{(l)}, \qquad A^{(l)} = f\big(Z^{(l)}\big),

with a softmax (several classes) or a sigmoid (one output unit, two classes) in the last layer and
the mean cross-entropy :math:`L` as the loss. :meth:`NumpyMLP.backward` applies the chain rule

.. math::

    \frac{\partial L}{\partial w_{ij}^{(l)}}
    = \frac{\partial L}{\partial a_j^{(l)}}
      \cdot \frac{\partial a_j^{(l)}}{\partial z_j^{(l)}}
      \cdot \frac{\partial z_j^{(l)}}{\partial w_{ij}^{(l)}}

layer by layer, from the output back to the input, and :meth:`NumpyMLP.step` takes the gradient
step :math:`w \leftarrow w - \eta\, \partial L / \partial w`.
"""

from __future__ import annotations

import numpy as np
import torch

from . import _validate
from .activations import relu, relu_grad, sigmoid, sigmoid_grad, softmax, tanh, tanh_grad

__all__ = [
    "NumpyMLP",
    "numerical_gradient",
    "relative_error",
    "gradient_check",
    "autograd_gradients",
    "layer_statistics",
]

_ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
}


class NumpyMLP:
    r"""A multi-layer perceptron whose gradients are computed by hand with the chain rule.

    Parameters
    ----------
    layer_sizes : sequence of int
        Units per layer, input first: ``[2, 2, 1]`` is the 2-2-1 network of the chapter,
        ``[10, 32, 3]`` maps 10 features to 3 classes. A last layer of size 1 is a sigmoid unit
        with binary cross-entropy (labels 0/1); a last layer of size :math:`K \ge 2` is a softmax
        with cross-entropy (labels :math:`0 \dots K-1`).
    activation : {"sigmoid", "tanh", "relu"}, default "tanh"
        The hidden-layer activation :math:`f`.
    seed : int, default 0
        Seed of the weight initialisation: Glorot-normal,
        :math:`w \sim \mathcal N(0, 2 / (n_\text{in} + n_\text{out}))`, for sigmoid and tanh;
        He-normal, :math:`w \sim \mathcal N(0, 2 / n_\text{in})`, for ReLU. Biases start at 0.

    Attributes
    ----------
    weights : list of ndarray
        ``weights[l]`` has shape ``(layer_sizes[l], layer_sizes[l + 1])``.
    biases : list of ndarray
        ``biases[l]`` has shape ``(layer_sizes[l + 1],)``.
    grad_weights, grad_biases : list of ndarray
        :math:`\partial L / \partial W^{(l)}` and :math:`\partial L / \partial \mathbf b^{(l)}`
        from the last :meth:`backward`.
    history : dict of list
        The per-epoch history of the last :meth:`fit` (the dict it returned); absent before.

    Raises
    ------
    ValueError
        If ``layer_sizes`` has fewer than two entries or a non-positive size, or ``activation`` is
        unknown.
    """

    def __init__(self, layer_sizes, activation: str = "tanh", seed: int = 0):
        sizes = list(layer_sizes)
        if len(sizes) < 2:
            raise ValueError(
                f"layer_sizes needs at least an input and an output size; got {layer_sizes!r}"
            )
        self.layer_sizes = [_validate.positive_int(n, "layer_sizes entry") for n in sizes]
        self.activation = _validate.one_of(activation, "activation", _ACTIVATIONS)
        self._f, self._f_grad = _ACTIVATIONS[activation]
        rng = np.random.default_rng(_validate.nonnegative_int(seed, "seed"))
        self.weights, self.biases = [], []
        for n_in, n_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True):
            var = 2.0 / n_in if activation == "relu" else 2.0 / (n_in + n_out)
            self.weights.append(rng.normal(0.0, np.sqrt(var), size=(n_in, n_out)))
            self.biases.append(np.zeros(n_out))
        self.grad_weights = [np.zeros_like(w) for w in self.weights]
        self.grad_biases = [np.zeros_like(b) for b in self.biases]
        self._cache = None

    @property
    def n_classes(self) -> int:
        """The number of classes (2 for a single sigmoid output unit, else the output size)."""
        return 2 if self.layer_sizes[-1] == 1 else self.layer_sizes[-1]

    def forward(self, X) -> np.ndarray:
        r"""Forward pass :math:`Z^{(l)} = A^{(l-1)} W^{(l)} + \mathbf b^{(l)}`,
        :math:`A^{(l)} = f(Z^{(l)})`, keeping every :math:`Z` and :math:`A` for :meth:`backward`.

        Parameters
        ----------
        X : array_like of shape (n_samples, layer_sizes[0])

        Returns
        -------
        ndarray
            Class probabilities: shape ``(n_samples, K)`` for a softmax output,
            ``(n_samples, 1)`` holding :math:`P(y = 1)` for a sigmoid output.

        Raises
        ------
        ValueError
            If ``X`` is not 2-D, has the wrong number of features, or holds NaN/inf.
        """
        return self._forward(_validate.matrix(X, "X", n_columns=self.layer_sizes[0]))

    def _forward(self, a: np.ndarray) -> np.ndarray:
        """:meth:`forward` on an already validated batch (the inner loop of :meth:`fit`)."""
        activations, pre_activations = [], []
        activations.append(a)
        last = len(self.weights) - 1
        for layer, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = a @ W + b
            pre_activations.append(z)
            if layer < last:
                a = self._f(z)
            else:
                a = sigmoid(z) if self.layer_sizes[-1] == 1 else softmax(z, axis=1)
            activations.append(a)
        self._cache = (activations, pre_activations)
        return a

    def _cross_entropy(self, y: np.ndarray) -> float:
        """Mean cross-entropy of the cached forward pass, computed from the logits (stable)."""
        z = self._cache[1][-1]
        if self.layer_sizes[-1] == 1:  # -[y log s(z) + (1-y) log(1-s(z))] = softplus(z) - y z
            z = z[:, 0]
            return float(np.mean(np.maximum(z, 0.0) - y * z + np.log1p(np.exp(-np.abs(z)))))
        z_max = z.max(axis=1, keepdims=True)  # -log softmax(z)_y = logsumexp(z) - z_y
        log_sum_exp = z_max[:, 0] + np.log(np.exp(z - z_max).sum(axis=1))
        return float(np.mean(log_sum_exp - z[np.arange(len(y)), y]))

    def loss(self, X, y) -> float:
        r"""Mean cross-entropy :math:`L = -\frac1n \sum_{i} \log p_{i, y_i}` of the predictions.

        Runs :meth:`forward` (so a following :meth:`backward` differentiates this loss).

        Parameters
        ----------
        X : array_like of shape (n_samples, layer_sizes[0])
        y : array_like of int, shape (n_samples,)
            Class labels in :math:`0 \dots K-1` (0/1 for a single output unit).

        Returns
        -------
        float

        Raises
        ------
        ValueError
            On a bad ``X`` (see :meth:`forward`), or labels of the wrong length or range.
        """
        self.forward(X)
        y = _validate.labels(y, "y", n_samples=len(self._cache[0][0]), n_classes=self.n_classes)
        return self._cross_entropy(y)

    def backward(self, y):
        r"""Gradients of the mean cross-entropy by the chain rule, for the last :meth:`forward`.

        With softmax (or sigmoid) and cross-entropy the output error is simply
        :math:`\delta^{(L)} = \partial L / \partial Z^{(L)} = (A^{(L)} - Y) / n`, with :math:`Y`
        the one-hot labels. Then, for :math:`l = L, \dots, 1`,

        .. math::

            \frac{\partial L}{\partial W^{(l)}} = A^{(l-1)\top} \delta^{(l)}, \qquad
            \frac{\partial L}{\partial \mathbf b^{(l)}} = \textstyle\sum_i \delta^{(l)}_i, \qquad
            \delta^{(l-1)} = \big(\delta^{(l)} W^{(l)\top}\big) \odot f'\big(Z^{(l-1)}\big).

        Parameters
        ----------
        y : array_like of int, shape (n_samples,)
            Labels of the batch given to the last :meth:`forward`.

        Returns
        -------
        grad_weights, grad_biases : list of ndarray
            Same shapes as ``weights`` and ``biases``; also stored on the model.

        Raises
        ------
        RuntimeError
            If :meth:`forward` has not been called.
        ValueError
            If ``y`` does not match the batch of the last forward pass.
        """
        if self._cache is None:
            raise RuntimeError("backward needs the cache of a forward pass: call forward(X) first")
        n = len(self._cache[0][0])
        y = _validate.labels(y, "y", n_samples=n, n_classes=self.n_classes, x_name="the last X")
        return self._backward(y)

    def _backward(self, y: np.ndarray):
        """:meth:`backward` with validated labels (the inner loop of :meth:`fit`)."""
        activations, pre_activations = self._cache
        n = len(activations[0])
        if self.layer_sizes[-1] == 1:
            targets = y[:, None].astype(np.float64)
        else:
            targets = np.eye(self.n_classes)[y]
        delta = (activations[-1] - targets) / n  # dL/dz of the output layer
        for layer in reversed(range(len(self.weights))):
            # dz_j/dw_ij = a_i, the activation of the layer below; dz_j/db_j = 1
            self.grad_weights[layer] = activations[layer].T @ delta
            self.grad_biases[layer] = delta.sum(axis=0)
            if layer > 0:
                dL_da = delta @ self.weights[layer].T  # dL/da of the layer below
                delta = dL_da * self._f_grad(pre_activations[layer - 1])  # times da/dz = f'(z)
        return self.grad_weights, self.grad_biases

    def step(self, lr: float) -> None:
        r"""Gradient step :math:`w \leftarrow w - \eta\, \partial L / \partial w`, in place.

        Parameters
        ----------
        lr : float
            The learning rate :math:`\eta > 0`.
        """
        self._step(_validate.positive_float(lr, "lr"))

    def _step(self, lr: float) -> None:
        """:meth:`step` with a validated learning rate."""
        for W, b, dW, db in zip(
            self.weights, self.biases, self.grad_weights, self.grad_biases, strict=True
        ):
            W -= lr * dW
            b -= lr * db

    def predict(self, X) -> np.ndarray:
        """Most probable class of every row of ``X``.

        Parameters
        ----------
        X : array_like of shape (n_samples, layer_sizes[0])

        Returns
        -------
        ndarray of int64, shape (n_samples,)
        """
        return self._classes(self.forward(X))

    def _classes(self, p: np.ndarray) -> np.ndarray:
        """Most probable class from the output probabilities ``p``."""
        if self.layer_sizes[-1] == 1:
            return (p[:, 0] >= 0.5).astype(np.int64)
        return p.argmax(axis=1)

    def _evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Loss and accuracy on validated ``X, y`` from one forward pass (for :meth:`fit`)."""
        p = self._forward(X)
        return self._cross_entropy(y), float(np.mean(self._classes(p) == y))

    def score(self, X, y) -> float:
        """Accuracy: the fraction of rows of ``X`` predicted as their label in ``y``.

        Parameters
        ----------
        X : array_like of shape (n_samples, layer_sizes[0])
        y : array_like of int, shape (n_samples,)

        Returns
        -------
        float
        """
        pred = self.predict(X)
        y = _validate.labels(y, "y", n_samples=len(pred), n_classes=self.n_classes)
        return float(np.mean(pred == y))

    def fit(
        self,
        X,
        y,
        epochs: int = 100,
        lr: float = 0.1,
        batch_size=None,
        seed: int = 0,
        validation=None,
    ):
        """Train with (mini-batch) gradient descent: forward, backward, step.

        Like every ``fit`` in ``companion``, it returns the training history, a dict of
        per-epoch lists, and also keeps it as :attr:`history`.

        Parameters
        ----------
        X : array_like of shape (n_samples, layer_sizes[0])
        y : array_like of int, shape (n_samples,)
        epochs : int, default 100
            Passes over the data.
        lr : float, default 0.1
            Learning rate :math:`\\eta`.
        batch_size : int, optional
            Examples per step; ``None`` (default) uses the whole data set (full-batch descent).
        seed : int, default 0
            Seed of the shuffling order of mini-batches.
        validation : tuple (X_val, y_val), optional
            Held-out data, evaluated (never trained on) at the end of every epoch.

        Returns
        -------
        dict of list
            ``{"loss": [...], "accuracy": [...]}``: the loss and accuracy on all of ``X`` at the
            end of every epoch; with ``validation`` also ``"val_loss"`` and ``"val_accuracy"``.
            The same dict is stored as :attr:`history` (it describes this call only: a second
            ``fit`` continues from the current weights but starts a new history).

        Raises
        ------
        ValueError
            On bad data (see :meth:`forward`, :meth:`loss`) or non-positive ``epochs``, ``lr`` or
            ``batch_size``.
        """
        X = _validate.matrix(X, "X", n_columns=self.layer_sizes[0])
        y = _validate.labels(y, "y", n_samples=len(X), n_classes=self.n_classes)
        epochs = _validate.positive_int(epochs, "epochs")
        lr = _validate.positive_float(lr, "lr")
        n = len(X)
        batch_size = n if batch_size is None else _validate.positive_int(batch_size, "batch_size")
        rng = np.random.default_rng(_validate.nonnegative_int(seed, "seed"))
        history = {"loss": [], "accuracy": []}
        if validation is not None:
            if not isinstance(validation, (tuple, list)) or len(validation) != 2:
                raise ValueError("validation must be a pair (X_val, y_val)")
            X_val = _validate.matrix(validation[0], "X_val", n_columns=self.layer_sizes[0])
            y_val = _validate.labels(
                validation[1],
                "y_val",
                n_samples=len(X_val),
                n_classes=self.n_classes,
                x_name="X_val",
            )
            history.update(val_loss=[], val_accuracy=[])
        for _ in range(epochs):
            order = rng.permutation(n) if batch_size < n else np.arange(n)
            for start in range(0, n, batch_size):
                batch = order[start : start + batch_size]
                self._forward(X[batch])
                self._backward(y[batch])
                self._step(lr)
            loss, accuracy = self._evaluate(X, y)
            history["loss"].append(loss)
            history["accuracy"].append(accuracy)
            if validation is not None:
                val_loss, val_accuracy = self._evaluate(X_val, y_val)
                history["val_loss"].append(val_loss)
                history["val_accuracy"].append(val_accuracy)
        self.history = history
        return history


def numerical_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    r"""Central-difference estimate of the gradient of a scalar function.

    .. math::

        \frac{\partial f}{\partial x_i} \approx
        \frac{f(x + \varepsilon e_i) - f(x - \varepsilon e_i)}{2 \varepsilon}

    The error is :math:`O(\varepsilon^2)` from truncation plus :math:`O(u / \varepsilon)` from
    rounding (:math:`u \approx 10^{-16}` in float64), so :math:`\varepsilon \approx 10^{-6}` is a
    good default.

    ``x`` is perturbed **in place**, one entry at a time, and restored afterwards (also if ``f``
    raises). That is what makes ``numerical_gradient(lambda _: net.loss(X, y), net.weights[0])``
    work: ``f`` sees the network with the perturbed weight.

    Parameters
    ----------
    f : callable
        ``f(x)`` returns a real number.
    x : ndarray of float
        The point; a writeable floating-point array.
    eps : float, default 1e-6
        The step :math:`\varepsilon > 0`.

    Returns
    -------
    ndarray of float64, same shape as ``x``

    Raises
    ------
    TypeError
        If ``f`` is not callable or ``x`` is not a writeable float ndarray.
    ValueError
        If ``eps`` is not a finite positive number.
    """
    if not callable(f):
        raise TypeError(f"f must be callable; got {type(f).__name__}")
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or not x.flags.writeable:
        raise TypeError(
            "x must be a writeable float ndarray (it is perturbed in place); "
            f"got {type(x).__name__}"
            + (f" of dtype {x.dtype}" if isinstance(x, np.ndarray) else "")
        )
    eps = _validate.positive_float(eps, "eps")
    grad = np.zeros(x.shape, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        original = x[idx]
        try:
            x[idx] = original + eps
            f_plus = float(f(x))
            x[idx] = original - eps
            f_minus = float(f(x))
        finally:
            x[idx] = original
        grad[idx] = (f_plus - f_minus) / (2.0 * eps)
    return grad


def relative_error(g, g_hat) -> float:
    r"""Scale-free distance of two gradients, :math:`\|g - \hat g\| / (\|g\| + \|\hat g\|)`.

    0 when they are equal, 1 when they point in opposite directions or one is zero. Defined as 0
    when both are zero.

    Parameters
    ----------
    g, g_hat : array_like
        Same shape.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    g = _validate.float_array(g, "g")
    g_hat = _validate.float_array(g_hat, "g_hat")
    if g.shape != g_hat.shape:
        raise ValueError(f"g and g_hat must have the same shape; got {g.shape} and {g_hat.shape}")
    scale = np.linalg.norm(g) + np.linalg.norm(g_hat)
    return 0.0 if scale == 0 else float(np.linalg.norm(g - g_hat) / scale)


def gradient_check(net: NumpyMLP, X, y, eps: float = 1e-6) -> list[float]:
    """Compare :meth:`NumpyMLP.backward` with :func:`numerical_gradient`, array by array.

    Parameters
    ----------
    net : NumpyMLP
        Its weights are perturbed during the check and restored afterwards.
    X : array_like of shape (n_samples, layer_sizes[0])
    y : array_like of int, shape (n_samples,)
    eps : float, default 1e-6
        Finite-difference step.

    Returns
    -------
    list of float
        :func:`relative_error` of every weight matrix, then every bias vector. A correct
        backward pass gives values around :math:`10^{-9}` or below in float64.
    """
    net.loss(X, y)
    grad_weights, grad_biases = net.backward(y)
    analytic = [g.copy() for g in grad_weights + grad_biases]

    def loss_at(_):
        return net.loss(X, y)

    return [
        relative_error(g, numerical_gradient(loss_at, param, eps=eps))
        for param, g in zip(net.weights + net.biases, analytic, strict=True)
    ]


def autograd_gradients(net: NumpyMLP, X, y):
    """The same network and loss rebuilt in PyTorch (float64), differentiated by autograd.

    An independent check of :meth:`NumpyMLP.backward`: nothing here is written by hand except the
    forward pass; PyTorch derives every gradient itself.

    Parameters
    ----------
    net : NumpyMLP
        Its weights are copied, not changed.
    X : array_like of shape (n_samples, layer_sizes[0])
    y : array_like of int, shape (n_samples,)

    Returns
    -------
    loss : float
    grad_weights, grad_biases : list of ndarray
        Same shapes as ``net.weights`` and ``net.biases``.

    Raises
    ------
    ValueError
        On bad ``X`` or ``y``, as :meth:`NumpyMLP.loss`.
    """
    X = _validate.matrix(X, "X", n_columns=net.layer_sizes[0])
    y = _validate.labels(y, "y", n_samples=len(X), n_classes=net.n_classes)
    f = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[net.activation]
    weights = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in net.weights]
    biases = [torch.tensor(b, dtype=torch.float64, requires_grad=True) for b in net.biases]
    a = torch.tensor(X, dtype=torch.float64)
    for layer, (W, b) in enumerate(zip(weights, biases, strict=True)):
        a = a @ W + b
        if layer < len(weights) - 1:
            a = f(a)
    target = torch.tensor(y)
    if net.layer_sizes[-1] == 1:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a[:, 0], target.double())
    else:
        loss = torch.nn.functional.cross_entropy(a, target)
    loss.backward()
    return (
        loss.item(),
        [w.grad.numpy() for w in weights],
        [b.grad.numpy() for b in biases],
    )


_TORCH_ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
_INITS = ("pytorch", "standard", "glorot", "he")


def _init_network(activation, init, depth, width, n_samples, weight_scale, seed):
    """The layers, inputs and labels of :func:`layer_statistics` (validated arguments)."""
    with torch.random.fork_rng(devices=[]):  # leave the caller's random stream untouched
        torch.manual_seed(seed)
        layers = [torch.nn.Linear(width, width, dtype=torch.float64) for _ in range(depth)]
        layers.append(torch.nn.Linear(width, 2, dtype=torch.float64))
        with torch.no_grad():
            for layer in layers:
                if init == "standard":
                    torch.nn.init.normal_(layer.weight, 0.0, 1.0)
                elif init == "glorot":
                    torch.nn.init.xavier_normal_(layer.weight)
                elif init == "he":
                    torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                if init != "pytorch":
                    layer.bias.zero_()
                layer.weight *= weight_scale
        X = torch.randn(n_samples, width, dtype=torch.float64)
        y = torch.randint(0, 2, (n_samples,))
    return layers, X, y


def layer_statistics(
    activation: str = "sigmoid",
    init: str = "pytorch",
    depth: int = 10,
    width: int = 64,
    n_samples: int = 256,
    weight_scale: float = 1.0,
    seed: int = 0,
) -> dict:
    r"""Layer-by-layer statistics of a deep MLP at initialisation, forward and backward.

    The network has ``depth`` hidden layers of ``width`` units,
    :math:`Z^{(l)} = A^{(l-1)} W^{(l)} + \mathbf b^{(l)}`, :math:`A^{(l)} = f(Z^{(l)})`, then a
    linear layer to two classes and the mean cross-entropy, on inputs :math:`A^{(0)} = X` with
    i.i.d. :math:`\mathcal N(0, 1)` entries and random labels. Backpropagation carries the
    gradient down by

    .. math::

        \delta^{(l)} = \frac{\partial L}{\partial Z^{(l)}}
        = \big(\delta^{(l+1)} W^{(l+1)\top}\big) \odot f'\big(Z^{(l)}\big),

    one factor :math:`W^\top` and one factor :math:`f'` per layer. The weights are drawn by
    ``init`` (float64, with PyTorch's own initialisers), then multiplied by ``weight_scale``:

    - ``"pytorch"``: what ``torch.nn.Linear`` does by default,
      :math:`w, b \sim \mathcal U(-1/\sqrt{n_\text{in}}, 1/\sqrt{n_\text{in}})`, so
      :math:`\operatorname{Var} w = 1 / (3 n_\text{in})`;
    - ``"standard"``: :math:`w \sim \mathcal N(0, 1)`, :math:`b = 0` (the naive choice);
    - ``"glorot"``: :math:`w \sim \mathcal N(0, 2 / (n_\text{in} + n_\text{out}))`, :math:`b = 0`
      (``torch.nn.init.xavier_normal_``);
    - ``"he"``: :math:`w \sim \mathcal N(0, 2 / n_\text{in})`, :math:`b = 0`
      (``torch.nn.init.kaiming_normal_`` with ``nonlinearity="relu"``).

    Parameters
    ----------
    activation : {"sigmoid", "tanh", "relu"}, default "sigmoid"
        The hidden activation :math:`f`.
    init : {"pytorch", "standard", "glorot", "he"}, default "pytorch"
    depth : int, default 10
        Hidden layers.
    width : int, default 64
        Units per hidden layer, and input features.
    n_samples : int, default 256
        Rows of :math:`X`.
    weight_scale : float, default 1.0
        Factor applied to every weight matrix after ``init`` (biases are not scaled).
    seed : int, default 0
        Seeds the weights, :math:`X` and the labels; the caller's global PyTorch generator is
        left as it was.

    Returns
    -------
    dict of ndarray
        ``"variance"``: :math:`\operatorname{Var} Z^{(l)}` over all examples and units, for the
        hidden layers :math:`l = 1, \dots, \text{depth}`; ``"mean_slope"``: the mean of
        :math:`f'(Z^{(l)})`, same layers; ``"grad_norm"``: the Frobenius norm
        :math:`\|\delta^{(l)}\|` for :math:`l = 1, \dots, \text{depth} + 1` (the last entry is
        the output layer's). ``grad_norm[0] / grad_norm[-1]`` is how much of the gradient at the
        output reaches the first layer.

    Raises
    ------
    ValueError
        If ``activation`` or ``init`` is unknown or a size, ``weight_scale`` or ``seed`` is out
        of range.
    TypeError
        If a size or the seed is not an integer, or ``weight_scale`` is not a number.
    """
    _validate.one_of(activation, "activation", _TORCH_ACTIVATIONS)
    _validate.one_of(init, "init", _INITS)
    depth = _validate.positive_int(depth, "depth")
    width = _validate.positive_int(width, "width")
    n_samples = _validate.positive_int(n_samples, "n_samples")
    weight_scale = _validate.positive_float(weight_scale, "weight_scale")
    seed = _validate.nonnegative_int(seed, "seed")
    layers, X, y = _init_network(activation, init, depth, width, n_samples, weight_scale, seed)
    f = _TORCH_ACTIVATIONS[activation]
    f_grad = _ACTIVATIONS[activation][1]
    a, pre_activations = X, []
    for layer in layers[:-1]:
        z = layer(a)
        z.retain_grad()  # keep dL/dZ of this intermediate tensor
        pre_activations.append(z)
        a = f(z)
    logits = layers[-1](a)
    logits.retain_grad()
    pre_activations.append(logits)
    torch.nn.functional.cross_entropy(logits, y).backward()
    hidden = [z.detach().numpy() for z in pre_activations[:-1]]
    return {
        "variance": np.array([z.var() for z in hidden]),
        "mean_slope": np.array([f_grad(z).mean() for z in hidden]),
        "grad_norm": np.array([np.linalg.norm(z.grad.numpy()) for z in pre_activations]),
    }
