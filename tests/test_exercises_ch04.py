"""Chapter 4's exercises: realistic wrong answers get their intended hint."""

import math

from test_exercises import wrong_answer_test


def adam(bias_correction=True, eps_inside=False, shift=0, only_m=False):
    """One Adam step with or without one of the typical mistakes."""

    def adam_step(theta, grad, m, v, t, lr, betas, eps):
        b1, b2 = betas
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad**2
        c1 = 1 - b1 ** (t + shift) if bias_correction else 1.0
        c2 = 1 - b2 ** (t + shift) if bias_correction and not only_m else 1.0
        if eps_inside:
            return theta - lr * (m / c1) / (v / c2 + eps).sqrt(), m, v
        return theta - lr * (m / c1) / ((v / c2).sqrt() + eps), m, v

    return adam_step


def adam_swapped_betas(theta, grad, m, v, t, lr, betas, eps):
    b1, b2 = betas
    m = (1 - b1) * m + b1 * grad
    v = (1 - b2) * v + b2 * grad**2
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    return theta - lr * m_hat / (v_hat.sqrt() + eps), m, v


class NotesCosine:
    """The notes' scheduler: sets the rate from T_cur, then advances T_cur."""

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, fix=None):
        self.optimizer, self.T_0, self.T_mult, self.eta_min = optimizer, T_0, T_mult, eta_min
        self.T_cur, self.T_i, self.fix = 0, T_0, fix
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]

    def set_rates(self):
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            if self.fix == "one base lr":
                base = self.base_lrs[0]
            cosine = 1 + math.cos(math.pi * self.T_cur / self.T_i)
            group["lr"] = self.eta_min + (base - self.eta_min) * cosine / 2

    def restart(self):
        if self.T_cur == self.T_i:
            self.T_cur = 0
            self.T_i *= 1 if self.fix == "no T_mult" else self.T_mult

    def step(self):
        if self.fix is None:  # the notes' order
            self.restart()
            self.set_rates()
            self.T_cur += 1
        elif self.fix == "restart first":  # advance, but check the restart too early
            self.restart()
            self.T_cur += 1
            self.set_rates()
        else:
            self.T_cur += 1
            self.restart()
            self.set_rates()


def cosine(fix):
    return lambda optimizer, **kw: NotesCosine(optimizer, fix=fix, **kw)


WRONG = [
    ("4.1", adam(bias_correction=False), "without it"),
    ("4.1", adam(only_m=True), "v_hat = v_t / (1 - beta2^t)"),
    ("4.1", adam(eps_inside=True), "not by sqrt(v_hat + eps)"),
    ("4.1", adam(shift=1), "off by one"),
    ("4.1", adam(shift=-1), "off by one"),
    ("4.1", adam_swapped_betas, "(1 - beta1) of the new gradient"),
    ("4.1", lambda *args: args[0], "must return a triple"),
    ("4.2", 1.0, "two corrections cancel"),
    ("4.2", 0.1 / 0.001, "without the square root"),
    ("4.2", math.sqrt(0.001) / 0.1, "inverse"),
    ("4.2", 0.1, "only one of the two corrections"),
    ("4.2", "3.16", "must be a number"),
    ("4.3", cosine(None), "one step late"),
    ("4.3", cosine("restart first"), "after advancing the counter"),
    ("4.3", cosine("one base lr"), "its own initial lr"),
    ("4.3", cosine("no T_mult"), "multiplied by T_mult"),
]


test_a_realistic_wrong_answer_gets_its_intended_hint = wrong_answer_test(WRONG)
