"""The CUDA branches: the same keys draw the same masks, crops and corruption on a GPU as on the CPU, and the learners
train on a GPU in every precision. Skipped (with the reason) where no CUDA device exists; `benchmarks/gpu_check.sh` runs
them on a GPU machine."""
import math
import pytest
import torch

from gmml_fast.datasets import finetune_dls, pretrain_dls
from gmml_fast.corruption import gmml_corrupt
from gmml_fast.augment import PretrainAugment
from gmml_fast.masking import random_token_mask, gmml_block_mask
from gmml_fast.rng import rng_key, hash_uniform

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device (run benchmarks/gpu_check.sh on a GPU machine)')
CUDA = torch.device('cuda')

def test_hash_rng_is_the_same_on_gpu_and_cpu():
    k = rng_key(3)
    assert torch.equal(hash_uniform(k.to(CUDA), (1000,), 5).cpu(), hash_uniform(k, (1000,), 5))   # integer hash: bit-identical
    assert torch.equal(random_token_mask(8, 64, 0.75, key=k.to(CUDA)).cpu(), random_token_mask(8, 64, 0.75, key=k))
    assert torch.equal(gmml_block_mask(8, 32, key=k.to(CUDA)).cpu(), gmml_block_mask(8, 32, key=k))

def test_corruption_and_augmentation_match_the_cpu():
    x = torch.randn(16, 3, 32, 32)
    k = rng_key(0)
    (oc, mc), (og, mg) = gmml_corrupt(x, 'gmml', key=k), gmml_corrupt(x.to(CUDA), 'gmml', key=k.to(CUDA))
    assert og.device.type == 'cuda' and torch.equal(mg.cpu(), mc)
    torch.testing.assert_close(og.cpu(), oc, rtol=1e-4, atol=1e-4)          # the blur's float kernels may round differently
    aug = PretrainAugment()
    torch.testing.assert_close(aug(x.to(CUDA), key=k.to(CUDA)).cpu(), aug(x, key=k), rtol=1e-4, atol=1e-4)

@pytest.mark.parametrize('precision', ['32', 'bf16', 'fp16'])
@pytest.mark.parametrize('method', ['gmml', 'mae'])
def test_learners_train_on_the_gpu(method, precision):

    from gmml_fast.learner import gmml_learner, mae_learner
    dls = pretrain_dls('fashion_mnist', bs=64, fraction=2048/60000, n_valid=256, device=CUDA, size=32)
    build = gmml_learner if method == 'gmml' else mae_learner
    learn = build(dls, 'nano_32', encoder_kwargs=dict(depth=2), seed=0, lr=1e-3, precision=precision)
    with learn.no_bar(), learn.no_logging(): learn.fit_warmup_cosine(3)
    losses = [float(v) for v in learn.recorder.losses]
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:])/5 < 0.9*sum(losses[:5])/5                          # the loss falls
    assert next(learn.model.parameters()).device.type == 'cuda'

def test_finetune_with_aux_tasks_and_fgsm_on_the_gpu():

    from gmml_fast.learner import finetune_learner
    from gmml_fast.evaluate import fgsm_accuracy
    dls = finetune_dls('fashion_mnist', bs=64, label_fraction=0.05, n_valid=500, device=CUDA, size=32)
    learn = finetune_learner(dls, arch='nano_32', encoder_kwargs=dict(depth=2), drloc=0.1, me=0.1, seed=0, precision='bf16')
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 2e-3)
    acc = float(learn.validate()[1])
    assert acc > 0.3 and fgsm_accuracy(learn, 1/255) <= acc + 0.02
