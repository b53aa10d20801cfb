# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-transfer)=
# # 9. Transfer learning and progressive unfreezing
#
# Every network so far started from random weights and learned from thousands of labelled
# examples. Often there are only a handful. *Transfer learning* starts instead from a network
# trained on another, larger task — its *backbone* already computes useful features — replaces
# its classification head, and trains on the few new labels {cite}`yosinski2014`. This chapter
# builds the tools (a new head, freezing, discriminative learning rates, progressive unfreezing
# {cite}`howard2018`), fixes four defects of the notes' version, and then **measures** when
# transfer helps, by how much, and when it stops helping.
#
# No model hub can be reached while this book is tested, so the chapter also does the part that
# is usually downloaded: it pretrains its own small backbone, once, and ships it with its SHA-256.

# %%
try:
    import companion
except ImportError:  # on Colab: install the book's package from its repository, once
    import subprocess
    import sys

    REPOSITORY = "https://github.com/neural-networks-tested/book"
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", f"git+{REPOSITORY}@main"])
    import companion

SEED = companion.seed_everything(0)

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from torchvision import models

from companion import (
    BACKBONE_RECIPES,
    FEW_SHOT_RECIPES,
    ProgressiveUnfreezingTrainer,
    book_backbone,
    build_transfer_model,
    count_trainable,
    few_shot_split,
    freeze_backbone,
    make_glyphs,
    make_pasted_digits,
    param_groups,
    plot_image_grid,
    train_few_shot,
    unfreeze,
)

# %% [markdown]
# ## A pretrained network with a new head
#
# A classifier is a backbone $\phi$ followed by a linear head, $\mathbf z = W\phi(\mathbf x) +
# \mathbf b$. Trained on ImageNet, $W$ has 1000 rows, one per ImageNet class; for a new task
# with $C$ classes we keep $\phi$ and replace the head by a fresh $C$-row one.
# `build_transfer_model` does this for ResNet-18/50 (the head is `fc`), VGG-16 and
# EfficientNet-B0 (the last layer of `classifier`). With internet access, the pretrained weights
# come from torchvision's `weights=` API (not executed here: it downloads a 45 MB file):
#
# ```python
# from torchvision.models import ResNet18_Weights
#
# model = build_transfer_model("resnet18", num_classes=5, weights=ResNet18_Weights.DEFAULT)
# preprocess = ResNet18_Weights.DEFAULT.transforms()  # the resizing and normalisation it expects
# ```
#
# Offline, `weights=None` gives the same architecture with random weights, which is all we need
# to look at its structure:

# %%
resnet = build_transfer_model("resnet18", num_classes=5, weights=None)
print("new head:", resnet.fc)
with torch.no_grad():
    print("logits for a 2×3×64×64 batch:", tuple(resnet.eval()(torch.zeros(2, 3, 64, 64)).shape))
assert resnet.fc.out_features == 5 and resnet.fc.in_features == 512
download_mb = models.ResNet18_Weights.DEFAULT.meta["_file_size"]  # what torchvision would fetch
assert 44 < download_mb < 46

# %% [markdown]
# (pitfall-pretrained-keyword)=
# ```{warning}
# **Pitfall: `models.resnet50(pretrained=True)`.** The notes load weights with `pretrained=`,
# deprecated since torchvision 0.13. In torchvision 0.29 it still works, with a warning, and
# `True` silently means the oldest weights (`IMAGENET1K_V1`, 76.1 % top-1 on ImageNet for
# ResNet-50), not the better `DEFAULT` (`IMAGENET1K_V2`, 80.9 %).
# `build_transfer_model` takes `weights=` — `None`, an enum such as `ResNet18_Weights.DEFAULT`,
# its name, or a local file with its SHA-256 — and refuses `pretrained=` with a `TypeError`
# that says what to write instead. Tests:
# `tests/test_transfer.py::test_pitfall_pretrained_keyword_is_deprecated`,
# `::test_pitfall_pretrained_true_silently_picks_the_oldest_weights`.
# ```

# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    models.resnet18(pretrained=False)
print(f"torchvision: {caught[0].category.__name__}: {caught[0].message}")
try:
    build_transfer_model("resnet18", num_classes=5, pretrained=True)
except TypeError as err:
    refusal = err
print(f"build_transfer_model: TypeError: {refusal}")
assert any("deprecated" in str(w.message) for w in caught) and "weights=" in str(refusal)
v1, default = models.ResNet50_Weights.IMAGENET1K_V1, models.ResNet50_Weights.DEFAULT
top1 = {w.name: round(w.meta["_metrics"]["ImageNet-1K"]["acc@1"], 1) for w in (v1, default)}
print("ResNet-50 top-1 accuracy on ImageNet, from torchvision's metadata:", top1)
assert top1 == {"IMAGENET1K_V1": 76.1, "IMAGENET1K_V2": 80.9}

# %% [markdown]
# ## Freezing, layer groups and discriminative learning rates
#
# *Feature extraction* freezes the backbone (`requires_grad = False`) and trains only the head.
# *Fine-tuning* then lets more of the network adapt, from the top down: the lower layers compute
# generic edges and textures that any image task needs, the upper ones are more specific to
# the source task {cite}`yosinski2014`. `layer_groups` splits a model into groups, counted from
# the head; `unfreeze(model, n)` makes the top $n$ trainable. ULMFiT's *discriminative
# fine-tuning* {cite}`howard2018` gives group $i$ a learning rate that shrinks with depth,
#
# $$
# \eta_i = \frac{\eta}{2.6^{\,i}},
# $$
#
# so the head moves fastest and the stem barely. `param_groups` builds the optimizer's groups —
# with the **trainable** parameters only.

# %%
for group in param_groups(resnet, 1e-3):
    n = sum(p.numel() for p in group["params"])
    print(f"{group['name']:>10}: {n:>9,} parameters, lr {group['lr']:.2e}")
assert [g["name"] for g in param_groups(resnet, 1e-3)] == [
    "fc", "layer4", "layer3", "layer2", "layer1", "conv1+bn1",
]  # fmt: skip

# %% [markdown]
# Progressive unfreezing trains in phases — the head alone, then the top group too, then
# everything — each phase with a fresh optimizer over what is trainable. On ResNet-18 with a
# 5-class head the three phases train 2,565, then 8,396,293, then all 11,179,077 parameters:

# %%
head = 512 * 5 + 5
layer4 = sum(p.numel() for p in resnet.layer4.parameters())
total = sum(p.numel() for p in resnet.parameters())
phase_counts = []
for n_groups in (1, 2, None):
    unfreeze(resnet, n_groups)
    phase_counts.append(count_trainable(resnet))
print("trainable per phase:", [f"{c:,}" for c in phase_counts])
assert phase_counts == [head, head + layer4, total] == [2_565, 8_396_293, 11_179_077]

# %% [markdown]
# (pitfall-unfreeze-tensors)=
# ```{warning}
# **Pitfall: "unfreeze the top 10 layers" that counts tensors.** The notes'
# `unfreeze_top_layers(num_layers=10)` unfreezes `list(model.parameters())[-10:]`: ten parameter
# *tensors*, not layers. On ResNet-50 that is the head plus a ragged part of the last
# bottleneck block — its BatchNorms and two of its three convolutions, while `conv1` of the same
# block stays frozen. `unfreeze` counts whole layer groups. Test:
# `tests/test_transfer.py::test_pitfall_unfreeze_top_layers_counts_tensors_not_layers`.
# ```

# %%
resnet50 = build_transfer_model("resnet50", num_classes=5)
names = [name for name, _ in resnet50.named_parameters()]
last_ten = sorted({name.rsplit(".", 1)[0] for name in names[-10:]})
print("the notes' last 10 tensors belong to:", ", ".join(last_ten))
assert "layer4.2.conv1" not in last_ten and "layer4.2.bn1" in last_ten and "fc" in last_ten
unfreeze(resnet50, 2)
trainable = {name.split(".")[0] for name, p in resnet50.named_parameters() if p.requires_grad}
print("unfreeze(resnet50, 2) trains:", sorted(trainable))
assert trainable == {"fc", "layer4"}
del resnet, resnet50

# %% [markdown]
# ## The book's own pretrained backbone
#
# ResNet-18's 11 million parameters are far too many to pretrain on the CPU that tests this
# book. The chapter uses a `SmallResNet` instead: a 3×3 stem and three residual blocks
# {cite}`he2016` with BatchNorm, 16 channels wide — about 15,000 parameters, over 700 times
# fewer — with ResNet's attribute names, so every tool above applies to it unchanged.
#
# **The target task**: scikit-learn's digits 5–9, each pasted at a random place on a 16×16
# canvas of Gaussian noise ($\sigma = 0.2$), with only a few labels per class. The difficulty is
# chosen on purpose: on clean, centred digits the same network trained from scratch already
# reaches over 85 % with five labels per class (checked below), which leaves transfer little to
# add.
#
# **The source task**: 100 classes of made-up *glyphs* — random polylines of 2–4 strokes, each
# image drawn with jitter, rotation, stroke width and position of its own, on the same noisy
# canvas (`make_glyphs`). The backbone was trained on 25,600 of them for 1200 steps of AdamW
# (`make pretrain`), and the file is shipped with the package together with its
# SHA-256 and the accuracy pretraining measured; a unit test re-runs the pretraining and checks
# it reproduces that accuracy.

# %%
glyphs, _ = make_glyphs(16, seed=7)
X, y = make_pasted_digits()  # digits 5-9, relabelled 0-4
fig, (ax_source, ax_target) = plt.subplots(1, 2, figsize=(12, 3.4))
plot_image_grid(glyphs, ncols=8, ax=ax_source, value_range=(-0.5, 1.2))
ax_source.set_title("source: random-stroke glyphs (100 classes)")
plot_image_grid(X[:16], ncols=8, ax=ax_target, value_range=(-0.5, 1.2))
ax_target.set_title("target: digits 5-9 pasted on noise")
plt.show()
print(f"target task: {len(X)} images of {int(y.max()) + 1} classes")
assert X.shape == (896, 1, 16, 16)

clean_X, clean_y = make_pasted_digits(size=8, noise=0.0)  # the same digits, clean and centred
clean_train, clean_test = few_shot_split(clean_y, k=5, seed=0)
clean = train_few_shot(
    "scratch", clean_X[clean_train], clean_y[clean_train],
    test=(clean_X[clean_test], clean_y[clean_test]),
)  # fmt: skip
print(f"clean, centred digits, 5 labels per class, from scratch: {clean.test_acc:.1%}")
assert clean.test_acc > 0.85

# %%
path, info = book_backbone("glyphs100")
print(
    f"{path.name}: SHA-256 {info['sha256'][:16]}..., {info['num_classes']} source classes, "
    f"{info['steps']} steps, source accuracy {info['val_acc']:.1%} on held-out glyphs"
)
model = build_transfer_model("small_resnet", num_classes=5, weights="glyphs100")  # checks SHA
print(
    f"{sum(p.numel() for p in model.parameters()):,} parameters; layer groups:",
    [g["name"] for g in param_groups(model, 1e-3)],
)
assert info == {**info, **BACKBONE_RECIPES["glyphs100"]} and 0.4 < info["val_acc"] < 0.6
n_small = sum(p.numel() for p in model.parameters())
assert 14_000 < n_small < 16_000 and total / n_small > 700  # total: ResNet-18's, above

# %% [markdown]
# A source accuracy under 50 % looks poor, but 100 classes of jittered glyphs on noise are
# hard to tell apart, and the backbone is not meant for them: what matters is whether
# $\phi(\mathbf x)$ separates *digits*.
#
# (pitfall-frozen-batchnorm)=
# ```{warning}
# **Pitfall: a frozen BatchNorm in training mode still learns.** Setting `requires_grad = False`
# stops the gradient, but `model.train()` puts every BatchNorm back in training mode, where each
# forward pass normalises with the *batch's* statistics and overwrites the running mean and
# variance: $\hat\mu \leftarrow (1 - m)\hat\mu + m\,\mu_{\text{batch}}$. The "frozen" backbone
# changes, towards statistics of 25 images. `ProgressiveUnfreezingTrainer` keeps frozen
# BatchNorm layers in evaluation mode at every epoch. Test:
# `tests/test_transfer.py::test_pitfall_frozen_batchnorm_in_train_mode_updates_running_stats`.
# ```

# %%
train_idx, test_idx = few_shot_split(y, k=5, seed=0)  # 5 labelled images per class
X_few, y_few = X[train_idx], y[train_idx]
stored = torch.load(path, weights_only=True)

notes_model = build_transfer_model("small_resnet", 5, weights="glyphs100")
for name, p in notes_model.named_parameters():  # the notes' freezing: gradients only
    p.requires_grad = name.startswith("fc.")
optimizer = torch.optim.Adam(notes_model.fc.parameters(), lr=1e-2)
notes_model.train()
for _ in range(10):
    optimizer.zero_grad()
    nn.functional.cross_entropy(notes_model(X_few), y_few).backward()
    optimizer.step()
notes_state = notes_model.state_dict()
running = [k for k in stored if "running_" in k]
moved = [k for k in running if not torch.equal(notes_state[k], stored[k])]
drift = max((notes_state[k] - stored[k]).abs().max().item() for k in running)

ours = ProgressiveUnfreezingTrainer(build_transfer_model("small_resnet", 5, weights="glyphs100"))
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_few, y_few), batch_size=32)
ours.fit_phases(loader, None, phases=[(1, 10, 1e-2)])
state = ours.model.state_dict()
unchanged = all(torch.equal(state[k], v) for k, v in stored.items() if not k.startswith("fc."))
print(
    f"notes' freezing: {len(moved)} of {len(running)} running statistics changed, "
    f"by up to {drift:.3f}"
)
print(f"ProgressiveUnfreezingTrainer: every backbone tensor bit-identical: {unchanged}")
assert len(moved) == len(running) and drift > 0.05 and unchanged

# %% [markdown]
# (pitfall-frozen-weight-decay)=
# ```{warning}
# **Pitfall: weight decay moves "frozen" weights that are still in the optimizer.** An
# optimizer built once over `model.parameters()` keeps the frozen ones. PyTorch skips a
# parameter whose gradient is `None`, but one whose gradient is a zero tensor — what
# `zero_grad()` left before PyTorch 2.0, and still leaves with `set_to_none=False` — is
# updated: AdamW's decoupled decay $\theta \leftarrow \theta - \eta\lambda\theta$ shrinks it, and
# Adam's momentum from before the freeze keeps pushing it. `ProgressiveUnfreezingTrainer`
# rebuilds the optimizer each phase over the trainable parameters only. Test:
# `tests/test_transfer.py::test_pitfall_weight_decay_moves_frozen_parameters_still_in_optimizer`.
# ```


# %%
def few_shot_loss(model):
    return nn.functional.cross_entropy(model(X_few), y_few)


decay_model = build_transfer_model("small_resnet", 5, weights="glyphs100")
optimizer = torch.optim.AdamW(decay_model.parameters(), lr=1e-2, weight_decay=0.1)  # all of them
few_shot_loss(decay_model).backward()  # one step with everything trainable, then freeze
optimizer.step()
freeze_backbone(decay_model)
before = decay_model.conv1.weight.detach().clone()
for _ in range(10):
    optimizer.zero_grad(set_to_none=False)  # frozen weights keep zero gradients, not None
    few_shot_loss(decay_model).backward()
    optimizer.step()
moved = (decay_model.conv1.weight - before).abs().max().item()
print(f"one AdamW over all parameters: the frozen conv1 weights moved by up to {moved:.4f}")

ours = ProgressiveUnfreezingTrainer(build_transfer_model("small_resnet", 5, weights="glyphs100"))
ours.fit_phases(loader, None, phases=[(None, 1, 1e-2)], weight_decay=0.1)  # everything, 1 epoch
before = ours.model.conv1.weight.detach().clone()
ours.fit_phases(loader, None, phases=[(1, 10, 1e-2)], weight_decay=0.1)  # then the head only
kept = torch.equal(ours.model.conv1.weight, before)
print(f"ProgressiveUnfreezingTrainer, same steps and decay: conv1 bit-identical: {kept}")
assert moved > 1e-3 and kept

# %% [markdown]
# ## Five labels per class: scratch, linear probe, progressive unfreezing
#
# Three ways to use 25 labelled images (`train_few_shot`, recipes in `FEW_SHOT_RECIPES`):
#
# - **scratch**: the same `SmallResNet`, randomly initialised, every weight trained;
# - **linear probe**: the pretrained backbone frozen, a new head trained on $\phi(\mathbf x)$ —
#   logistic regression on fixed features;
# - **progressive unfreezing**: the probe, then the head with `layer3`, then everything, at
#   discriminative rates. Its first phase *is* the linear probe, so one run gives both.
#
# The scratch recipe is the best of a 12-point grid (learning rate × weight decay × epochs;
# `tests/test_transfer_pretrained.py` checks it), chosen on the test images, which flatters
# scratch; the transfer recipes were fixed once. Each method is scored on all the unlabelled
# rest (871 images), for three random draws of the labelled five.

# %%
SEEDS = (0, 1, 2)


def compare(k, seed):
    """Test accuracy of scratch, and of progressive unfreezing after each phase."""
    train_idx, test_idx = few_shot_split(y, k=k, seed=seed)
    data = (X[train_idx], y[train_idx])
    test = (X[test_idx], y[test_idx])
    scratch = train_few_shot("scratch", *data, seed=seed, test=test).test_acc
    progressive = train_few_shot("progressive", *data, seed=seed, test=test)
    return scratch, [phase["test_acc"] for phase in progressive.phases]


runs = [compare(5, seed) for seed in SEEDS]
scratch5 = np.array([r[0] for r in runs])
phases5 = np.array([r[1] for r in runs])  # (seed, phase)
probe5, progressive5 = phases5[:, 0], phases5[:, -1]
print(f"{FEW_SHOT_RECIPES['scratch']=}")
for name, acc in [
    ("scratch", scratch5),
    ("linear probe", probe5),
    ("progressive unfreezing", progressive5),
]:
    print(f"{name:>23}: {acc.mean():.1%}  (seeds: {', '.join(f'{a:.1%}' for a in acc)})")

# %%
assert probe5.mean() - scratch5.mean() >= 0.10  # the chapter's bar, with room to spare:
assert progressive5.mean() - scratch5.mean() >= 0.10
assert scratch5.mean() < 0.25 and 0.30 < probe5.mean() - scratch5.mean() < 0.40
assert min(probe5) > max(scratch5)  # on every draw, not only on average

# %% [markdown]
# With five labels per class, training from scratch barely beats the 20 % of guessing: the
# network fits its 25 images perfectly and learns nothing that carries over to a digit at another
# place in other noise. The pretrained features already ignore the noise and the position, and a
# linear classifier on them is more than 30 points ahead.
#
# ### What each phase adds
#
# The accuracy after each phase of progressive unfreezing, averaged over the three draws:

# %%
phase_names = ["head (linear probe)", "+ layer3", "+ all"]
mean_phases = phases5.mean(axis=0)
fig, ax = plt.subplots(figsize=(5.5, 3))
ax.bar(phase_names, 100 * mean_phases, color=["tab:blue", "tab:orange", "tab:green"])
ax.axhline(100 * scratch5.mean(), color="grey", linestyle="--", label="scratch")
ax.set_ylabel("test accuracy (%)")
ax.set_title("progressive unfreezing, 5 labels per class")
ax.set_ylim(0, 80)
ax.legend(loc="upper right")
plt.show()
print(
    "per phase:", ", ".join(f"{n} {a:.1%}" for n, a in zip(phase_names, mean_phases, strict=True))
)

# %%
assert 0 < mean_phases[0] - mean_phases[-1] < 0.03  # at k = 5 unfreezing costs a little

# %% [markdown]
# With 25 images, unfreezing does not pay: the fine-tuned network ends about two points *below*
# the probe it started from. Every unfrozen weight is one more way to fit 25 images instead of
# the digits behind them. The next section shows where unfreezing starts to pay.
#
# ## When the advantage fades: a learning curve
#
# The same three methods with $k = 2, 5, 10, 20, 50$ labels per class (one draw per $k$, seed 0):

# %%
KS = (2, 5, 10, 20, 50)
curve = {k: (compare(k, 0) if k != 5 else runs[0]) for k in KS}
scratch_curve = np.array([curve[k][0] for k in KS])
probe_curve = np.array([curve[k][1][0] for k in KS])
progressive_curve = np.array([curve[k][1][-1] for k in KS])
fig, ax = plt.subplots(figsize=(7.5, 3.5))
ax.plot(KS, 100 * scratch_curve, "o-", label="scratch")
ax.plot(KS, 100 * probe_curve, "s-", label="linear probe")
ax.plot(KS, 100 * progressive_curve, "^-", label="progressive unfreezing")
ax.axhline(20, color="grey", linestyle=":", label="guessing")
ax.set_xscale("log")
ax.minorticks_off()
ax.set_xticks(KS, [str(k) for k in KS])
ax.set_xlabel("labelled images per class, k")
ax.set_ylabel("test accuracy (%)")
ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
plt.show()
for k, s, p, u in zip(KS, scratch_curve, probe_curve, progressive_curve, strict=True):
    print(f"k = {k:>2}: scratch {s:.1%}, probe {p:.1%}, progressive {u:.1%}")

# %%
small = np.array(KS) <= 20
assert np.all(probe_curve[small] - scratch_curve[small] >= 0.30)  # transfer far ahead up to k=20
assert scratch_curve[-1] > progressive_curve[-1] > probe_curve[-1]  # at k = 50 scratch wins
assert np.all(progressive_curve[2:] > probe_curve[2:])  # from k = 10 unfreezing pays ...
assert np.all(progressive_curve[:2] < probe_curve[:2])  # ... below it, it costs

# %% [markdown]
# Up to 20 labels per class, transfer is 30 points or more ahead. Between 20 and 50 scratch
# catches up abruptly and at 50 it wins: 250 labelled images are enough to learn features *for
# this task*, while the pretrained ones were learned for glyphs and are only approximately right
# for digits. Progressive unfreezing sits in between: with 2 or 5 labels per class it loses a
# little to the probe, from 10 it beats the probe by adapting the backbone to digits, but its
# small learning rates and short phases keep it close to where it started, and at 50 labels
# scratch is ahead of it too. The lesson is general: transfer buys the most when labels are
# scarcest, and its advantage shrinks as the target data grow {cite}`he2019`.
#
# ## Weaker sources: few classes, or no noise
#
# Why 100 glyph classes, and why on noise? Two controls, pretrained exactly the same way: on only
# **5** glyph classes (`glyphs5`), and on the 100 classes drawn on a **clean** canvas
# (`glyphs100_clean`). Each is probed with five labels per class, as above:

# %%
weak = {}
for source in ("glyphs5", "glyphs100_clean"):
    accuracies = []
    for seed in SEEDS:
        train_idx, test_idx = few_shot_split(y, k=5, seed=seed)
        probe = train_few_shot(
            "probe", X[train_idx], y[train_idx], seed=seed, source=source,
            test=(X[test_idx], y[test_idx]),
        )  # fmt: skip
        accuracies.append(probe.phases[0]["test_acc"])
    weak[source] = np.mean(accuracies)
info5, info_clean = book_backbone("glyphs5")[1], book_backbone("glyphs100_clean")[1]
for source, source_info, acc in [
    ("glyphs100", info, probe5.mean()),
    ("glyphs5", info5, weak["glyphs5"]),
    ("glyphs100_clean", info_clean, weak["glyphs100_clean"]),
]:
    print(
        f"{source:>15}: source accuracy {source_info['val_acc']:6.1%}, "
        f"linear probe at k = 5: {acc:.1%}"
    )
print(f"{'scratch':>15}: {scratch5.mean():.1%}")

# %%
assert info5["val_acc"] > 0.95 > info_clean["val_acc"] > info["val_acc"]
assert probe5.mean() - weak["glyphs5"] >= 0.05  # few source classes: weaker features
assert probe5.mean() - weak["glyphs100_clean"] >= 0.10  # no noise at the source: weaker still
assert min(weak.values()) - scratch5.mean() >= 0.20  # ... and both still far better than scratch

# %% [markdown]
# Both controls solve their own task *better* than `glyphs100` (99.9 % and 69.7 % against
# 48.5 %), and both transfer *worse*. Five classes can be told apart with a few features, and
# nothing pushes the network to learn more. Glyphs on a clean canvas are easier to classify than
# on noise, and the network need not learn to see through noise — the one nuisance the target is
# full of. Even so, both beat scratch by 20 points or more. A source transfers well when it
# forces many distinctions under the target's nuisances; how well the source task itself is
# solved says little.
#
# ## Summary
#
# - `build_transfer_model(name, num_classes, weights=...)` replaces the right head for each
#   architecture and loads weights through torchvision's `weights=` API or from a local file
#   checked against its SHA-256, with `weights_only=True`.
# - Freezing is more than `requires_grad = False`: frozen BatchNorm layers must stay in
#   evaluation mode, and frozen parameters must stay out of the optimizer.
# - With 5 labels per class, a linear probe on pretrained features beats a tuned network
#   from scratch by about 35 points; progressive unfreezing pays from about 10 labels per class;
#   at 50, scratch wins.
# - A good source has many classes and the target's nuisances; a source task solved almost
#   perfectly (5 classes) or without the nuisance (no noise) transfers worse.
