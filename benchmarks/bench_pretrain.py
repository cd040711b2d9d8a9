"""Training throughput of GMML and MAE pretraining steps, and fastai's overhead over a raw PyTorch loop doing the
same GMML step, all measured in one run on real Fashion-MNIST batches.

    python benchmarks/bench_pretrain.py            # ~10 minutes on 2 CPU cores
    python benchmarks/bench_pretrain.py --quick    # fewer steps

Writes benchmarks/results/pretrain.json and pretrain.md.
"""
import argparse, platform, statistics, time

import torch
from fastai.callback.core import Callback

from gmml_fast.data import fmnist_pretrain_dls
from gmml_fast.learner import gmml_learner, mae_learner
from gmml_fast.losses import MaskedL1Loss
from gmml_fast.aliens import GMMLCorruption
from gmml_fast.masking import rng_key
from gmml_fast.callbacks import no_decay_params
from bench_common import RECIPE_BEFORE, write_results, gmml_decoder_before

class TrainTimer(Callback):
    "Wall time of the training phase of each epoch (no validation)."
    def before_train(self): self.t0 = time.perf_counter()
    def after_train(self): self.times.append(time.perf_counter() - self.t0)
    def before_fit(self): self.times = []

def fastai_rate(learn, n_batches, epochs):
    timer = TrainTimer()
    learn.fit(epochs, cbs=[timer])
    return n_batches*learn.dls.train.bs/statistics.median(timer.times[1:])     # first epoch = warm-up

def raw_gmml_rate(dls, model, corruption, lr, wd, epochs):
    "The same GMML step without fastai: our own batching of the same tensors, the same transforms, torch AdamW."
    decay = set(map(id, no_decay_params(model)))
    groups = [dict(params=[p for p in model.parameters() if id(p) not in decay], weight_decay=wd),
              dict(params=[p for p in model.parameters() if id(p) in decay], weight_decay=0.0)]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    loss_fn, images, bs = MaskedL1Loss(), dls.train.images, dls.train.bs
    tfms, gen = dls.train.after_batch, torch.Generator().manual_seed(0)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(images))
        for i in range(0, len(images) - bs + 1, bs):
            x = tfms(images[perm[i:i+bs]])
            xc, m = corruption(x, key=rng_key(generator=gen))
            loss = loss_fn(model(xc), x, m)
            opt.zero_grad(); loss.backward(); opt.step()
        times.append(time.perf_counter() - t0)
    return (len(images)//bs)*bs/statistics.median(times[1:])

def main(quick=False):
    torch.manual_seed(0)
    n_batches, bs, epochs = (6, 128, 3) if quick else (16, 128, 4)
    dls = fmnist_pretrain_dls(bs=bs, size=32, channels=3, fraction=n_batches*bs/60000 + 1e-6, n_valid=128, seed=0)
    n_batches = len(dls.train)
    rows = {}
    gl = gmml_learner(dls, 'tiny_32', corruption='gmml', lr=1e-4, seed=0, decoder=gmml_decoder_before(192), **RECIPE_BEFORE)
    gl.remove_cb(gl.progress)
    rows['GMML step (ViT-Tiny, fastai)'] = fastai_rate(gl, n_batches, epochs)
    ml = mae_learner(dls, 'tiny_32', mask_ratio=0.75, lr=1e-4, seed=0, **RECIPE_BEFORE)            # the lightweight-MAE paper's decoder: 192-d, 4 blocks
    ml.remove_cb(ml.progress)
    rows['MAE step, 75 % masked, decoder 192-d × 4 (fastai)'] = fastai_rate(ml, n_batches, epochs)
    ml2 = mae_learner(dls, 'tiny_32', mask_ratio=0.75, decoder_dim=128, decoder_depth=1, decoder_heads=4, lr=1e-4, seed=0, **RECIPE_BEFORE)
    ml2.remove_cb(ml2.progress)
    rows['MAE step, 75 % masked, decoder 128-d × 1 (fastai)'] = fastai_rate(ml2, n_batches, epochs)
    gl2 = gmml_learner(dls, 'tiny_32', corruption='gmml', lr=1e-4, seed=0, decoder=gmml_decoder_before(192), **RECIPE_BEFORE)
    rows['GMML step (ViT-Tiny, raw PyTorch loop)'] = raw_gmml_rate(dls, gl2.model, GMMLCorruption('gmml'), 1e-4, 0.05, epochs)
    g, r = rows['GMML step (ViT-Tiny, fastai)'], rows['GMML step (ViT-Tiny, raw PyTorch loop)']
    ratios = {'MAE (192×4) / GMML': rows['MAE step, 75 % masked, decoder 192-d × 4 (fastai)']/g,
              'MAE (128×1) / GMML': rows['MAE step, 75 % masked, decoder 128-d × 1 (fastai)']/g,
              'fastai overhead vs raw loop': r/g - 1}
    res = dict(machine=f'{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, '
                       + (torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'),
               command='python benchmarks/bench_pretrain.py' + (' --quick' if quick else ''),
               setup=f'3×32×32 Fashion-MNIST batches of {bs}, {n_batches} batches per epoch, median of {epochs - 1} epochs after one warm-up epoch',
               images_per_s=rows, ratios=ratios)
    md = ['# Pretraining step throughput', '', f"Machine: {res['machine']}. Command: `{res['command']}`. {res['setup']}.", '',
          '| step | images/s |', '|---|---|'] + [f'| {k} | {v:.1f} |' for k, v in rows.items()]
    md += ['', '| ratio | value |', '|---|---|'] + [f"| {k} | {v:.2f}{'' if 'overhead' not in k else f' ({100*v:.1f} %)'} |" for k, v in ratios.items()]
    write_results('pretrain', res, md)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='fewer steps')
    main(ap.parse_args().quick)
