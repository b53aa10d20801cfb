"""Chapter 10's exercises: realistic wrong answers get their intended hint."""

import torch
from test_exercises import wrong_answer_test


def forgets_set_epoch(sampler, epochs):
    return [list(sampler) for _ in range(epochs)]


def shuffles_itself(sampler, epochs):
    n = len(sampler.dataset)
    return [torch.randperm(n)[: len(sampler)].tolist() for _ in range(epochs)]


def reseeds(sampler, epochs):
    orders = []
    for epoch in range(epochs):
        sampler.seed = 100 + epoch
        orders.append(list(sampler))
    return orders


def plain_mean(gradients, sizes):
    return sum(gradients) / len(gradients)


def plain_sum(gradients, sizes):
    return sum(gradients)


WRONG = [
    ("10.1", 50, "each rank sees only its half"),
    ("10.1", 13, "split among the ranks"),
    ("10.1", 800, "count the examples one step consumes"),
    ("10.2", forgets_set_epoch, "set_epoch"),
    ("10.2", shuffles_itself, "share examples"),
    ("10.2", reseeds, "not as the sampler would shuffle them"),
    ("10.3", plain_mean, "weight each shard's gradient by its share"),
    ("10.3", plain_sum, "that is the sum"),
]

test_a_realistic_wrong_answer_gets_its_intended_hint = wrong_answer_test(WRONG)
