import numpy as np
import pytest
import torch

from companion.data import (
    load_digits_tensors,
    make_reversal_task,
    make_seed_dataset,
    make_separable,
    make_shapes,
    train_val_loaders,
)


def original_recipe(n_samples=1000, n_features=10):
    """The original notes' create_synthetic_data, re-created minimally."""
    state = np.random.get_state()
    try:
        np.random.seed(42)
        X = np.random.randn(n_samples, n_features)
    finally:
        np.random.set_state(state)
    y = np.zeros(n_samples)
    for i in range(n_samples):
        if X[i, 0] + X[i, 1] > 0:
            y[i] = 0 if X[i, 2] > 0 else 1
        else:
            y[i] = 2
    return torch.FloatTensor(X), torch.LongTensor(y.astype(int))


def test_seed_dataset_is_bit_identical_to_the_original_recipe():
    X, y = make_seed_dataset()
    X0, y0 = original_recipe()
    assert X.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(X, X0) and torch.equal(y, y0)


def test_seed_dataset_leaves_global_numpy_state_alone():
    np.random.seed(7)
    expected = np.random.rand()
    np.random.seed(7)
    make_seed_dataset()
    assert np.random.rand() == expected


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
