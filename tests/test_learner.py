"Pretraining learners on ~1k real Fashion-MNIST images: the losses fall by >= 30 % within a few hundred steps."
import pytest
import torch
from gmml_fast.data import fmnist_pretrain_dls
from gmml_fast.learner import gmml_learner, mae_learner

@pytest.fixture(scope='module')
def dls():
    return fmnist_pretrain_dls(bs=64, size=32, fraction=1024/60000, valid=0.01, seed=0)   # 1,020 train images, 16 batches/epoch

@pytest.mark.parametrize('method', ['gmml', 'mae'])
def test_loss_drops_30_percent(dls, method):
    torch.manual_seed(0)
    if method == 'gmml': learn = gmml_learner(dls, 'nano_32', corruption='comb1', lr=1e-3, seed=0, encoder_kwargs=dict(depth=4))
    else: learn = mae_learner(dls, 'nano_32', decoder_dim=96, decoder_depth=2, lr=1e-3, seed=0, encoder_kwargs=dict(depth=4))
    learn.remove_cb(learn.progress) if hasattr(learn, 'progress') else None
    w0 = [p.detach().clone() for p in learn.model.parameters()]
    before = learn.validate()[0]
    learn.fit_one_cycle(12)                                   # 12 epochs × 15 steps = 180 steps
    after = learn.validate()[0]
    assert after <= 0.7*before, (before, after)
    assert all(not torch.equal(a, b) for a, b in zip(w0, learn.model.parameters()))   # unlabeled batches did train
