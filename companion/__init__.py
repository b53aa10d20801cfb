"""companion: the tested code of the book *Neural Networks, Tested*.

One module per chapter; the notebooks import from here and never re-define.
"""

from .activations import (
    heaviside,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    tanh,
    tanh_grad,
)
from .backprop import (
    NumpyMLP,
    autograd_gradients,
    gradient_check,
    numerical_gradient,
    relative_error,
)
from .convolution import conv2d, conv_output_size
from .data import (
    SHAPE_NAMES,
    load_digits_tensors,
    make_reversal_task,
    make_seed_dataset,
    make_separable,
    make_shapes,
    train_val_loaders,
)
from .gan import (
    DigitsClassifier,
    Discriminator,
    GANTrainer,
    Generator,
    frechet_distance,
    train_digits_classifier,
)
from .interpret import (
    GradCAM,
    additivity_error,
    completeness_error,
    gaussian_blur,
    integrated_gradients,
    pointing_game,
    randomized_copy,
    shap_values,
    spearman,
)
from .models import ConvolutionalNN, NeuralNetwork, train_shapes_cnn
from .optim import SGD, Adam, optimization_path, quadratic, rosenbrock
from .perceptron import Perceptron
from .plotting import plot_decision_regions, plot_image_grid
from .schedules import CosineAnnealingWarmRestarts, NoamLR
from .training import Trainer, plot_history
from .transformer import (
    MultiHeadAttention,
    PositionalEncoding,
    TransformerBlock,
    TransformerClassifier,
    causal_mask,
    scaled_dot_product_attention,
    sinusoidal_encoding,
)
from .utils import get_device, seed_everything

__version__ = "0.1.0"

__all__ = [
    "GradCAM",
    "additivity_error",
    "completeness_error",
    "gaussian_blur",
    "integrated_gradients",
    "pointing_game",
    "randomized_copy",
    "shap_values",
    "spearman",
    "DigitsClassifier",
    "Discriminator",
    "GANTrainer",
    "Generator",
    "frechet_distance",
    "train_digits_classifier",
    "MultiHeadAttention",
    "PositionalEncoding",
    "TransformerBlock",
    "TransformerClassifier",
    "causal_mask",
    "scaled_dot_product_attention",
    "sinusoidal_encoding",
    "SHAPE_NAMES",
    "ConvolutionalNN",
    "conv2d",
    "conv_output_size",
    "make_reversal_task",
    "make_shapes",
    "train_shapes_cnn",
    "SGD",
    "Adam",
    "CosineAnnealingWarmRestarts",
    "NoamLR",
    "NeuralNetwork",
    "NumpyMLP",
    "autograd_gradients",
    "make_separable",
    "Perceptron",
    "Trainer",
    "get_device",
    "gradient_check",
    "heaviside",
    "load_digits_tensors",
    "make_seed_dataset",
    "numerical_gradient",
    "optimization_path",
    "plot_decision_regions",
    "plot_image_grid",
    "plot_history",
    "quadratic",
    "relative_error",
    "relu",
    "relu_grad",
    "rosenbrock",
    "seed_everything",
    "sigmoid",
    "sigmoid_grad",
    "softmax",
    "tanh",
    "tanh_grad",
    "train_val_loaders",
]
