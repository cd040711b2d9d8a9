"""Label efficiency, the central claim: pretrain a ViT on all 60,000 Fashion-MNIST training images without labels (GMML
and MAE; SimMIM too with --simmim), then use it with 1 % and 10 % of the labels, and compare with what the same labeled images give without
pretraining — over 3 seeds, on the 10,000 test images, under three protocols:

- `finetune`: the whole network is trained on the labeled images (random-init ViT, GMML, MAE, [SimMIM,] and a small ResNet
  trained from scratch with the same augmentation and budget);
- `linear`:   a logistic-regression probe on frozen, mean-pooled final tokens;
- `knn`:      k-NN (k = 20, cosine similarity) on the same frozen features, the labeled images as the memory bank.

GMML and MAE are compared at equal pretraining epochs (`mae`) and at equal pretraining wall time (`mae_time`: MAE's
step is cheaper, so it gets more epochs in the time GMML took). Each pretraining run reads its encoder out with k-NN
on held-out *training* images after every epoch (accuracy against pretraining minutes); each finetune records its
per-epoch training loss (does it flatten?).

    python benchmarks/bench_label_efficiency.py            # full run (see results/label_efficiency.md for its time)
    python benchmarks/bench_label_efficiency.py --quick    # smoke test, 1-2 min: 1.2k images, 1 seed, 1 % labels
    python benchmarks/bench_label_efficiency.py --simmim   # also SimMIM (its stages add about 70 min to the full run)

Every stage (a pretraining, a feature extraction, one finetune) saves its result in the state folder (--state,
default /tmp/gmml_fast_label_efficiency_<mode>) as it finishes; running the same command again continues where an
interrupted run stopped (--fresh starts over). The report goes to benchmarks/results/label_efficiency.{json,md,png}
plus label_efficiency_curves.png (--quick: label_efficiency_quick.*); existing results are replaced only with
--overwrite. The test set is used once per evaluation and never to choose a setting.
"""
import argparse, json, math, os, platform, shutil, statistics, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from fastai.callback.core import Callback
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.optimizer import Adam
from fastai.torch_core import set_seed

from gmml_fast.data import (fmnist_pretrain_dls, fmnist_finetune_dls, load_fashion_mnist, stratified_subset,
                            VALID_SUBSET_SEED_OFFSET)
from gmml_fast.learner import gmml_learner, mae_learner, simmim_learner, finetune_learner, BatchAugment
from gmml_fast.evaluate import knn_accuracy, linear_probe_accuracy
from gmml_fast.models import load_encoder
from gmml_fast.patches import create_encoder
from bench_common import cpu_name, SkipValidation, gmml_decoder_before, frozen_features

ARCH, DEPTH, SIZE = 'nano_28', 6, 28   # ViT-Nano (96-d, 3 heads), 6 blocks, 28 px images in 4 px patches: 7×7 tokens
PRETRAIN = dict(bs=128, lr=1e-3, warmup=0.1)   # both methods: the library's default recipe, fit_warmup_cosine
FINETUNE = dict(bs=64, wd=0.05, label_smoothing=0.1, augment='trivialaugment')
# peak lr / layer decay / pooling per initialisation: the choices of the calibration on 2,000 held-out TRAINING images
# (label_efficiency_calibration.md, measured with this script's previous version at commit a743ee2)
FT_HP = {'random': dict(lr=1e-3, layer_decay=1.0, pool='cls'), 'gmml': dict(lr=2e-3, layer_decay=0.9, pool='avg'),
         'mae': dict(lr=1e-3, layer_decay=1.0, pool='cls'), 'mae_time': dict(lr=1e-3, layer_decay=1.0, pool='cls'),
         'simmim': dict(lr=2e-3, layer_decay=0.9, pool='avg'),    # not calibrated: GMML's (both train the encoder through all patch tokens)
         'cnn': dict(lr=2e-3)}
KNN_K, KNN_T = 20, 0.07
INITS = ('random', 'gmml', 'mae', 'mae_time', 'simmim', 'cnn')
# MAE's two rows are named by their epochs once the pretrainings are known (`name_mae_rows`): 'mae' runs GMML's epochs,
# 'mae_time' as many as fit in GMML's measured training time at MAE's measured speed (a plan, not a measured equality)
NAMES = {'random': 'random init', 'gmml': 'GMML', 'mae': 'MAE', 'mae_time': 'MAE (more epochs)', 'simmim': 'SimMIM',
         'cnn': 'ResNet from scratch'}

def name_mae_rows(pre):
    "Name the MAE rows by their pretraining epochs, e.g. 'MAE (5 epochs)' and 'MAE (9 epochs)'."
    for k in ('mae', 'mae_time'):
        if k in pre: e = pre[k]['epochs']; NAMES[k] = f"MAE ({e} epoch{'s' * (e != 1)})"
    if NAMES['mae'] == NAMES['mae_time']: NAMES['mae_time'] += ', time-matched'
PROTOCOLS = ('finetune', 'linear', 'knn')

MODES = {
    'full':  dict(pretrain_fraction=1.0, pretrain_epochs=5, seeds=(0, 1, 2), fractions=(0.01, 0.10),
                  ft_epochs={0.01: 80, 0.10: 10}, n_test=None, n_bank=10000, n_query=2000,
                  ft_inits={0.01: INITS, 0.10: ('random', 'gmml', 'mae', 'simmim', 'cnn')}),
    'quick': dict(pretrain_fraction=0.02, pretrain_epochs=1, seeds=(0,), fractions=(0.01,),   # a smoke test of every stage
                  ft_epochs={0.01: 2}, n_test=500, n_bank=500, n_query=250, ft_inits={0.01: INITS}),
}
STEM = {'full': 'label_efficiency', 'quick': 'label_efficiency_quick'}
TARGETS = dict(gmml_1pct=0.80, gain_1pct=0.12, gmml_10pct=0.87)

T0 = time.perf_counter()
def log(msg): print(f"[{(time.perf_counter() - T0)/60:6.2f} min] {msg}", flush=True)

def machine(threads):
    return dict(cpu=cpu_name(), logical_cpus=os.cpu_count(), torch_threads=threads, torch=torch.__version__,
                gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else 'none (CPU only)',
                python=platform.python_version())

def git_commit():
    try: return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                               cwd=Path(__file__).parent).stdout.strip() or None
    except OSError: return None

def stage(path, fn):
    "Run `fn` unless its result is already saved at `path` (a finished stage of an interrupted run); save what it returns."
    path = Path(path)
    if path.exists(): return json.loads(path.read_text())
    res = fn()
    tmp = path.with_suffix('.tmp'); tmp.write_text(json.dumps(res, indent=1)); tmp.replace(path)   # never a half-written stage
    return res

# ---------------------------------------------------------------- features and frozen read-outs
def embed(encoder, x):
    "Frozen features of raw images `x` at this study's image size (bench_common.frozen_features)."
    return frozen_features(encoder, x, SIZE)

class KNNMonitor(Callback):
    "k-NN read-out of the encoder on held-out training images before training and after every epoch; times training only."
    order = 100
    def __init__(self, bank, query): self.bank, self.query, self.curve = bank, query, []
    def _read(self):
        enc = self.learn.model.encoder
        (xb, yb), (xq, yq) = self.bank, self.query
        acc = knn_accuracy(embed(enc, xb), yb, embed(enc, xq), yq)
        self.curve.append(dict(epoch=len(self.curve), train_minutes=round(self.train_s/60, 3), knn_accuracy=round(acc, 4)))
        log(f"  epoch {len(self.curve) - 1}: k-NN {acc:.4f} on held-out training images after {self.train_s/60:.1f} min of training")
    def before_fit(self): self.train_s = 0.; self._read()
    def before_train(self): self.t0 = time.perf_counter()
    def after_train(self): self.train_s += time.perf_counter() - self.t0
    def after_epoch(self): self._read()

def heldout_split(cfg):
    "k-NN curve data: a labeled bank and disjoint queries, both TRAINING images (pretraining sees them unlabeled)."
    x, y = load_fashion_mnist('train')
    p = torch.randperm(len(y), generator=torch.Generator().manual_seed(12345))
    q, b = p[:cfg['n_query']], p[cfg['n_query']:cfg['n_query'] + cfg['n_bank']]
    return (x[b], y[b]), (x[q], y[q])

# ---------------------------------------------------------------- pretraining
def pretrain(name, method, epochs, cfg, state, split, library_decoder=False, arch=ARCH):
    """Pretrain GMML, MAE or SimMIM (seed 0) on the unlabeled training images with the library's defaults; k-NN curve; export the encoder.
    GMML keeps the decoder the committed results were measured with unless `library_decoder` (then: the library's current default).
    `arch`: another encoder preset of the same depth (e.g. 'tiny_28'), recorded when it is not the study's."""
    set_seed(0)
    dls = fmnist_pretrain_dls(bs=PRETRAIN['bs'], size=SIZE, fraction=cfg['pretrain_fraction'], n_valid=100, seed=0)
    kw = dict(arch=arch, seed=0, lr=PRETRAIN['lr'], encoder_kwargs=dict(depth=DEPTH))
    if method == 'gmml' and not library_decoder: kw['decoder'] = gmml_decoder_before(96)
    learn = dict(gmml=gmml_learner, mae=mae_learner, simmim=simmim_learner)[method](dls, **kw)
    mon = KNNMonitor(*split)
    log(f"{name}: pretraining {method.upper()} {arch} depth {DEPTH} on {len(dls.train.images)} unlabeled images, {epochs} epochs "
        f"({len(dls.train)*epochs} steps of {PRETRAIN['bs']})")
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        learn.fit_warmup_cosine(epochs, warmup=PRETRAIN['warmup'], cbs=[SkipValidation(), mon])
    path = Path(state)/f'{name}_encoder.safetensors'
    if path.exists(): path.unlink()          # left by an interrupted run of this stage (the state folder is the benchmark's own)
    learn.export_encoder(path)
    steps = len(learn.recorder.losses)
    res = dict(name=name, method=method, images=len(dls.train.images), epochs=epochs, steps=steps, bs=PRETRAIN['bs'],
               lr=PRETRAIN['lr'], train_loss_first=round(float(learn.recorder.losses[0]), 4),
               train_loss_last_smoothed=round(float(learn.recorder.smooth_loss.value), 4),
               train_minutes=round(mon.train_s/60, 2), images_per_s=round(steps*PRETRAIN['bs']/mon.train_s, 1),
               minutes=round((time.perf_counter() - t0)/60, 2), knn_curve=mon.curve, encoder=str(path),
               **({'decoder_hidden': learn.model.decoder.hidden_dim} if method == 'gmml' else {}), **({'arch': arch} if arch != ARCH else {}))
    log(f"{name}: {res['images_per_s']} img/s, {res['train_minutes']} min of training, final k-NN {mon.curve[-1]['knn_accuracy']:.4f}")
    return res

def random_encoder(seed=0):
    torch.manual_seed(seed)
    return create_encoder(ARCH, in_chans=1, depth=DEPTH)

def load_vit(path):
    enc = create_encoder(ARCH, in_chans=1, depth=DEPTH)
    load_encoder(enc, path)
    return enc

# ---------------------------------------------------------------- frozen protocols
def frozen_records(init, enc, cfg, data):
    "k-NN and linear-probe test accuracy of frozen features for every (label fraction, seed)."
    (x, y), (xt, yt), subsets = data
    t0 = time.perf_counter()
    used = torch.cat([v for v in subsets.values()]).unique()
    ft, fte = torch.zeros(len(y), enc.embed_dim), None
    ft[used] = embed(enc, x[used]); fte = embed(enc, xt)
    emb_s = time.perf_counter() - t0
    recs = []
    for (f, s), idx in subsets.items():
        for protocol, fn in (('knn', knn_accuracy), ('linear', linear_probe_accuracy)):
            t1 = time.perf_counter()
            acc = fn(ft[idx], y[idx], fte, yt)
            recs.append(dict(method=init, protocol=protocol, label_fraction=f, seed=s, test_accuracy=round(acc, 4),
                             test_images=len(yt), train_images=len(idx), minutes=round((time.perf_counter() - t1)/60, 3)))
        log(f"{init:8s} frozen {f:.0%} seed {s}: k-NN {recs[-2]['test_accuracy']:.4f}, linear {recs[-1]['test_accuracy']:.4f}")
    return dict(records=recs, embed_minutes=round(emb_s/60, 2))

# ---------------------------------------------------------------- finetuning
class EpochLoss(Callback):
    "Mean training loss of every epoch (the finetune's convergence curve)."
    def before_fit(self): self.curve = []
    def before_train(self): self.tot, self.n = 0., 0
    def after_batch(self):   # summed on the loss's device: no host sync per step
        if self.training: self.tot = self.tot + self.learn.loss.detach().float(); self.n += 1
    def after_train(self): self.curve.append(round(float(self.tot)/max(self.n, 1), 4))

def _block(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))

class BasicBlock(nn.Module):
    "A ResNet basic block: two 3×3 convolutions and a (projected when the shape changes) shortcut."
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.body = _block(cin, cout, stride)
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    def forward(self, x): return F.relu(self.body(x) + self.short(x))

def small_resnet(n_cls=10, widths=(16, 32, 64), in_ch=1):
    "A ResNet for 28-32 px images: a 3×3 stem, three stages of two basic blocks (stride 1, 2, 2), global average pooling."
    layers, cin = [nn.Conv2d(in_ch, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)], widths[0]
    for i, w in enumerate(widths):
        layers += [BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w)]; cin = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, n_cls))

def finetune(init, f, seed, cfg, encoders, extra=None, heldout=None, arch=ARCH):
    """Finetune one classifier (or train the ResNet) on the labeled subset of (f, seed); evaluate once on the test images.
    `extra`: more `finetune_learner` arguments (e.g. `drloc=0.1`), recorded. `heldout`: a fraction of the *training* images
    held out (stratified, per seed) and evaluated on instead of the test set, for choosing a recipe; the labeled subset
    then keeps `f` of the 60,000 images' count (600 at 1 %), drawn from the rest. `test_accuracy` then means held-out accuracy.
    `arch`: another ViT preset of the study's depth (its encoder in `encoders` must match), recorded when it is not the study's."""
    t0, extra = time.perf_counter(), dict(extra or {})
    set_seed(seed)   # label subset, head (and random encoder) init, shuffling and augmentation all follow `seed`
    split = dict(valid='test', n_valid=cfg['n_test']) if heldout is None else dict(valid=heldout, label_fraction=f/(1 - heldout))
    dls = fmnist_finetune_dls(bs=FINETUNE['bs'], **{'label_fraction': f, **split}, size=SIZE, seed=seed, val_bs=500)
    hp = FT_HP[init]
    if init == 'cnn':
        learn = Learner(dls, small_resnet(), loss_func=CrossEntropyLossFlat(label_smoothing=FINETUNE['label_smoothing']),
                        opt_func=Adam, lr=hp['lr'], wd=FINETUNE['wd'], metrics=[accuracy], cbs=[BatchAugment(FINETUNE['augment'])])
    else:
        learn = finetune_learner(dls, pretrained=encoders.get(init), arch=arch, encoder_kwargs=dict(depth=DEPTH),
                                 lr=hp['lr'], layer_decay=hp['layer_decay'], pool=hp['pool'], wd=FINETUNE['wd'],
                                 label_smoothing=FINETUNE['label_smoothing'], augment=FINETUNE['augment'], seed=seed, **extra)
    epochs, curve = cfg['ft_epochs'][f], EpochLoss()
    t1 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, cbs=[SkipValidation(), curve])
    train_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    with learn.no_bar(): loss, acc = (float(v) for v in learn.validate()[:2])   # the loss and accuracy; auxiliary terms follow
    eval_s = time.perf_counter() - t2
    rec = dict(method=init, protocol='finetune', label_fraction=f, seed=seed, test_accuracy=round(acc, 4), test_loss=round(loss, 4),
               test_images=len(dls.valid.images), train_images=len(dls.train.images), finetune_epochs=epochs,
               finetune_steps=epochs*len(dls.train), finetune_bs=dls.train.bs, params=sum(p.numel() for p in learn.model.parameters()),
               **{k: v for k, v in hp.items()}, **({'extra': extra} if extra else {}), **({'arch': arch} if arch != ARCH else {}),
               **({'evaluated_on': f'{heldout:.0%} of the training images, held out'} if heldout is not None else {}), loss_curve=curve.curve, train_minutes=round(train_s/60, 3),
               eval_minutes=round(eval_s/60, 3), minutes=round((time.perf_counter() - t0)/60, 3))
    log(f"{init:8s} finetune {f:.0%} ({rec['train_images']} images, {epochs} epochs, {rec['finetune_steps']} steps) seed {seed}: "
        f"test accuracy {acc:.4f}, loss {curve.curve[0]:.3f} -> {curve.curve[-1]:.3f} [{train_s/60:.2f} + {eval_s/60:.2f} min]")
    return rec

# ---------------------------------------------------------------- summary
def stats(v):
    return dict(mean=statistics.mean(v), std=statistics.stdev(v) if len(v) > 1 else float('nan'), n=len(v), values=v)

def summarize(recs):
    rows = {}
    for r in recs: rows.setdefault(f"{r['method']}|{r['protocol']}|{r['label_fraction']}", []).append(r['test_accuracy'])
    return {k: stats(v) for k, v in rows.items()}

def paired_gain(recs, a, b, f, protocol='finetune'):
    "Per-seed differences a − b (same labeled subset)."
    acc = {(r['method'], r['seed']): r['test_accuracy'] for r in recs if r['protocol'] == protocol and r['label_fraction'] == f}
    d = [acc[(a, s)] - acc[(b, s)] for (m, s) in acc if m == a and (b, s) in acc]
    return stats(d) if d else None

def pm(s, f=100):
    if s is None: return '—'
    return f"{f*s['mean']:.1f} ± {f*s['std']:.1f}" if s['n'] > 1 else f"{f*s['mean']:.1f}"

COLORS = {'random': '#999999', 'gmml': '#d62728', 'mae': '#1f77b4', 'mae_time': '#9ecae1', 'simmim': '#9467bd', 'cnn': '#2ca02c'}

def plot_bars(summ, fractions, path, title):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(1, len(fractions), figsize=(5.2*len(fractions), 4), squeeze=False)
    for ax, f in zip(axs[0], fractions):
        width = 0.8/len(INITS)
        for j, init in enumerate(INITS):
            for i, p in enumerate(PROTOCOLS):
                s = summ.get(f"{init}|{p}|{f}")
                if s is None: continue
                x = i + (j - (len(INITS) - 1)/2)*width
                ax.bar(x, 100*s['mean'], width, yerr=100*(s['std'] if s['n'] > 1 else 0), capsize=3, color=COLORS[init],
                       label=NAMES[init] if i == 0 or (init != 'cnn' and p == 'linear' and f"{init}|finetune|{f}" not in summ) else None)
                ax.scatter([x]*s['n'], [100*v for v in s['values']], s=6, color='k', zorder=3)
        lo = min(100*min(s['values']) for k, s in summ.items() if k.endswith(f"|{f}"))
        ax.set_ylim(max(0, math.floor(lo/10)*10 - 5), 100)
        ax.set_xticks(range(len(PROTOCOLS)), ['finetune', 'linear probe', 'k-NN (k=20)'])
        ax.set_title(f"{f:.0%} labels ({round(60000*f):,} images)", fontsize=10); ax.grid(axis='y', alpha=.3)
        ax.set_ylabel('test accuracy (%), mean ± std')
    axs[0][0].legend(loc='upper right', fontsize=8)
    fig.suptitle(title, fontsize=10); fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)

def plot_curves(pre, recs, fractions, path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(1, 1 + len(fractions), figsize=(4.6*(1 + len(fractions)), 3.6))
    ax = axs[0]
    for name, p in pre.items():
        c = p['knn_curve']
        ax.plot([e['train_minutes'] for e in c], [100*e['knn_accuracy'] for e in c], 'o-', ms=3, color=COLORS[name],
                label=f"{NAMES[name]} ({p['epochs']} ep.)")
    ax.set_xlabel('pretraining minutes (this machine)'); ax.set_ylabel('k-NN accuracy (%), held-out training images')
    ax.set_title('read-out after every pretraining epoch', fontsize=10); ax.legend(fontsize=8); ax.grid(alpha=.3)
    for ax, f in zip(axs[1:], fractions):
        for init in INITS:
            cs = [r['loss_curve'] for r in recs if r['protocol'] == 'finetune' and r['method'] == init and r['label_fraction'] == f]
            if not cs: continue
            mean = [statistics.mean(v) for v in zip(*cs)]
            ax.plot(range(1, len(mean) + 1), mean, color=COLORS[init], label=NAMES[init])
        ax.set_xlabel('finetuning epoch'); ax.set_ylabel('training loss (mean over seeds)')
        ax.set_title(f'finetuning at {f:.0%} labels', fontsize=10); ax.grid(alpha=.3)
        if ax.lines: ax.legend(fontsize=7)
        else: ax.text(0.5, 0.5, 'not run in this report', ha='center', va='center', transform=ax.transAxes, color='#777777')
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)

def flatness(curve):
    "Relative fall of the epoch loss over the last quarter of training: near 0 means the loss has flattened."
    q = max(1, len(curve)//4)
    return (curve[-q - 1] - curve[-1])/curve[-q - 1]

def write_markdown(res, path):
    cfg, m, pre, summ, recs = res['config'], res['machine'], res['pretraining'], res['summary'], res['records']
    fr = cfg['fractions']
    quick = res['mode'] == 'quick'
    def cell(init, p, f): return pm(summ.get(f"{init}|{p}|{f}"))
    L = [f"# Label efficiency on Fashion-MNIST{' (quick mode: a smoke test, not the result)' if quick else ''}", '',
         f"Pretrain without labels on {pre['gmml']['images']:,} Fashion-MNIST training images; then use "
         + ' and '.join(f"{f:.0%}" for f in fr) + f" of the labels; test on {recs[0]['test_images']:,} test images. "
         "Every number below was measured in the run described here.", '',
         '## Run', '',
         f"- Command: `{res['command']}`",
         f"- Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['torch_threads']} torch threads, GPU: {m['gpu']}; "
         f"torch {m['torch']}, Python {m['python']}; git commit {res['git_commit']}",
         f"- Finished {res['finished']}; the stages' own times add up to **{res['stage_total_minutes']:.1f} min** "
         f"(pretraining {res['stage_minutes']['pretraining']:.1f}, frozen features {res['stage_minutes']['frozen']:.1f}, "
         f"finetuning + evaluation {res['stage_minutes']['finetuning']:.1f})",
         f"- Seeds {', '.join(map(str, cfg['seeds']))}: a seed fixes the labeled subset, the head/random-encoder init, "
         "shuffling and augmentation; pretraining seed 0."]
    if res.get('note'): L.append(f"- Note: {res['note']}")
    if res['not_run']:
        groups = {}
        for init, f, s in res['not_run']: groups.setdefault(f, []).append(f"{NAMES[init]} seed {s}")
        L.append(f"- **Not run in this report** ({len(res['not_run'])} finetunes, written with `--report` before they ran): "
                 + '; '.join(f"{f:.0%} labels: " + ', '.join(v) for f, v in groups.items())
                 + ". The frozen protocols cover every fraction and seed.")
    L += ['',
         '## Test accuracy (%)', '',
         f"mean ± std over {len(cfg['seeds'])} seeds" + ('' if len(cfg['seeds']) > 1 else ' (one seed: no std)') + "; "
         "`finetune` trains the whole network, `linear` and `k-NN` read frozen features.", '',
         '| init | protocol | ' + ' | '.join(f"{f:.0%} labels ({round(60000*f):,} images)" for f in fr) + ' |',
         '|---|---|' + '---|'*len(fr)]
    for init in INITS:
        for p in PROTOCOLS:
            if any(f"{init}|{p}|{f}" in summ for f in fr):
                L.append(f"| {NAMES[init]} | {p} | " + ' | '.join(cell(init, p, f) for f in fr) + ' |')
    L += ['', '| finetuned, paired by seed (points) | ' + ' | '.join(f"{f:.0%}" for f in fr) + ' |', '|---|' + '---|'*len(fr)]
    for a, b in (('gmml', 'random'), ('mae', 'random'), ('mae_time', 'random'), ('simmim', 'random'), ('gmml', 'mae'), ('gmml', 'mae_time'),
                 ('gmml', 'simmim'), ('gmml', 'cnn')):
        gs = [paired_gain(recs, a, b, f) for f in fr]
        if any(gs): L.append(f"| {NAMES[a]} − {NAMES[b]} | " + ' | '.join(pm(g) for g in gs) + ' |')
    L += ['', '![label efficiency](' + Path(res['plot']).name + ')', '', '## Targets', '']
    for line in res['targets']: L.append(f"- {line}")
    L += ['', '## Pretraining: k-NN read-out against pretraining time', '',
          f"k-NN (k = {KNN_K}, cosine) on frozen mean-pooled tokens after every epoch: a memory bank of {cfg['n_bank']:,} labeled "
          f"*training* images, {cfg['n_query']:,} other training images as queries (pretraining sees them all, unlabeled; "
          "the test set is not used). Minutes count training steps only.", '',
          '| run | epochs | steps (bs) | images/s | training minutes | k-NN before → after (%) | train loss first → last |',
          '|---|---|---|---|---|---|---|']
    for name, p in pre.items():
        c = p['knn_curve']
        L.append(f"| {NAMES[name]} | {p['epochs']} | {p['steps']} ({p['bs']}) | {p['images_per_s']:.0f} | {p['train_minutes']:.1f} | "
                 f"{100*c[0]['knn_accuracy']:.1f} → {100*c[-1]['knn_accuracy']:.1f} | {p['train_loss_first']:.3f} → {p['train_loss_last_smoothed']:.3f} |")
    L += ['', 'Per epoch (k-NN %, held-out training images): ' + '; '.join(
          f"{NAMES[n]}: " + ', '.join(f"{100*e['knn_accuracy']:.1f}" for e in p['knn_curve']) for n, p in pre.items()), '',
          '![curves](' + Path(res['curves']).name + ')', '',
          '## Did the finetunes converge?', '',
          'Training loss per epoch, mean over seeds (right panels above); the fall over the last quarter of the epochs, '
          'relative to its value there (near 0: flat).', '',
          '| init | ' + ' | '.join(f"{f:.0%}: epochs, first → last loss, last-quarter fall" for f in fr) + ' |', '|---|' + '---|'*len(fr)]
    for init in INITS:
        cells = []
        for f in fr:
            cs = [r['loss_curve'] for r in recs if r['protocol'] == 'finetune' and r['method'] == init and r['label_fraction'] == f]
            if not cs: cells.append('—'); continue
            mean = [statistics.mean(v) for v in zip(*cs)]
            cells.append(f"{len(mean)}, {mean[0]:.3f} → {mean[-1]:.3f}, {100*flatness(mean):.1f} %")
        if set(cells) != {'—'}: L.append(f"| {NAMES[init]} | " + ' | '.join(cells) + ' |')
    L += ['', '## Settings', '',
          f"- Encoder: `{ARCH}` = timm ViT-Nano (96-d, 3 heads) with **{DEPTH} blocks**, 28 px images in 4 px patches (7×7 tokens + "
          "class token), 1 channel; the same encoder for every ViT initialisation.",
          f"- Pretraining (seed 0, the library's default recipe for each method): batch {PRETRAIN['bs']}, peak lr {PRETRAIN['lr']:g}, "
          f"`fit_warmup_cosine` ({PRETRAIN['warmup']:.0%} warm-up); GMML: crop/flip augmentation, the `gmml` corruption, masked L1, "
          "weight decay 0.04 → 0.4, gradient clipping 3, drop-path 0.1; MAE: crop/flip augmentation, 75 % of the tokens masked, "
          "decoder scaled to the encoder (96-d × 2 blocks), weight decay 0.05"
          + ("; SimMIM: crop/flip augmentation, 60 % of the tokens replaced by a mask token, a linear head, L1 on the hidden pixels, "
             "weight decay 0.05, clipping 3, drop-path 0.1" if 'simmim' in pre else '') + ". "
          f"GMML and {NAMES['mae']}: {pre['gmml']['epochs']} epoch(s); {NAMES['mae_time']}: {pre['mae_time']['epochs']} epoch(s), as many as "
          "fit in GMML's measured training time at MAE's measured speed.",
          f"- Finetuning, identical for every initialisation at a label fraction: the same labeled images per seed, batch {FINETUNE['bs']}, "
          + ', '.join(f"{cfg['ft_epochs'][str(f)]} epochs at {f:.0%}" for f in fr)
          + f", fastai one-cycle, AdamW (wd {FINETUNE['wd']}), label smoothing {FINETUNE['label_smoothing']}, TrivialAugmentWide, "
          "no per-epoch validation, evaluated once at the end. Per ViT initialisation (chosen earlier on held-out training images, "
          "label_efficiency_calibration.md): " + '; '.join(f"{NAMES[k]}: {v['pool']} pooling, peak lr {v['lr']:g}, layer decay "
                                                          f"{v['layer_decay']}" for k, v in FT_HP.items() if k != 'cnn' and (k in pre or k == 'random')) + '.',
          f"- ResNet from scratch: 3×3 stem and three stages of two basic blocks (16, 32, 64 channels), "
          f"{res['cnn_params']:,} parameters (the ViT classifier: {res['vit_params']:,}); trained like the ViTs (same images, epochs, "
          f"batch, augmentation, label smoothing, AdamW wd {FINETUNE['wd']}, one-cycle) at peak lr {FT_HP['cnn']['lr']:g}.",
          f"- Frozen protocols: features of the same labeled subsets; k-NN with k = {KNN_K}, cosine similarity, temperature {KNN_T}; "
          "linear probe: logistic regression on standardised features, full-batch L-BFGS (300 iterations), L2 1e-4.", '',
          '## Stage times (minutes)', '', '| stage | minutes |', '|---|---|']
    L += [f"| pretrain {NAMES[k]} ({p['epochs']} epoch(s); training / with read-outs) | {p['train_minutes']:.1f} / {p['minutes']:.1f} |" for k, p in pre.items()]
    L += [f"| frozen features + k-NN + linear, {NAMES[k]} | {v:.1f} |" for k, v in res['frozen_minutes'].items()]
    for f in fr:
        for init in INITS:
            rs = [r for r in recs if r['protocol'] == 'finetune' and r['method'] == init and r['label_fraction'] == f]
            if rs: L.append(f"| finetune + test {NAMES[init]} {f:.0%} ({len(rs)} seeds) | {sum(r['minutes'] for r in rs):.1f} |")
    L.append(f"| total | {res['stage_total_minutes']:.1f} |")
    L += ['', f"Raw records: `{Path(res['json']).name}` (one per initialisation × protocol × label fraction × seed)."]
    Path(path).write_text('\n'.join(L) + '\n')

def targets(recs, summ, fr):
    "The issue's targets, each stated as met or not met with the measured numbers."
    T = []
    if 0.01 in fr:
        g, gain, cnn = summ.get('gmml|finetune|0.01'), paired_gain(recs, 'gmml', 'random', 0.01), paired_gain(recs, 'gmml', 'cnn', 0.01)
        if g is None or gain is None:
            T.append("GMML finetuned at 1 % labels: **not measured** (those finetunes were not run).")
        else:
            T.append(f"GMML finetuned at 1 % labels ≥ {100*TARGETS['gmml_1pct']:.0f} %: **{'met' if g['mean'] >= TARGETS['gmml_1pct'] else 'not met'}** "
                     f"({pm(g)} %).")
            T.append(f"GMML − random init at 1 % ≥ +{100*TARGETS['gain_1pct']:.0f} points (paired by seed): "
                     f"**{'met' if gain['mean'] >= TARGETS['gain_1pct'] else 'not met'}** ({pm(gain)} points).")
            if cnn: T.append(f"GMML-pretrained ViT beats the ResNet trained from scratch on the same 600 images: "
                             f"**{'yes' if cnn['mean'] > 0 else 'no'}** ({pm(cnn)} points).")
    if 0.1 in fr:
        g = summ.get('gmml|finetune|0.1')
        if g is None: T.append(f"GMML finetuned at 10 % labels ≥ {100*TARGETS['gmml_10pct']:.0f} %: **not measured** (those finetunes were not run)."); return T
        T.append(f"GMML finetuned at 10 % labels ≥ {100*TARGETS['gmml_10pct']:.0f} %: **{'met' if g['mean'] >= TARGETS['gmml_10pct'] else 'not met'}** ({pm(g)} %).")
    return T

# ---------------------------------------------------------------- main
def compatible_state(old: dict, new: dict) -> bool:
    "Whether the finished stages of a state folder with settings `old` are valid for settings `new`: the same, except for which initialisations are run (each has its own stage files, so more or fewer, e.g. with or without --simmim, mix safely)."
    o, n = dict(old), dict(new)
    o.pop('ft_inits', None); n.pop('ft_inits', None)
    return o == n

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument('--quick', action='store_true', help='smoke test: 1.2k pretraining images, 1 epoch, seed 0, 1 %% labels (2 finetuning epochs), 500 test images')
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'), help='folder of the results (default: benchmarks/results)')
    ap.add_argument('--state', default=None, help='folder of the finished stages (default /tmp/gmml_fast_label_efficiency_<mode>)')
    ap.add_argument('--fresh', action='store_true', help='discard the finished stages in --state and start over')
    ap.add_argument('--threads', type=int, default=2, help='torch threads (default 2)')
    ap.add_argument('--overwrite', action='store_true', help='replace existing result files')
    ap.add_argument('--note', default=None, help='a sentence for the report on how the run went (e.g. other work on the machine)')
    ap.add_argument('--simmim', action='store_true', help='also pretrain, read out and finetune SimMIM (off by default: its stages cost about as much as GMML\'s and MAE\'s together)')
    ap.add_argument('--report', action='store_true', help='write the report from the finetunes already finished in --state, without running the others (they are listed as not run)')
    args = ap.parse_args(argv)
    mode = 'quick' if args.quick else 'full'
    cfg = dict(MODES[mode])
    if not args.simmim: cfg['ft_inits'] = {f: tuple(i for i in v if i != 'simmim') for f, v in cfg['ft_inits'].items()}
    out, stem = Path(args.out), STEM[mode]
    files = {ext: out/f'{stem}.{ext}' for ext in ('json', 'md', 'png')}
    files['curves'] = out/f'{stem}_curves.png'
    existing = [str(f) for f in files.values() if f.exists()]
    if existing and not args.overwrite:
        print(f"error: {', '.join(existing)} exist; pass --overwrite to replace them (or --out another folder)", file=sys.stderr)
        return 2
    if args.threads < 1: print(f"error: --threads must be >= 1, got {args.threads}", file=sys.stderr); return 2
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    state = Path(args.state or f'/tmp/gmml_fast_label_efficiency_{mode}')
    key = json.dumps({k: (v if not isinstance(v, dict) else {str(a): b for a, b in v.items()}) for k, v in cfg.items()}, sort_keys=True)
    if args.fresh and state.exists(): shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    cfg_file = state/'config.json'
    if cfg_file.exists() and not compatible_state(json.loads(cfg_file.read_text()), json.loads(key)):
        print(f"error: {state} holds the stages of a run with other settings; pass --fresh to discard them or --state another folder",
              file=sys.stderr); return 2
    cfg_file.write_text(key)
    done = sorted(p.name for p in state.glob('*.json') if p.name != 'config.json')
    log(f"mode {mode}, {args.threads} threads, stages in {state}" + (f" ({len(done)} finished stages found: continuing)" if done else ''))
    command = 'python benchmarks/bench_label_efficiency.py' + ' '.join([''] + list(argv if argv is not None else sys.argv[1:]))

    split = heldout_split(cfg)
    pre = {}
    pre['gmml'] = stage(state/'pretrain_gmml.json', lambda: pretrain('gmml', 'gmml', cfg['pretrain_epochs'], cfg, state, split))
    pre['mae'] = stage(state/'pretrain_mae.json', lambda: pretrain('mae', 'mae', cfg['pretrain_epochs'], cfg, state, split))
    # equal wall time: the epochs MAE runs in the time GMML trained, at the speed measured in this run
    mae_epochs = max(1, round(pre['gmml']['train_minutes']/(pre['mae']['train_minutes']/pre['mae']['epochs'])))
    pre['mae_time'] = stage(state/'pretrain_mae_time.json', lambda: pretrain('mae_time', 'mae', mae_epochs, cfg, state, split))
    if args.simmim:
        pre['simmim'] = stage(state/'pretrain_simmim.json', lambda: pretrain('simmim', 'simmim', cfg['pretrain_epochs'], cfg, state, split))
    encoders = {k: p['encoder'] for k, p in pre.items()}

    x, y = load_fashion_mnist('train'); xt, yt = load_fashion_mnist('test')
    if cfg['n_test']:
        keep = stratified_subset(yt, cfg['n_test']/len(yt), VALID_SUBSET_SEED_OFFSET)   # the same test subset as fmnist_finetune_dls(n_valid=..., seed=0)
        xt, yt = xt[keep], yt[keep]
    subsets = {(f, s): stratified_subset(y, f, s) for f in cfg['fractions'] for s in cfg['seeds']}
    frozen, recs = {}, []
    for init in ('random', *pre):
        frozen[init] = stage(state/f'frozen_{init}.json', lambda: frozen_records(
            init, random_encoder() if init == 'random' else load_vit(encoders[init]), cfg, ((x, y), (xt, yt), subsets)))
        recs += frozen[init]['records']
    not_run = []
    for f in cfg['fractions']:
        for s in cfg['seeds']:
            for init in cfg['ft_inits'][f]:
                path = state/f'finetune_{init}_{f}_{s}.json'
                if args.report and not path.exists(): not_run.append((init, f, s)); continue
                recs.append(stage(path, lambda: finetune(init, f, s, cfg, encoders)))

    for r in recs:   # drop_last: every epoch is train_images // bs steps (stages saved before this field was counted this way)
        if r['protocol'] == 'finetune': r['finetune_steps'] = r['finetune_epochs']*(r['train_images']//r['finetune_bs'])
    summ = summarize(recs)
    name_mae_rows(pre)
    frozen_minutes = {k: v['embed_minutes'] + sum(r['minutes'] for r in v['records']) for k, v in frozen.items()}
    ft_minutes = sum(r['minutes'] for r in recs if r['protocol'] == 'finetune')
    stage_minutes = dict(pretraining=sum(p['minutes'] for p in pre.values()), frozen=sum(frozen_minutes.values()), finetuning=ft_minutes)
    params = {r['method']: r['params'] for r in recs if r['protocol'] == 'finetune'}
    res = dict(mode=mode, command=command, finished=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
               machine=machine(args.threads), git_commit=git_commit(), stage_minutes=stage_minutes,
               stage_total_minutes=sum(stage_minutes.values()), frozen_minutes=frozen_minutes,
               config=dict(arch=ARCH, depth=DEPTH, size=SIZE, pretrain=PRETRAIN, finetune=FINETUNE, finetune_hp=FT_HP,
                           pretrain_fraction=cfg['pretrain_fraction'], pretrain_epochs=cfg['pretrain_epochs'], mae_time_epochs=mae_epochs,
                           seeds=list(cfg['seeds']), fractions=list(cfg['fractions']), n_bank=cfg['n_bank'], n_query=cfg['n_query'],
                           ft_epochs={str(k): v for k, v in cfg['ft_epochs'].items()}, n_test=len(yt)),
               pretraining=pre, records=recs, summary=summ, targets=targets(recs, summ, cfg['fractions']), not_run=not_run, note=args.note,
               cnn_params=params.get('cnn', 0), vit_params=params.get('random', 0),
               json=str(files['json']), plot=str(files['png']), curves=str(files['curves']))
    plot_bars(summ, cfg['fractions'], files['png'], f"Fashion-MNIST, ViT-Nano ({DEPTH} blocks) pretrained {cfg['pretrain_epochs']} epochs, "
              f"n={len(cfg['seeds'])} seeds")
    plot_curves(pre, recs, cfg['fractions'], files['curves'])
    write_markdown(res, files['md'])
    # the raw results: a list of records, each with the run's context and (for pretrained inits) its pretraining
    run_info = dict(command=command, finished=res['finished'], stage_total_minutes=round(res['stage_total_minutes'], 2),
                    machine=res['machine'], git_commit=res['git_commit'])
    pre_info = {k: {a: b for a, b in p.items() if a != 'encoder'} for k, p in pre.items()}
    files['json'].write_text(json.dumps([dict(r, pretraining=pre_info.get(r['method']), run=run_info) for r in recs], indent=1))
    log(f"done: {', '.join(str(f) for f in files.values())}")
    print(files['md'].read_text())
    return 0

if __name__ == '__main__': sys.exit(main())
