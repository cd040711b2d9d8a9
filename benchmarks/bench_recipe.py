"""What each change of the pretraining recipe does, measured on held-out TRAINING images (the test set is not touched).

Starting from the recipe the library used before (no augmentation, fastai one-cycle with momentum cycling, constant
weight decay 0.05, no clipping, no stochastic depth, the fixed-budget 'gmml' corruption), the changes are added one at
a time — (1) pretraining augmentation, (2) the published optimisation (warm-up + cosine with fixed β1, weight decay
0.04 -> 0.4, gradient clipping 3, drop-path 0.1), (3) the paper's per-image "up to 35 %" corruption ('gmml_paper') —
and each pretrained encoder is read out with a k-NN classifier (k = 20, cosine similarity, mean-pooled final tokens):
the memory bank is 10,000 labeled training images, the queries 2,000 other training images. Fashion-MNIST's test set
is never loaded.

    python benchmarks/bench_recipe.py               # writes benchmarks/results/recipe.{json,md}
    python benchmarks/bench_recipe.py --quick       # a smoke test (recipe_quick.*)
"""
import json, os, subprocess, time
from datetime import datetime, timezone
from pathlib import Path

import torch
from fastai.torch_core import set_seed

from gmml_fast.data import load_fashion_mnist, tensor_dls, image_batch_tfms, FMNIST_STATS
from gmml_fast.learner import gmml_learner
from gmml_fast.evaluate import knn_accuracy
from bench_common import cpu_name, SkipValidation, RECIPE_BEFORE, gmml_decoder_before, heldout_split, heldout_cli, frozen_features

ARCH, DEPTH, BS, LR = 'nano_32', 6, 128, 1e-3
OLD = dict(RECIPE_BEFORE, corruption='gmml')
STEPS = [('before: library recipe until now', OLD, 'fit_one_cycle'),
         ('+ augmentation (crop 0.6-1, flip)', dict(OLD, augment=True), 'fit_one_cycle'),
         ('+ published optimisation', dict(OLD, augment=True, wd=0.04, wd_end=0.4, clip=3.0, drop_path=0.1), 'fit_warmup_cosine'),
         ('+ paper corruption budget (gmml_paper)', dict(augment=True, wd=0.04, wd_end=0.4, clip=3.0, drop_path=0.1,
                                                     corruption='gmml_paper'), 'fit_warmup_cosine')]
MODES = {'full': dict(n_pretrain=12000, epochs=2, n_bank=10000, n_query=2000),
         'quick': dict(n_pretrain=2000, epochs=1, n_bank=1000, n_query=500)}
T0 = time.perf_counter()
def log(msg): print(f"[{(time.perf_counter() - T0)/60:6.2f} min] {msg}", flush=True)

def embed(encoder, x):
    "Frozen features at this benchmark's 32 px (bench_common.frozen_features)."
    return frozen_features(encoder, x, 32)

def main():
    a, mode, cfg, out = heldout_cli(__doc__, 'recipe', MODES)
    x, y = load_fashion_mnist('train')
    q, b, p = heldout_split(cfg['n_pretrain'], cfg['n_bank'], cfg['n_query'])
    records = []
    for name, kw, fit in STEPS:
        set_seed(0)
        dls = tensor_dls(x[p], x[q[:256]], bs=BS, after_batch=image_batch_tfms(FMNIST_STATS, 32, 'pad', 1))
        learn = gmml_learner(dls, ARCH, lr=LR, seed=0, encoder_kwargs=dict(depth=DEPTH), decoder=gmml_decoder_before(96), **kw)
        t = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): getattr(learn, fit)(cfg['epochs'], cbs=[SkipValidation()])
        minutes = (time.perf_counter() - t)/60
        enc = learn.model.encoder
        acc = knn_accuracy(embed(enc, x[b]), y[b], embed(enc, x[q]), y[q])
        loss = float(learn.recorder.losses[-1])
        records.append(dict(step=name, settings={k: v for k, v in kw.items()}, fit=fit, knn_accuracy=round(100*acc, 2),
                            last_train_loss=round(loss, 4), pretrain_minutes=round(minutes, 2)))
        log(f"{name}: k-NN {100*acc:.2f} % ({minutes:.1f} min)")
    set_seed(0)
    from gmml_fast.patches import create_encoder
    rnd = create_encoder(ARCH, in_chans=1, depth=DEPTH)
    acc0 = knn_accuracy(embed(rnd, x[b]), y[b], embed(rnd, x[q]), y[q])
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    meta = dict(mode=mode, **cfg, arch=ARCH, depth=DEPTH, bs=BS, lr=LR, random_init_knn_accuracy=round(100*acc0, 2),
                command='python benchmarks/bench_recipe.py' + (' --quick' if a.quick else ''), commit=commit,
                machine=f"{cpu_name()}, {os.cpu_count()} logical CPUs, {a.threads} torch threads, torch {torch.__version__}, no GPU",
                date=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'), total_minutes=round((time.perf_counter() - T0)/60, 1))
    out.with_suffix('.json').write_text(json.dumps(dict(meta=meta, records=records), indent=1))
    rows = '\n'.join(f"| {r['step']} | {r['knn_accuracy']:.2f} | {r['knn_accuracy'] - records[i-1]['knn_accuracy']:+.2f} | {r['last_train_loss']:.3f} | {r['pretrain_minutes']:.1f} |"
                     if i else f"| {r['step']} | {r['knn_accuracy']:.2f} | | {r['last_train_loss']:.3f} | {r['pretrain_minutes']:.1f} |"
                     for i, r in enumerate(records))
    md = f"""# The pretraining recipe, one change at a time

k-NN read-out (k = 20, cosine, mean-pooled final tokens) of GMML-pretrained encoders: {cfg['n_bank']:,} labeled training images as
the memory bank, {cfg['n_query']:,} *other training images* as queries — the test set is not used. Pretraining: {cfg['n_pretrain']:,}
unlabeled training images (never the queries), {cfg['epochs']} epochs, ViT-Nano with {DEPTH} blocks, 28 px zero-padded to 32, 4 px
patches, batch {BS}, peak lr {LR}, seed 0 (one seed: read differences of about a point as noise).

| recipe | k-NN accuracy (%) | change (points) | last train loss | pretraining min |
|---|---|---|---|---|
{rows}

A randomly initialised encoder of the same shape reads out at {100*acc0:.2f} %. The losses of different corruption recipes are not comparable.

Machine: {meta['machine']}. Command: `{meta['command']}`, commit {commit}, {meta['date']}, total {meta['total_minutes']} min.
"""
    out.with_suffix('.md').write_text(md)
    print(md)

if __name__ == '__main__': main()
