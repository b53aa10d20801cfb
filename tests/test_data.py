import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from companion.data import (
    few_shot_split,
    load_digits_tensors,
    make_glyphs,
    make_pasted_digits,
    make_reversal_task,
    make_seed_dataset,
    make_separable,
    make_shapes,
    train_val_loaders,
)


def notes_create_synthetic_data(n_samples=1000, n_features=10, n_classes=3):
    """The original notes' create_synthetic_data, re-created minimally, defects included."""
    np.random.seed(42)  # reseeds the global generator, for everything that runs after it
    X = np.random.randn(n_samples, n_features)
    y = np.zeros(n_samples)
    for i in range(n_samples):  # n_classes is never read
        if X[i, 0] + X[i, 1] > 0:
            y[i] = 0 if X[i, 2] > 0 else 1
        else:
            y[i] = 2
    return torch.FloatTensor(X), torch.LongTensor(y.astype(int))


def original_recipe(n_samples=1000, n_features=10):
    """The notes' data, with NumPy's global state put back afterwards."""
    state = np.random.get_state()
    try:
        return notes_create_synthetic_data(n_samples, n_features)
    finally:
        np.random.set_state(state)


def test_seed_dataset_is_bit_identical_to_the_original_recipe():
    X, y = make_seed_dataset()
    X0, y0 = original_recipe()
    assert X.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(X, X0) and torch.equal(y, y0)


def test_pitfall_notes_data_reseed_numpys_global_generator_and_make_seed_dataset_does_not():
    np.random.seed(7)
    expected = np.random.rand()
    # The defect: whatever the user seeded before, the notes' data leave the global generator
    # in the state "seed 42, then 10 000 draws", for every later NumPy call.
    np.random.seed(7)
    notes_create_synthetic_data()
    after_notes = np.random.rand()
    np.random.seed(42)
    np.random.randn(1000, 10)
    assert after_notes != expected and after_notes == np.random.rand()
    # The fix draws from its own generator: the user's seed 7 still decides the next number.
    np.random.seed(7)
    make_seed_dataset()
    assert np.random.rand() == expected


def test_pitfall_notes_data_ignore_n_classes_and_make_seed_dataset_rejects_other_values():
    _, y = notes_create_synthetic_data(n_classes=5)  # the defect: silently 3 classes
    assert sorted(set(y.tolist())) == [0, 1, 2]
    with pytest.raises(ValueError, match="n_classes must be 3.*got 5"):
        make_seed_dataset(n_classes=5)
    assert torch.equal(make_seed_dataset(n_classes=3)[1], make_seed_dataset()[1])
    # The notes' positional call create_synthetic_data(1000, 10, 3) cannot become seed=3.
    with pytest.raises(TypeError, match="positional argument"):
        make_seed_dataset(1000, 10, 3)


def test_pitfall_unseeded_torch_makes_every_run_different_and_seed_everything_fixes_it():
    from companion.models import NeuralNetwork
    from companion.utils import seed_everything

    X, y = make_seed_dataset()

    def run():  # the random parts of a training run: initial weights, dropout, batch order
        model = NeuralNetwork(10, [64, 32], 3, dropout_rate=0.2)
        mask = model(X[:4]).detach()  # training mode: dropout is on
        order = next(iter(DataLoader(TensorDataset(y[:800]), batch_size=32, shuffle=True)))[0]
        return [p.detach().clone() for p in model.parameters()] + [mask, order]

    # The defect: the notes seed NumPy for the data, never torch; two runs differ everywhere.
    first, second = run(), run()
    assert all(not torch.equal(a, b) for a, b in zip(first, second, strict=True))
    # The fix, the first cell of every chapter: seed_everything(0) seeds torch too.
    seed_everything(0)
    first = run()
    seed_everything(0)
    assert all(torch.equal(a, b) for a, b in zip(first, run(), strict=True))


def test_loaders_give_the_batches_of_a_shuffling_dataloader_bit_for_bit():
    X, y = make_seed_dataset()
    torch.manual_seed(5)
    train, val = train_val_loaders(X, y, train_size=700, batch_size=48, seed=3)
    ours = [batch for _ in range(3) for loader in (train, val) for batch in loader]
    ours_next = torch.rand(2)  # the global generator after three epochs
    torch.manual_seed(5)
    generator = torch.Generator().manual_seed(3)
    reference = (
        DataLoader(
            TensorDataset(X[:700], y[:700]), batch_size=48, shuffle=True, generator=generator
        ),
        DataLoader(TensorDataset(X[700:], y[700:]), batch_size=48),
    )
    theirs = [batch for _ in range(3) for loader in reference for batch in loader]
    assert len(ours) == len(theirs) == 3 * (15 + 7)
    for (a, b), (c, d) in zip(ours, theirs, strict=True):
        assert torch.equal(a, c) and torch.equal(b, d) and a.dtype == c.dtype
    assert torch.equal(torch.rand(2), ours_next)
    assert len(train) == 15 and len(val) == 7
    assert torch.equal(train.generator.get_state(), generator.get_state())


def test_seed_dataset_class_balance_is_the_original():
    _, y = make_seed_dataset()
    assert torch.bincount(y).tolist() == torch.bincount(original_recipe()[1]).tolist()
    assert set(y.tolist()) == {0, 1, 2}


def test_seed_dataset_rejects_too_few_features():
    with pytest.raises(ValueError, match="n_features must be at least 3"):
        make_seed_dataset(n_features=2)


def test_loaders_split_800_200_and_shuffle_reproducibly():
    X, y = make_seed_dataset()
    train, val = train_val_loaders(X, y)
    assert len(train.dataset) == 800 and len(val.dataset) == 200
    assert torch.equal(val.dataset.tensors[0], X[800:])
    first = [b[1] for b in train_val_loaders(X, y, seed=3)[0]]
    again = [b[1] for b in train_val_loaders(X, y, seed=3)[0]]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert len(first) == 25 and first[0].shape == (32,)


def test_loaders_reject_bad_input():
    X, y = make_seed_dataset(100)
    with pytest.raises(ValueError, match="y has 99 labels but X has 100"):
        train_val_loaders(X, y[:99])
    with pytest.raises(ValueError, match="train_size"):
        train_val_loaders(X, y, train_size=100)
    with pytest.raises(TypeError, match="torch tensors"):
        train_val_loaders(X.numpy(), y)


def test_digits_are_scaled_images():
    X, y = load_digits_tensors()
    assert X.shape == (1797, 1, 8, 8) and y.shape == (1797,)
    assert X.min() == 0.0 and X.max() == 1.0
    assert sorted(set(y.tolist())) == list(range(10))


def test_separable_data_respect_the_margin():
    X, y, w, b = make_separable(150, margin=0.4, seed=3)
    assert X.shape == (150, 2) and y.shape == (150,)
    distance = (X @ w + b) / np.linalg.norm(w)
    assert np.all(np.abs(distance) > 0.4)
    np.testing.assert_array_equal(y, distance > 0)
    assert 0 < y.mean() < 1
    with pytest.raises(ValueError, match="margin"):
        make_separable(margin=1.5)


def test_reversal_task_targets_are_reversed_sources():
    src, tgt = make_reversal_task(50, seq_len=6, vocab=7, seed=1)
    assert src.shape == tgt.shape == (50, 6) and src.dtype == torch.int64
    assert torch.equal(tgt, src.flip(1)) and int(src.max()) < 7 and int(src.min()) >= 0
    assert torch.equal(make_reversal_task(50, 6, 7, seed=1)[0], src)
    assert not torch.equal(make_reversal_task(50, 6, 7, seed=2)[0], src)
    with pytest.raises(ValueError, match="seq_len and vocab"):
        make_reversal_task(10, seq_len=1)


def test_shapes_have_tight_boxes_inside_the_image():
    images, labels, boxes = make_shapes(200, size=24, seed=3, noise=0.0)
    assert images.shape == (200, 1, 24, 24) and labels.shape == (200,) and boxes.shape == (200, 4)
    assert set(labels.tolist()) == {0, 1, 2}
    for img, box in zip(images[:, 0], boxes, strict=True):
        r0, c0, r1, c1 = box.tolist()
        assert 0 <= r0 <= r1 < 24 and 0 <= c0 <= c1 < 24
        on = img > 0.5  # noise-free: exactly the shape's pixels
        rows, cols = torch.nonzero(on, as_tuple=True)
        assert (rows.min(), cols.min(), rows.max(), cols.max()) == (r0, c0, r1, c1)
        assert r1 - r0 + 1 >= 24 // 4 - 1


def test_shape_classes_differ_in_fill_fraction():
    images, labels, boxes = make_shapes(300, size=32, seed=0, noise=0.0)
    fill = []
    for img, box in zip(images[:, 0], boxes, strict=True):
        r0, c0, r1, c1 = box.tolist()
        fill.append((img[r0 : r1 + 1, c0 : c1 + 1] > 0.5).float().mean().item())
    fill = torch.tensor(fill)
    square, circle, triangle = (fill[labels == k].mean().item() for k in range(3))
    assert square > 0.95 and 0.7 < circle < 0.85 and 0.4 < triangle < 0.6  # 1, pi/4, 1/2


def test_make_shapes_rejects_bad_sizes():
    with pytest.raises(ValueError, match="size must be at least 8"):
        make_shapes(10, size=6)
    with pytest.raises(ValueError, match="noise"):
        make_shapes(10, noise=-1.0)


# --------------------------------------------------------------------------- glyphs
def test_glyphs_are_float_images_with_int_labels_in_range():
    images, labels = make_glyphs(300, num_classes=7, size=20, seed=1)
    assert images.shape == (300, 1, 20, 20) and images.dtype == torch.float32
    assert labels.shape == (300,) and labels.dtype == torch.int64
    assert set(labels.tolist()) == set(range(7))  # drawn uniformly: every class shows up
    default_images, default_labels = make_glyphs(50)
    assert default_images.shape == (50, 1, 16, 16)
    assert 0 <= int(default_labels.min()) and int(default_labels.max()) < 100


def test_glyphs_are_deterministic_per_seed():
    images, labels = make_glyphs(64, num_classes=10, seed=3)
    again_images, again_labels = make_glyphs(64, num_classes=10, seed=3)
    assert torch.equal(images, again_images) and torch.equal(labels, again_labels)
    other_images, other_labels = make_glyphs(64, num_classes=10, seed=4)
    assert not torch.equal(images, other_images) and not torch.equal(labels, other_labels)


def class_mean_correlations(seed_a, seed_b, class_seed_b, num_classes=5, n=2000):
    """Correlation of class c's mean image (seed_a, class_seed 0) with class c' (seed_b ...)."""
    means = []
    for seed, class_seed in ((seed_a, 0), (seed_b, class_seed_b)):
        images, labels = make_glyphs(n, num_classes, noise=0.0, seed=seed, class_seed=class_seed)
        m = torch.stack([images[labels == c].mean(0).flatten() for c in range(num_classes)])
        m = m - m.mean(1, keepdim=True)
        means.append(m / m.norm(dim=1, keepdim=True))
    return means[0] @ means[1].T


def test_glyph_alphabet_is_fixed_by_class_seed_not_by_seed():
    # Other images of the same alphabet: each class's mean image is most like its own class.
    same = class_mean_correlations(0, 1, class_seed_b=0)
    assert (same.diagonal() > 0.97).all()
    assert torch.equal(same.argmax(dim=1), torch.arange(5))
    assert torch.equal(same.argmax(dim=0), torch.arange(5))
    # Another class_seed draws another alphabet: class c is no longer its own best match.
    other = class_mean_correlations(0, 1, class_seed_b=1)
    assert not torch.equal(other.argmax(dim=1), torch.arange(5))
    assert other.diagonal().mean() < same.diagonal().mean() - 0.05


def test_noise_free_glyphs_are_ink_in_the_unit_interval():
    images, _ = make_glyphs(500, num_classes=20, noise=0.0, seed=2)
    assert images.min() == 0.0 and images.max() <= 1.0
    flat = images.flatten(1)
    assert (flat.amax(dim=1) >= 0.5).all()  # every image has a stroke at brightness >= 0.7
    ink = (flat > 0).float().mean(dim=1)
    assert (ink > 0.05).all() and (ink < 0.6).all()  # strokes, not blank nor filled canvases
    noisy, _ = make_glyphs(500, num_classes=20, noise=0.2, seed=2)
    background = noisy.flatten(1)[flat == 0]
    assert background.std().item() == pytest.approx(0.2, rel=0.05)


def test_make_glyphs_rejects_bad_arguments_naming_them():
    for kwargs, error, message in (
        ({"n": 0}, ValueError, "n must be a positive int"),
        ({"n": 2.5}, TypeError, "n must be a positive int"),
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"size": 11}, ValueError, "size must be at least 12"),
        ({"noise": -0.1}, ValueError, "noise"),
        ({"seed": -1}, ValueError, "seed"),
        ({"class_seed": -1}, ValueError, "class_seed"),
    ):
        with pytest.raises(error, match=message):
            make_glyphs(**{"n": 10, **kwargs})


# --------------------------------------------------------------------------- pasted digits
def test_pasted_digits_keep_every_bundled_digit_of_the_classes_renumbered_in_order():
    X, y = load_digits_tensors()
    images, labels = make_pasted_digits()
    assert images.shape == (896, 1, 16, 16) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert torch.bincount(labels).tolist() == [int((y == d).sum()) for d in (5, 6, 7, 8, 9)]
    _, labels = make_pasted_digits(classes=(9, 3), size=10)
    assert torch.bincount(labels).tolist() == [int((y == 9).sum()), int((y == 3).sum())]


def test_noise_free_pasted_digit_is_one_bundled_digit_of_its_class_inside_the_canvas():
    X, y = load_digits_tensors()
    classes, size = (9, 3, 0), 14
    bundled = [{digit.numpy().tobytes() for digit in X[y == d, 0]} for d in classes]
    images, labels = make_pasted_digits(classes=classes, size=size, noise=0.0, seed=5)
    assert len(images) == sum(int((y == d).sum()) for d in classes)
    corners = set()
    for image, label in zip(images[:, 0].numpy(), labels.tolist(), strict=True):
        rows, cols = np.nonzero(image)
        assert rows.max() - rows.min() < 8 and cols.max() - cols.min() < 8  # fits 8x8
        found = False
        for r in range(max(rows.max() - 7, 0), min(rows.min(), size - 8) + 1):
            for c in range(max(cols.max() - 7, 0), min(cols.min(), size - 8) + 1):
                if (image[r : r + 8, c : c + 8] + 0.0).tobytes() in bundled[label]:  # -0.0 -> 0.0
                    found = True
        assert found, "no 8x8 window holds a bundled digit of the image's class"
        corners.add((rows.min(), cols.min()))
    assert len(corners) > 30  # pasted at many places, not at one


def test_pasted_digits_are_deterministic_per_seed():
    images, labels = make_pasted_digits(seed=1)
    again, again_labels = make_pasted_digits(seed=1)
    assert torch.equal(images, again) and torch.equal(labels, again_labels)
    assert not torch.equal(images, make_pasted_digits(seed=2)[0])


def test_make_pasted_digits_rejects_bad_arguments_naming_them():
    for kwargs, message in (
        ({"classes": ()}, "classes must be distinct digits"),
        ({"classes": (5, 5)}, "classes must be distinct digits"),
        ({"classes": (5, 10)}, "classes must be distinct digits"),
        ({"classes": (-1,)}, "classes must be distinct digits"),
        ({"classes": (5, True)}, "classes must be distinct digits"),
        ({"size": 7}, "size must be at least 8"),
        ({"noise": -0.5}, "noise"),
    ):
        with pytest.raises(ValueError, match=message):
            make_pasted_digits(**kwargs)


# --------------------------------------------------------------------------- few-shot split
def test_few_shot_split_takes_k_per_class_and_leaves_the_rest_for_testing():
    _, labels = make_pasted_digits()
    train, test = few_shot_split(labels, 5, seed=0)
    assert train.dtype == test.dtype == torch.int64
    assert labels[train].tolist() == [c for c in range(5) for _ in range(5)]  # sorted by class
    assert len(set(train.tolist())) == 25
    assert not set(train.tolist()) & set(test.tolist())
    assert sorted(train.tolist() + test.tolist()) == list(range(len(labels)))
    assert torch.equal(test, test.sort().values)


def test_few_shot_split_is_deterministic_per_seed():
    labels = np.repeat(np.arange(3), 20)
    train, test = few_shot_split(labels, 4, seed=7)
    again_train, again_test = few_shot_split(labels, 4, seed=7)
    assert torch.equal(train, again_train) and torch.equal(test, again_test)
    assert not torch.equal(train, few_shot_split(labels, 4, seed=8)[0])


def test_few_shot_split_rejects_bad_arguments_naming_them():
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="class 0 has 3 examples; k=3"):
        few_shot_split(labels, 3)
    assert len(few_shot_split(labels, 2)[0]) == 4  # 3 > 2: enough
    for k, error in ((0, ValueError), (-1, ValueError), (1.5, TypeError)):
        with pytest.raises(error, match="k must be a positive int"):
            few_shot_split(labels, k)
    with pytest.raises(ValueError, match="labels must be 1-D"):
        few_shot_split(labels.reshape(1, -1), 1)
    with pytest.raises(ValueError, match="seed"):
        few_shot_split(labels, 1, seed=-1)
