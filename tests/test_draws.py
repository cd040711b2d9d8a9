"""The random draws the committed records depend on. The label-efficiency study's encoders (benchmarks/results) were
pretrained with the corruption masks and hash words of commit 8f1f89d; work on the step's speed must keep them, or the
records stop describing the code. Pinned here as a digest of integer and boolean outputs only (masks and hash words:
exact on every CPU and GPU, unlike float transcendental functions), and the two ways a key is hashed must agree."""
import hashlib

import pytest
import torch

from gmml_fast.corruption import gmml_corrupt, CORRUPTIONS, Alien
from gmml_fast.masking import gmml_block_mask
from gmml_fast.rng import rng_key, resolve_key, hash_bits, split_key, hash_uniform

# sha256 of the outputs below, computed at 8f1f89d (the code that made benchmarks/results/label_efficiency.json)
PINNED = 'd66e6a5f1ceee774c6c5933e84668bad2570232b455ae63db3df72e5070123b5'

def test_masks_and_words_are_those_of_the_records():
    h = hashlib.sha256()
    x = torch.zeros(6, 3, 32, 32)
    for name in CORRUPTIONS:
        for align in (1, 4):
            for seed in range(3): h.update(gmml_corrupt(x, name, align=align, seed=seed)[1].numpy().tobytes())
    # 96 rectangles: two bitmask words per unit
    h.update(gmml_corrupt(torch.zeros(3, 1, 28, 28), [Alien('noise', 0.99, size=(0.05, 0.1))], seed=0)[1].numpy().tobytes())
    for seed in range(3):
        h.update(gmml_block_mask(5, (28, 28), ratio=(0.1, 0.7), seed=seed).numpy().tobytes())
        h.update(hash_bits(split_key(rng_key(seed), 2000), 100, 1).numpy().tobytes())
    assert h.hexdigest() == PINNED

def unknown(key):
    "The same key as a fresh tensor whose words the host does not know: hashed on its device."
    return key.clone()

@pytest.mark.parametrize('seed', [0, 7, 2**40 + 3])
def test_a_key_the_host_knows_hashes_as_on_the_device(seed):
    key = rng_key(seed)
    assert torch.equal(hash_bits(key, 1000, 5), hash_bits(unknown(key), 1000, 5))
    assert torch.equal(split_key(key, 3), split_key(unknown(key), 3))
    assert torch.equal(hash_uniform(split_key(key, 3), (4, 9), 2), hash_uniform(split_key(unknown(key), 3), (4, 9), 2))
    g = torch.Generator().manual_seed(seed % 1000)
    drawn = rng_key(generator=g)
    assert torch.equal(drawn, rng_key(generator=torch.Generator().manual_seed(seed % 1000)))
    assert torch.equal(hash_bits(drawn, 50, 1), hash_bits(unknown(drawn), 50, 1))

def test_a_key_changed_in_place_is_hashed_by_its_new_value():
    key = rng_key(1)
    key.add_(1)                                    # the host's note of its words is now stale and must be ignored
    assert torch.equal(hash_bits(key, 20, 0), hash_bits(torch.tensor([2, 1]), 20, 0))

def test_a_known_key_moves_without_a_copy():
    "resolve_key makes a known key on the device from two scalars (no host-to-device copy, no literal)."
    from gmml_fast.step import host_work
    key = rng_key(3)
    w = host_work(resolve_key, key, device='meta')
    assert w['literals'] == 0 and w['syncs'] == 0 and w['top'].get('aten::copy_', 0) == 0, w
    assert resolve_key(key, device='meta').device.type == 'meta'
