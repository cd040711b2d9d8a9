"""The training step's host side, counted with `torch.profiler` at a tiny setting (a 1-block 16-d ViT on batches of 8 at
28 px, so the model's arithmetic is negligible): kernel launches of the corruption, no per-batch host syncs in any
library learner, and a diverging run that stops loudly (in the library and through the command line)."""
import subprocess, sys

import pytest
import torch

from gmml_fast.corruption import gmml_corrupt
from gmml_fast.data import tensor_dls, image_batch_tfms
from gmml_fast.learner import gmml_learner, mae_learner, simmim_learner, finetune_learner
from gmml_fast.encoder import load_encoder, export_encoder
from gmml_fast.gmml import GMMLModel
from gmml_fast.encoder import create_encoder
from gmml_fast.rng import rng_key
from gmml_fast.step import host_work, step_host_work

TINY = dict(arch='nano_28', encoder_kwargs=dict(depth=1, embed_dim=16, num_heads=1), seed=0)

@pytest.fixture(scope='module')
def loaders():
    torch.manual_seed(0)
    x, y = torch.randint(0, 256, (8*64, 1, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (8*64,))
    tf = image_batch_tfms(([0.5], [0.25]))
    return (tensor_dls(x, x[:16], bs=8, after_batch=tf),
            tensor_dls(x, x[:16], y, y[:16], vocab=list('abcdefghij'), bs=8, after_batch=tf))

@pytest.mark.parametrize('shape', [(8, 1, 28, 28), (512, 1, 28, 28), (8, 3, 32, 32), (256, 3, 32, 32)])
@pytest.mark.parametrize('recipe', ['gmml', 'comb2'])
def test_corruption_launches_few_kernels_at_any_batch_size(shape, recipe):
    """One corruption call: at most 135 kernel-launching operations with a key the host knows (as every library key is)
    and 155 with one only the device knows, the same count whatever the batch size, no sync. Measured for 'gmml' at
    8×1×28×28: 127 and 149 (at db2451e: 880; at 8f1f89d: 199)."""
    x, key = torch.randn(*shape), rng_key(0)
    for k, bound in ((key, 135), (key.clone(), 155)):          # a clone: the same words, unknown to the host
        gmml_corrupt(x, recipe, key=k)
        w = host_work(gmml_corrupt, x, recipe, key=k)
        assert w['launches'] <= bound, w
        assert w['syncs'] == 0 and w['literals'] == 0, w

def test_corruption_is_reproducible():
    x = torch.randn(16, 3, 32, 32)
    a, b = gmml_corrupt(x, 'gmml', seed=5), gmml_corrupt(x, 'gmml', seed=5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], gmml_corrupt(x, 'gmml', seed=6)[1])

BUILDERS = {'finetune (CE)': lambda u, l: finetune_learner(l, **TINY),
            'finetune (CE + DRLoc + ME)': lambda u, l: finetune_learner(l, drloc=0.1, me=0.2, **TINY),
            'GMML': lambda u, l: gmml_learner(u, **TINY), 'MAE': lambda u, l: mae_learner(u, **TINY),
            'SimMIM': lambda u, l: simmim_learner(u, **TINY)}

@pytest.fixture(scope='module')
def work(loaders):
    "Per training batch of every library learner, as (30-batch epoch − 10-batch epoch)/20 with its own progress bar."
    return {name: step_host_work(build(*loaders), short=10, long=30, repeats=0) for name, build in BUILDERS.items()}

@pytest.mark.slow
@pytest.mark.parametrize('name', list(BUILDERS))
def test_no_host_sync_per_training_batch(work, name):
    "At most 0.1 host syncs per training batch (before: 1.0, fastai's progress bar; 3.0 for MAE)."
    assert work[name]['syncs'] <= 0.1, work[name]
    assert work[name]['literals'] <= 1.0, work[name]   # the loader's own CPU index tensor; nothing copied from Python to the device

@pytest.mark.slow
def test_pretraining_step_launches(work):
    """The GMML and DRLoc + ME batches against a classification batch on the same encoder, in kernel launches. At db2451e:
    4.5× and 4.0×; at 8f1f89d: 3.22× and 2.93×; measured now: 2.09× and 2.61× (280 and 350 against 134). The issue's 1.5× is
    not reached at this 1-block setting: the corruption alone is 127 launches, and ME's decoder (the thesis's 4 blocks)
    adds 152 by itself."""
    ce, gmml, aux = (work[k]['launches'] for k in ('finetune (CE)', 'GMML', 'finetune (CE + DRLoc + ME)'))
    assert gmml <= 2.2*ce and aux <= 2.7*ce, (ce, gmml, aux)

def test_non_finite_weights_are_never_written_or_loaded(tmp_path):
    enc = create_encoder('nano_28', in_chans=1, depth=1)
    path = export_encoder(GMMLModel(enc), tmp_path/'ok.safetensors')
    load_encoder(create_encoder('nano_28', in_chans=1, depth=1), path)
    with torch.no_grad(): enc.blocks[0].attn.qkv.weight[0, 0] = float('nan')
    with pytest.raises(ValueError, match='not finite'): export_encoder(GMMLModel(enc), tmp_path/'nan.safetensors')
    assert not (tmp_path/'nan.safetensors').exists()
    from safetensors.torch import save_file
    save_file(enc.state_dict(), str(tmp_path/'bad.safetensors'))
    with pytest.raises(ValueError, match='not finite.*lower learning rate'):
        load_encoder(create_encoder('nano_28', in_chans=1, depth=1), tmp_path/'bad.safetensors')

@pytest.mark.slow
def test_diverging_run_fails_loudly_through_the_command_line(tmp_path):
    "`pretrain --lr 1000` diverges: one line naming the step, the loss and the rate, exit code 1, no encoder (before: exit 0 and a nan encoder)."
    r = subprocess.run([sys.executable, '-m', 'gmml_fast.train', 'pretrain', '--lr', '1000', '--epochs', '2', '--fraction', '0.02',
                        '--depth', '1', '--monitor', '0', '--out', str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stderr[-2000:]
    errors = [l for l in r.stderr.splitlines() if l.startswith('error:')]
    assert len(errors) == 1 and 'training stopped at step' in errors[0] and 'learning rate' in errors[0], r.stderr[-2000:]
    assert 'Traceback' not in r.stderr
    (run_dir,) = list(tmp_path.iterdir())
    assert not (run_dir/'encoder.safetensors').exists()
