"""Chapter 5's exercises: realistic wrong answers get their intended hint."""

from test_exercises import wrong_answer_test


def no_padding(n, k, s=1, p=0, d=1):
    return (n - d * (k - 1) - 1) // s + 1


def padding_once(n, k, s=1, p=0, d=1):
    return (n + p - d * (k - 1) - 1) // s + 1


def no_stride(n, k, s=1, p=0, d=1):
    return n + 2 * p - d * (k - 1)


def tutorial_formula(n, k, s=1, p=0, d=1):
    return (n + 2 * p - k) // s + 1


def true_division(n, k, s=1, p=0, d=1):
    return (n + 2 * p - d * (k - 1) - 1) / s + 1


def no_plus_one(n, k, s=1, p=0, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s


WRONG = [
    ("5.1", no_padding, "n + 2p"),
    ("5.1", padding_once, "not n + p"),
    ("5.1", no_stride, "every s-th position"),
    ("5.1", tutorial_formula, "d (k - 1) + 1"),
    ("5.1", true_division, "floor division"),
    ("5.1", no_plus_one, "floor(...) + 1"),
    ("5.2", 13, "without the strides"),
    ("5.2", 22, "three-block network"),
    ("5.2", 44, "overcounts"),
    ("5.2", 38, "not the fourth pool"),
    ("5.2", 64, "8 pixels apart"),
    ("5.3", lambda x: x.view(-1, 128 * 4 * 4), "keeps the batch"),
    ("5.3", lambda x: x.view(x.size(0), -1), "channels-last"),
    ("5.3", lambda x: x.flatten(), "the batch is merged"),
    ("5.3", lambda x: x.permute(0, 2, 3, 1).reshape(x.shape[0], -1), "(H, W, C) order"),
]


test_a_realistic_wrong_answer_gets_its_intended_hint = wrong_answer_test(WRONG)
