import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from companion.gan import (
    Discriminator,
    GANTrainer,
    Generator,
    class_coverage,
    frechet_distance,
    train_digits_classifier,
)
from companion.utils import seed_everything

SHAPE = (1, 8, 8)
LATENT = 8


def small_gan(seed=0, **trainer_kwargs):
    seed_everything(seed)
    gen = Generator(LATENT, SHAPE, hidden=(16, 32))
    disc = Discriminator(SHAPE, hidden=(32, 16))
    return GANTrainer(gen, disc, LATENT, device="cpu", seed=seed, **trainer_kwargs)


def real_images(n=64, seed=0):
    rng = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=rng) * 2 - 1


# --------------------------------------------------------------------------- pitfalls
def test_pitfall_batchnorm_second_positional_is_eps():
    notes_bn = nn.BatchNorm1d(256, 0.8)  # the notes' block: meant momentum, sets eps
    assert notes_bn.eps == 0.8
    assert notes_bn.momentum == 0.1
    ours = [m for m in Generator(LATENT, SHAPE).modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(ours) == 3  # every hidden layer but the first, as in the notes
    assert all(bn.eps == 1e-5 and bn.momentum == 0.1 for bn in ours)


def test_pitfall_sigmoid_then_bceloss_saturates():
    logits = torch.tensor([[100.0], [-100.0]], requires_grad=True)
    target = torch.tensor([[0.0], [1.0]])  # both maximally wrong: true loss is 100 each
    wrong = nn.BCELoss()(torch.sigmoid(logits), target)
    wrong.backward()
    assert wrong.item() == pytest.approx(100.0)  # log(0) clamped to -100 by PyTorch ...
    assert torch.all(logits.grad == 0)  # ... and no gradient flows back: learning stops

    logits.grad = None
    right = nn.BCEWithLogitsLoss()(logits, target)
    right.backward()
    assert right.item() == pytest.approx(100.0, rel=1e-6)
    # d/ds of BCE-with-logits is (sigmoid(s) - t) / n: exactly +-1/2 here
    assert logits.grad.flatten().tolist() == pytest.approx([0.5, -0.5])

    # where it starts: a fake judged real (target 0) from logit 17, where sigmoid rounds to 1
    def bceloss(value, target):
        s = torch.tensor([value], requires_grad=True)
        loss = nn.BCELoss()(torch.sigmoid(s), torch.tensor([target]))
        return loss.item(), torch.autograd.grad(loss, s)[0].item()

    assert bceloss(16.0, 0.0)[1] > 0.99
    assert bceloss(17.0, 0.0) == (pytest.approx(100.0), 0.0)
    # the generator's target 1 on a confidently rejected fake: the loss is right, but the
    # backward's clamp max(p (1 - p), 1e-12) cuts the gradient (true value -1) from about -28
    for value, low, high in [
        (-20.0, -1.000001, -0.999999),
        (-30.0, -0.15, -0.05),
        (-40.0, -1e-5, 0),
    ]:
        loss, grad = bceloss(value, 1.0)
        assert loss == pytest.approx(-value, rel=1e-5) and low < grad < high
        s = torch.tensor([value], requires_grad=True)
        nn.BCEWithLogitsLoss()(s, torch.ones(1)).backward()
        assert s.grad.item() == pytest.approx(-1.0)

    logits2 = torch.tensor([[200.0]], requires_grad=True)  # sigmoid+BCELoss cannot tell 100/200
    assert nn.BCEWithLogitsLoss()(logits2, torch.zeros(1, 1)).item() == pytest.approx(200.0)
    assert nn.BCELoss()(torch.sigmoid(logits2), torch.zeros(1, 1)).item() == pytest.approx(100.0)


def test_no_inplace_activations():
    for net in (Generator(LATENT, SHAPE), Discriminator(SHAPE)):
        relus = [m for m in net.modules() if isinstance(m, nn.LeakyReLU)]
        assert relus and all(not m.inplace and m.negative_slope == 0.2 for m in relus)


def test_inplace_leakyrelu_changes_no_gradient_but_overwrites_hooked_outputs():
    # the notes' in-place LeakyReLU after Linear and BatchNorm1d is not a defect ...
    def block(inplace):
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Linear(8, 16),
            nn.LeakyReLU(0.2, inplace=inplace),
            nn.Linear(16, 32),
            nn.BatchNorm1d(32),
            nn.LeakyReLU(0.2, inplace=inplace),
            nn.Linear(32, 4),
        )

    x = torch.randn(10, 8)
    grads = []
    for inplace in (False, True):
        net, seen = block(inplace), {}
        hook = net[0].register_forward_hook(lambda mod, inp, out, seen=seen: seen.update(out=out))
        net(x).square().sum().backward()
        hook.remove()
        grads.append([p.grad for p in net.parameters()])
        with torch.no_grad():
            pre_activation = net[0](x)
        # ... but a hook that keeps the Linear's output sees it overwritten by the activation
        assert torch.equal(seen["out"], pre_activation) is not inplace
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
    # and a full backward hook on the in-place activation refuses to run
    net = block(inplace=True)
    net[1].register_full_backward_hook(lambda mod, grad_in, grad_out: None)
    with pytest.raises(RuntimeError, match="inplace"):
        net(x).sum().backward()


# --------------------------------------------------------------------------- networks
def test_generator_maps_noise_to_images_in_minus_one_one():
    gen = Generator(LATENT, (3, 4, 5), hidden=(16, 32))
    out = gen(torch.randn(10, LATENT) * 100)
    assert out.shape == (10, 3, 4, 5)
    assert out.min() >= -1 and out.max() <= 1
    assert isinstance(gen.model[-1], nn.Tanh)


def test_discriminator_returns_logits_without_sigmoid_layer():
    disc = Discriminator(SHAPE)
    assert not any(isinstance(m, nn.Sigmoid) for m in disc.modules())
    assert isinstance(disc.model[-1], nn.Linear)
    with torch.no_grad():
        disc.model[-1].bias.fill_(50.0)  # a logit far outside [0, 1] passes through unchanged
        out = disc(real_images(5))
    assert out.shape == (5, 1)
    assert out.min() > 1


def test_notes_default_widths_are_kept():
    gen = Generator(100, (1, 28, 28))
    widths = [m.out_features for m in gen.modules() if isinstance(m, nn.Linear)]
    assert widths == [128, 256, 512, 1024, 784]
    disc = Discriminator((1, 28, 28))
    assert [m.out_features for m in disc.modules() if isinstance(m, nn.Linear)] == [512, 256, 1]
    assert [m.p for m in disc.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]


# --------------------------------------------------------------------------- trainer
def test_generator_loss_is_non_saturating_minus_log_d_of_fake():
    trainer = small_gan()
    disc = trainer.discriminator
    with torch.no_grad():
        disc.model[-1].weight.zero_()
        disc.model[-1].bias.fill_(-3.0)  # D(G(z)) = sigmoid(-3) for every fake
    trainer.optimizer_D.param_groups[0]["lr"] = 1e-12  # the D step barely moves it
    stats = trainer.train_step(real_images())
    assert stats["g_loss"] == pytest.approx(-np.log(1 / (1 + np.exp(3.0))), rel=1e-5)  # ~3.05
    assert stats["d_fake"] == pytest.approx(1 / (1 + np.exp(3.0)), rel=1e-5)
    # L_D = (softplus(3) + softplus(-3)) / 2 with real target 1 and fake target 0
    expected_d = 0.5 * (np.log1p(np.exp(3.0)) + np.log1p(np.exp(-3.0)))
    assert stats["d_loss"] == pytest.approx(expected_d, rel=1e-5)
    # the saturating alternative log(1 - D(G(z))) would be ~ -0.049 with a tiny gradient
    assert stats["g_loss"] > 20 * abs(np.log(1 - 1 / (1 + np.exp(3.0))))


def test_label_smoothing_sets_real_target_below_one():
    trainer = small_gan(label_smoothing=0.1)
    disc = trainer.discriminator
    with torch.no_grad():
        disc.model[-1].weight.zero_()
        disc.model[-1].bias.zero_()  # every logit 0: BCE = log 2 whatever the target
    trainer.optimizer_D.param_groups[0]["lr"] = 1e-12
    stats = trainer.train_step(real_images())
    assert stats["d_loss"] == pytest.approx(np.log(2), rel=1e-5)
    # with logit s on reals and target 0.9 the loss is minimal at sigmoid(s) = 0.9
    s = torch.tensor([[np.log(9.0)]], requires_grad=True)
    trainer.criterion(s, torch.full((1, 1), 0.9)).backward()
    assert abs(s.grad.item()) < 1e-6


def test_train_step_returns_finite_stats_and_updates_both_networks():
    trainer = small_gan()
    before_g = [p.detach().clone() for p in trainer.generator.parameters()]
    before_d = [p.detach().clone() for p in trainer.discriminator.parameters()]
    stats = trainer.train_step(real_images())
    assert set(stats) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(v) for v in stats.values())
    assert 0 < stats["d_real"] < 1 and 0 < stats["d_fake"] < 1

    def changed(before, net):
        return all(not torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True))

    assert changed(before_g, trainer.generator)
    assert changed(before_d, trainer.discriminator)


def test_optimizers_are_companion_adam_with_gan_betas():
    from companion.optim import Adam

    trainer = small_gan()
    for opt in (trainer.optimizer_G, trainer.optimizer_D):
        assert isinstance(opt, Adam)
        assert opt.param_groups[0]["lr"] == 2e-4
        assert opt.param_groups[0]["betas"] == (0.5, 0.999)


def fit_run(seed, epochs=3, labelled=False, sample_every=1):
    trainer = small_gan(seed)
    x = real_images(96, seed=5)
    data = TensorDataset(x, torch.zeros(96, dtype=torch.int64)) if labelled else x
    loader = DataLoader(
        data, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    return trainer, trainer.fit(loader, epochs, progress=False, sample_every=sample_every)


def test_fit_is_reproducible_with_a_seed():
    _, h1 = fit_run(seed=3)
    _, h2 = fit_run(seed=3)
    _, h3 = fit_run(seed=4)
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert h1[key] == h2[key]
    assert all(torch.equal(a, b) for a, b in zip(h1["samples"], h2["samples"], strict=True))
    assert h1["d_loss"] != h3["d_loss"]


def test_fit_records_per_epoch_means_and_fixed_noise_samples():
    trainer, history = fit_run(seed=0, epochs=4, labelled=True, sample_every=2)
    assert trainer.epoch == 4
    assert all(len(history[k]) == 4 for k in ("d_loss", "g_loss", "d_real", "d_fake"))
    assert len(history["samples"]) == 2
    first, last = history["samples"]
    assert first.shape == last.shape == (64, *SHAPE)
    assert first.device.type == "cpu"
    assert not torch.equal(first, last)  # the generator changed between the two epochs
    # the samples are the generator's images of the fixed noise, in evaluation mode
    assert torch.equal(last, trainer.sample())
    assert trainer.fixed_noise.shape == (64, LATENT)
    assert trainer.generator.training  # sampling restored training mode


def test_seeded_trainer_leaves_the_global_rng_alone():
    def run(global_seed, seed=0):
        seed_everything(123)  # the same initial weights every time
        gen = Generator(LATENT, SHAPE, hidden=(16, 32))
        disc = Discriminator(SHAPE, hidden=(32, 16), dropout=0.5)
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        trainer = GANTrainer(gen, disc, LATENT, device="cpu", seed=seed)
        stats = [trainer.train_step(real_images()) for _ in range(2)]
        trainer.sample(5)
        return stats, torch.equal(torch.get_rng_state(), before)

    (a, untouched_a), (b, untouched_b) = run(1), run(2)
    assert untouched_a and untouched_b  # neither reseeded nor advanced
    assert a == b  # the seeded run does not depend on the global state ...
    assert a[0] != a[1]  # ... and its private dropout stream moves on from step to step
    # control: without a seed the dropout masks come from (and advance) the global generator
    (c, untouched_c), (d, _) = run(1, seed=None), run(2, seed=None)
    assert not untouched_c and c != d


def test_fixed_noise_depends_only_on_the_seed():
    a, b, c = small_gan(1), small_gan(1), small_gan(2)
    assert torch.equal(a.fixed_noise, b.fixed_noise)
    assert not torch.equal(a.fixed_noise, c.fixed_noise)


# --------------------------------------------------------------------------- Fréchet distance
def gaussian_samples(n, k, seed, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(k, k)) / np.sqrt(k)
    return shift + scale * rng.normal(size=(n, k)) @ mix


def scipy_frechet(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(ca @ cb).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean))


def test_frechet_distance_of_identical_samples_is_zero():
    a = gaussian_samples(500, 16, seed=0, scale=3.0)
    assert frechet_distance(a, a) <= 1e-6 * np.trace(np.cov(a, rowvar=False))


def test_frechet_distance_matches_scipy_sqrtm():
    a = gaussian_samples(400, 12, seed=1)
    b = gaussian_samples(300, 12, seed=2, shift=0.5, scale=2.0)
    assert frechet_distance(a, b) == pytest.approx(scipy_frechet(a, b), rel=1e-6)


def test_frechet_distance_is_symmetric_and_accepts_tensors():
    a = gaussian_samples(200, 6, seed=3)
    b = gaussian_samples(250, 6, seed=4, shift=1.0)
    d = frechet_distance(a, b)
    assert frechet_distance(b, a) == pytest.approx(d, rel=1e-9)
    assert frechet_distance(torch.tensor(a, dtype=torch.float64), torch.tensor(b)) == (
        pytest.approx(d, rel=1e-9)
    )


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    # for diagonal covariances: sum_j (mu_aj - mu_bj)^2 + (sigma_aj - sigma_bj)^2
    rng = np.random.default_rng(0)
    z = rng.normal(size=(1000, 3))
    z = (z - z.mean(0)) / z.std(0, ddof=1)  # exactly mean 0 and variance 1 per column ...
    z = np.linalg.qr(z - z.mean(0))[0] * np.sqrt(len(z) - 1)  # ... and uncorrelated columns
    mu_a, sd_a = np.array([0.0, 1.0, -2.0]), np.array([1.0, 2.0, 0.5])
    mu_b, sd_b = np.array([3.0, 1.0, 0.0]), np.array([2.0, 2.0, 1.5])
    d = frechet_distance(mu_a + z * sd_a, mu_b + z * sd_b)
    expected = ((mu_a - mu_b) ** 2).sum() + ((sd_a - sd_b) ** 2).sum()
    assert d == pytest.approx(expected, rel=1e-9)
    # and in 1-D it is (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2
    assert frechet_distance(1 + 2 * z[:, :1], 4 + 5 * z[:, :1]) == pytest.approx(9 + 9, rel=1e-9)


def test_frechet_distance_is_finite_for_singular_covariances():
    a = gaussian_samples(5, 20, seed=0)  # 5 samples in 20 dimensions: rank-4 covariances
    b = gaussian_samples(5, 20, seed=1)
    d = frechet_distance(a, b)
    assert np.isfinite(d) and d >= 0


@pytest.mark.parametrize(
    ("a", "b", "name"),
    [
        (np.zeros(10), np.zeros((10, 1)), "feats_a"),
        (np.zeros((10, 2)), np.zeros((10, 2, 1)), "feats_b"),
        (np.zeros((10, 2)), np.zeros((10, 3)), "feats_a has 2 features"),
        (np.zeros((1, 2)), np.zeros((10, 2)), "feats_a must hold at least 2"),
        (np.zeros((10, 2)), np.full((10, 2), np.nan), "feats_b"),
    ],
)
def test_frechet_distance_rejects_bad_shapes_naming_the_argument(a, b, name):
    with pytest.raises(ValueError, match=name):
        frechet_distance(a, b)


# --------------------------------------------------------------------------- mode coverage
def sure_logits(classes, margin=10.0):
    """Logits that put probability > 0.99 on the given class of each row."""
    logits = torch.zeros(len(classes), 10)
    logits[torch.arange(len(classes)), torch.as_tensor(classes)] = margin
    return logits


def test_class_coverage_passes_a_balanced_sure_set():
    result = class_coverage(sure_logits(list(range(10)) * 20))
    assert result["passes"]
    assert result["confident"].tolist() == [20] * 10 and result["argmax"].tolist() == [20] * 10
    assert result["confident_share"] == 1.0 and result["fewest"] == 0.1
    assert result["top_share"] == 0.1


def test_class_coverage_argmax_passes_noise_but_the_confident_count_fails_it():
    # near-uniform probabilities: every image lands in some class, none with confidence
    logits = 0.1 * torch.randn(1000, 10, generator=torch.Generator().manual_seed(0))
    result = class_coverage(logits)
    assert (result["argmax"] >= 10).all()  # the argmax count "covers" every class at 1 %
    assert result["confident"].sum() == 0 and not result["passes"]


def test_class_coverage_fails_a_missing_class_and_a_dominant_class():
    missing = class_coverage(sure_logits([k for k in range(9) for _ in range(20)]))
    assert missing["fewest"] == 0.0 and not missing["passes"]
    # all ten classes at 2 % or more, but one holds 50 % of the sure images
    dominant = class_coverage(sure_logits(list(range(10)) * 10 + [3] * 80))
    assert dominant["fewest"] >= 0.005 and dominant["top_share"] == 0.5
    assert not dominant["passes"]
    assert class_coverage(sure_logits(list(range(10)) * 10 + [3] * 80), max_share=0.6)["passes"]


def test_class_coverage_counts_only_predictions_above_the_threshold():
    logits = sure_logits(list(range(10)) * 2, margin=3.0)  # max p = e^3 / (e^3 + 9) = 0.69
    assert class_coverage(logits)["confident"].sum() == 0
    assert class_coverage(logits, threshold=0.5)["passes"]


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"logits": torch.zeros(5, 10, dtype=torch.int64)}, TypeError, "logits"),
        ({"logits": [[0.0, 1.0]]}, TypeError, "logits"),
        ({"logits": torch.zeros(10)}, ValueError, "logits"),
        ({"logits": torch.zeros(0, 10)}, ValueError, "logits"),
        ({"logits": torch.full((3, 10), float("nan"))}, ValueError, "logits"),
        ({"threshold": 1.0}, ValueError, "threshold"),
        ({"min_share": 1.5}, ValueError, "min_share"),
        ({"max_share": 0.0}, ValueError, "max_share"),
    ],
)
def test_class_coverage_rejects_bad_arguments_naming_them(kwargs, error, name):
    kwargs = {"logits": torch.zeros(5, 10), **kwargs}
    with pytest.raises(error, match=name):
        class_coverage(**kwargs)


# --------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("latent_dim", [0, -3])
def test_bad_latent_dim_raises_naming_it(latent_dim):
    with pytest.raises(ValueError, match="latent_dim"):
        Generator(latent_dim, SHAPE)


@pytest.mark.parametrize("img_shape", [(), (1, 0, 8), (1, -8), "1x8x8", (1, 8.0, 8), 64])
def test_bad_img_shape_raises_naming_it(img_shape):
    with pytest.raises(ValueError, match="img_shape"):
        Generator(LATENT, img_shape)
    with pytest.raises(ValueError, match="img_shape"):
        Discriminator(img_shape)


@pytest.mark.parametrize(
    "real", [torch.zeros(4, 64), torch.zeros(4, 1, 8, 7), torch.zeros(1, 1, 8, 8)]
)
def test_train_step_rejects_real_batch_of_wrong_shape(real):
    with pytest.raises(ValueError, match="real"):
        small_gan().train_step(real)


def test_trainer_rejects_bad_hyperparameters():
    gen, disc = Generator(LATENT, SHAPE, hidden=(8,)), Discriminator(SHAPE, hidden=(8,))
    with pytest.raises(ValueError, match="latent_dim"):
        GANTrainer(gen, disc, LATENT + 1)
    with pytest.raises(ValueError, match="label_smoothing"):
        GANTrainer(gen, disc, LATENT, label_smoothing=1.0)
    with pytest.raises(ValueError, match="lr"):
        GANTrainer(gen, disc, LATENT, lr=0.0)
    with pytest.raises(ValueError, match="betas"):
        GANTrainer(gen, disc, LATENT, betas=(0.5, 1.0))
    with pytest.raises(TypeError, match="discriminator"):
        GANTrainer(gen, "D", LATENT)
    with pytest.raises(ValueError, match="dropout"):
        Discriminator(SHAPE, dropout=1.0)
    with pytest.raises(ValueError, match="epochs"):
        GANTrainer(gen, disc, LATENT).fit([real_images()], 0, progress=False)


# --------------------------------------------------------------------------- FID features
def test_digits_classifier_is_accurate_deterministic_and_gives_features():
    clf = train_digits_classifier(seed=0)
    assert clf.test_accuracy >= 0.95
    assert len(set(clf.train_idx.tolist()) & set(clf.test_idx.tolist())) == 0
    x = torch.rand(7, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        feats = clf.features(x)
    assert feats.shape == (7, 64) and feats.min() >= 0  # post-ReLU penultimate layer
    assert not clf.training
    again = train_digits_classifier(seed=0)
    assert again.test_accuracy == clf.test_accuracy
    assert all(torch.equal(p, q) for p, q in zip(clf.parameters(), again.parameters(), strict=True))


def test_train_digits_gan_recipe_checks_its_images_and_returns_untrained_pair_for_zero_epochs():
    from companion import train_digits_gan

    with pytest.raises(TypeError, match="images must be a tensor"):
        train_digits_gan([[0.0]])
    with pytest.raises(ValueError, match=r"images must have shape \(n, 1, 8, 8\)"):
        train_digits_gan(torch.zeros(10, 64))
    first, history = train_digits_gan(torch.zeros(70, 1, 8, 8), seed=3, epochs=0)
    again, _ = train_digits_gan(torch.zeros(70, 1, 8, 8), seed=3, epochs=0)
    assert history == {}
    assert torch.equal(first.sample(4), again.sample(4))  # seeded: the same untrained pair
    _, trained = train_digits_gan(torch.rand(70, 1, 8, 8) * 2 - 1, seed=3, epochs=2)
    assert len(trained["d_loss"]) == 2 and len(trained["samples"]) == 2
