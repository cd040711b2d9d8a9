"""How wide GMML's light decoder should be, measured on held-out TRAINING images (the test set is not touched).

The GMML paper (Atito et al., "GMML is All you Need", arXiv:2205.14986) specifies the decoder as two point-wise
convolutions with ReLU and one transposed convolution, without a width. Until now `LightDecoder` used a hidden width
of 4x the encoder's (an MLP's ratio); at the quick start's ViT-Nano that decoder costs about a quarter of the step.
This script pretrains the quick start's encoder (ViT-Nano, 6 blocks, 28 px, 4 px patches, the command line's recipe:
warm-up + cosine, lr 1e-3, batch 128) with each decoder for the same number of epochs and reads the frozen encoder
out with k-NN (k = 20, cosine) and a linear probe: the memory bank / probe training set is 10,000 labeled training
images, the queries 2,000 other training images that pretraining never sees. It also times the training step.

    python benchmarks/bench_decoder.py             # writes benchmarks/results/decoder.{json,md} (~25 min, 2 cores)
    python benchmarks/bench_decoder.py --quick     # a smoke test (decoder_quick.*)
"""
import json, os, statistics, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path

import torch
from fastai.torch_core import set_seed
from fastai.callback.core import Callback

sys.path.insert(0, str(Path(__file__).parent))
from gmml_fast.data import load_fashion_mnist, tensor_dls, image_batch_tfms, FMNIST_STATS
from gmml_fast.learner import gmml_learner
from gmml_fast.evaluate import knn_accuracy, linear_probe_accuracy
from bench_common import cpu_name, SkipValidation, heldout_split, heldout_cli, frozen_features

ARCH, DEPTH, SIZE, BS, LR = 'nano_28', 6, 28, 128, 1e-3
DECODERS = [('hidden 4×D = 384, 2 convs (before)', dict(hidden_dim=384, depth=2)),
            ('hidden D = 96, 2 convs', dict(hidden_dim=96, depth=2)),
            ('linear (no hidden layer)', dict(depth=0))]
MODES = {'full': dict(n_pretrain=20000, epochs=3, n_bank=10000, n_query=2000, seeds=(0, 1)),
         'quick': dict(n_pretrain=1024, epochs=1, n_bank=1000, n_query=500, seeds=(0,))}
T0 = time.perf_counter()
def log(msg): print(f"[{(time.perf_counter() - T0)/60:6.2f} min] {msg}", flush=True)

class StepTimer(Callback):
    "Wall time of every training batch after the first epoch's first 3 (warm-up)."
    def before_fit(self): self.times, self.n = [], 0
    def before_batch(self): self.t = time.perf_counter()
    def after_batch(self):
        self.n += 1
        if self.training and self.n > 3: self.times.append(time.perf_counter() - self.t)

def pretrain_and_read(x, y, split, cfg, seed, arch=ARCH, decoder=None, depth=DEPTH, size=SIZE):
    "Pretrain GMML (seed `seed`) on the pretraining images of `split` = (queries, bank, pretraining indices), then read the frozen encoder out: k-NN and linear probe, bank -> queries; time the step."
    q, b, p = split
    set_seed(seed)
    dls = tensor_dls(x[p], x[q[:256]], bs=BS, after_batch=image_batch_tfms(FMNIST_STATS, size, 'pad', 1))
    learn = gmml_learner(dls, arch, lr=LR, seed=seed, decoder=decoder, encoder_kwargs=dict(depth=depth))
    timer = StepTimer()
    t = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_warmup_cosine(cfg['epochs'], cbs=[SkipValidation(), timer])
    minutes = (time.perf_counter() - t)/60
    enc = learn.model.encoder.eval()
    fb, fq = frozen_features(enc, x[b], size), frozen_features(enc, x[q], size)
    knn, lin = knn_accuracy(fb, y[b], fq, y[q]), linear_probe_accuracy(fb, y[b], fq, y[q])
    return dict(seed=seed, knn_accuracy=round(100*knn, 2), linear_accuracy=round(100*lin, 2),
                encoder_params=sum(p_.numel() for p_ in learn.model.encoder.parameters()),
                decoder_params=sum(p_.numel() for p_ in learn.model.decoder.parameters()),
                step_ms=round(1000*statistics.median(timer.times), 1), pretrain_minutes=round(minutes, 2),
                last_train_loss=round(float(learn.recorder.losses[-1]), 4))

def run_variants(cfg, variants):
    "`pretrain_and_read` every variant for every seed of `cfg`: `variants` = [(name, record fields, pretrain_and_read kwargs)]; one record each."
    x, y = load_fashion_mnist('train')
    split = heldout_split(cfg['n_pretrain'], cfg['n_bank'], cfg['n_query'])
    records = []
    for seed in cfg['seeds']:
        for name, fields, kw in variants:
            records.append(dict(fields, **pretrain_and_read(x, y, split, cfg, seed, **kw)))
            r = records[-1]
            log(f"seed {seed}, {name}: k-NN {r['knn_accuracy']:.2f} %, linear {r['linear_accuracy']:.2f} %, step {r['step_ms']} ms ({r['pretrain_minutes']:.1f} min)")
    return records

def main():
    a, mode, cfg, out = heldout_cli(__doc__, 'decoder', MODES)
    records = run_variants(cfg, [(name, dict(decoder=name, settings=dec), dict(decoder=dec)) for name, dec in DECODERS])
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    meta = dict(mode=mode, **{k: v for k, v in cfg.items() if k != 'seeds'}, seeds=list(cfg['seeds']), arch=ARCH, depth=DEPTH,
                size=SIZE, bs=BS, lr=LR, command='python benchmarks/bench_decoder.py' + (' --quick' if a.quick else ''), commit=commit,
                machine=f"{cpu_name()}, {os.cpu_count()} logical CPUs, {a.threads} torch threads, torch {torch.__version__}, no GPU",
                date=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'), total_minutes=round((time.perf_counter() - T0)/60, 1))
    out.with_suffix('.json').write_text(json.dumps(dict(meta=meta, records=records), indent=1))
    mean = lambda name, k: statistics.mean(r[k] for r in records if r['decoder'] == name)
    base = DECODERS[0][0]
    rows = '\n'.join(f"| {name} | {records[[r['decoder'] for r in records].index(name)]['decoder_params']:,} | "
                     + ' / '.join(f"{r['knn_accuracy']:.2f}" for r in records if r['decoder'] == name) + f" | {mean(name, 'knn_accuracy'):.2f} | "
                     + ' / '.join(f"{r['linear_accuracy']:.2f}" for r in records if r['decoder'] == name) + f" | {mean(name, 'linear_accuracy'):.2f} | "
                     + f"{mean(name, 'step_ms'):.0f} | {mean(name, 'step_ms')/mean(base, 'step_ms'):.2f}× |"
                     for name, _ in DECODERS)
    md = f"""# GMML's decoder width, on held-out training images

Frozen read-outs of GMML-pretrained encoders (ViT-Nano, {DEPTH} blocks, {SIZE} px, 4 px patches; {cfg['n_pretrain']:,} unlabeled training
images, {cfg['epochs']} epochs, warm-up + cosine, lr {LR}, batch {BS}, the library's recipe otherwise): k-NN (k = 20, cosine) and a linear probe
(logistic regression, L-BFGS) fitted on {cfg['n_bank']:,} labeled training images and scored on {cfg['n_query']:,} *other training images* that
pretraining never saw. The test set is not used. Seeds {', '.join(map(str, cfg['seeds']))} (each cell lists them in order).

| decoder | weights | k-NN (%) per seed | k-NN mean | linear (%) per seed | linear mean | step (ms) | step / before |
|---|---|---|---|---|---|---|---|
{rows}

Step: median wall time of one training batch of {BS} (forward, backward, optimiser step, corruption and augmentation).

Machine: {meta['machine']}. Command: `{meta['command']}`, commit {commit}, {meta['date']}, total {meta['total_minutes']} min.
"""
    out.with_suffix('.md').write_text(md)
    print(md)

if __name__ == '__main__': main()
