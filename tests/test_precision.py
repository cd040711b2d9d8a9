"bf16 mixed precision on the CPU: MAE (its float32 mask token meets bf16 activations) and a finetune with the three auxiliary tasks (DRLoc, ME, MAE) train without NaN and their loss falls; small on purpose: bf16 on a CPU is about 13× slower than float32."
import math
import pytest
import torch

@pytest.mark.parametrize('what', ['mae', 'finetune'])
def test_bf16_trains_on_cpu(what):

    from gmml_fast.datasets import finetune_dls, pretrain_dls
    from gmml_fast.learner import mae_learner, finetune_learner
    torch.manual_seed(0)
    if what == 'mae':
        dls = pretrain_dls('fashion_mnist', bs=16, size=32, fraction=256/60000, valid=0.01, seed=0)
        learn = mae_learner(dls, 'nano_32', encoder_kwargs=dict(depth=1), seed=0, lr=1e-3, precision='bf16')
    else:
        dls = finetune_dls('fashion_mnist', bs=16, label_fraction=0.005, size=32, n_valid=32, seed=0)
        learn = finetune_learner(dls, arch='nano_32', encoder_kwargs=dict(depth=1), drloc=0.1, me=0.1, mae=0.1, seed=0, lr=2e-3,
                                 precision='bf16', drloc_kwargs=dict(hidden=64), me_kwargs=dict(depth=1))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3)
    losses = [float(v) for v in learn.recorder.losses]
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-4:])/4 < 0.9*sum(losses[:4])/4
    assert {p.dtype for p in learn.model.parameters()} == {torch.float32}
