"""Label efficiency, the central claim: pretrain a ViT on all 60,000 Fashion-MNIST training images without labels (GMML
and MAE), then finetune it with 1 % and 10 % of the labels and compare with the same ViT finetuned from random init,
under the same finetuning budget, over 3 seeds, on the 10,000 test images.

    python benchmarks/bench_label_efficiency.py              # full run: 42.5 min on 2 vCPUs (Intel Xeon), see results/
    python benchmarks/bench_label_efficiency.py --quick      # 1-2 min: 6k pretraining images, 1 seed, 1 % labels, 2k test images
    python benchmarks/bench_label_efficiency.py --calibrate  # how lr / layer decay / pooling were chosen (held-out TRAINING images)

Writes benchmarks/results/label_efficiency.{json,md,png} (--quick: label_efficiency_quick.*, --calibrate:
label_efficiency_calibration.*) and refuses to overwrite existing results unless --overwrite is given. Encoders are
written to a fresh folder under --work (default /tmp), never into the repository.
"""
import argparse, json, math, os, platform, statistics, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

import torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastai.torch_core import set_seed

from gmml_fast.data import fmnist_pretrain_dls, fmnist_finetune_dls, load_fashion_mnist, stratified_subset
from gmml_fast.learner import gmml_learner, mae_learner, finetune_learner
from bench_common import cpu_name, SkipValidation, RECIPE_BEFORE

ARCH, DEPTH = 'nano_32', 6          # ViT-Nano (96-d, 3 heads), 32 px (28 px zero-padded), 4 px patches: 8×8 tokens; 6 blocks
METHODS = ('random', 'gmml', 'mae')
PRETRAIN = dict(bs=128, lr=1e-3, wd=0.05)   # the same for GMML and MAE (one cycle, peak lr 1e-3 as in the training CLI)
MAE_DECODER = dict(decoder_dim=96, decoder_depth=2, decoder_heads=3, mask_ratio=0.75, alpha=0.1)
# finetuning: identical for all three initialisations except lr / layer decay / pooling (chosen per initialisation by --calibrate
# on held-out training images, see label_efficiency_calibration.md)
FINETUNE = dict(bs=64, wd=0.05, label_smoothing=0.1, augment='trivialaugment')
FT_LR = {'random': dict(lr=1e-3, layer_decay=1.0, pool='cls'), 'gmml': dict(lr=2e-3, layer_decay=0.9, pool='avg'),
         'mae': dict(lr=1e-3, layer_decay=1.0, pool='cls')}

MODES = {
    'full':  dict(pretrain_fraction=1.0, pretrain_epochs=6, seeds=(0, 1, 2), fractions=(0.01, 0.10),
                  ft_epochs={0.01: 40, 0.10: 5}, n_test=None, pretrain_valid=1000),
    'quick': dict(pretrain_fraction=0.1, pretrain_epochs=1, seeds=(0,), fractions=(0.01,),
                  ft_epochs={0.01: 10}, n_test=2000, pretrain_valid=500),
    # settings chosen by validation accuracy on 2,000 held-out TRAINING images (the test set is not touched)
    'calibrate': dict(pretrain_fraction=1.0, pretrain_epochs=2, seeds=(0,), fractions=(0.01,),
                      ft_epochs={0.01: 40}, n_test=None, pretrain_valid=1000, n_heldout=2000,
                      grid={'random': [dict(lr=lr, layer_decay=1.0, pool=pool) for pool in ('cls', 'avg') for lr in (1e-3, 2e-3)],
                            **{m: [dict(lr=lr, layer_decay=ld, pool=pool) for pool in ('cls', 'avg')
                                   for lr, ld in ((1e-3, 0.75), (1e-3, 0.9), (2e-3, 0.9), (1e-3, 1.0))] for m in ('gmml', 'mae')}}),
}
STEM = {'full': 'label_efficiency', 'quick': 'label_efficiency_quick', 'calibrate': 'label_efficiency_calibration'}

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

# ---------------------------------------------------------------- pretraining
def pretrain(method, cfg, work):
    "Pretrain GMML or MAE (seed 0) on the unlabeled training images; export the encoder; losses on unlabeled test images."
    t0 = time.perf_counter()
    set_seed(0)
    dls = fmnist_pretrain_dls(bs=PRETRAIN['bs'], size=32, fraction=cfg['pretrain_fraction'], n_valid=cfg['pretrain_valid'], seed=0)
    kw = dict(arch=ARCH, seed=0, lr=PRETRAIN['lr'], encoder_kwargs=dict(depth=DEPTH), **RECIPE_BEFORE)   # wd 0.05 = PRETRAIN['wd']
    learn = gmml_learner(dls, **kw) if method == 'gmml' else mae_learner(dls, **kw, **MAE_DECODER)
    learn.remove_cb(ProgressCallback)
    n_img, epochs = len(dls.train.images), cfg['pretrain_epochs']
    log(f"{method}: pretraining {ARCH} depth {DEPTH} on {n_img} unlabeled images, {epochs} epochs "
        f"({len(dls.train)*epochs} steps of {PRETRAIN['bs']})")
    before = float(learn.validate()[0])
    t1 = time.perf_counter()
    learn.fit_one_cycle(epochs, cbs=[SkipValidation()])
    train_s = time.perf_counter() - t1
    losses, last = [float(v) for v in learn.recorder.losses], float(learn.recorder.smooth_loss.value)   # validate() resets them
    after = float(learn.validate()[0])
    path = learn.export_encoder(Path(work)/f'{method}_encoder.safetensors')
    res = dict(method=method, images=n_img, epochs=epochs, steps=len(losses), bs=PRETRAIN['bs'], lr=PRETRAIN['lr'],
               loss='masked L1 (manipulated pixels)' if method == 'gmml' else 'MSE on masked patches + 0.1 × visible',
               valid_images=len(dls.valid.images), valid_loss_before=round(before, 4), valid_loss_after=round(after, 4),
               train_loss_first=round(losses[0], 4), train_loss_last_smoothed=round(last, 4),
               images_per_s=round(len(losses)*PRETRAIN['bs']/train_s, 1), minutes=round((time.perf_counter() - t0)/60, 2),
               encoder=str(path))
    log(f"{method}: valid loss {before:.4f} -> {after:.4f}, {res['images_per_s']} img/s, {res['minutes']} min")
    return res

# ---------------------------------------------------------------- finetuning
def heldout_images(label_fraction, seed, n):
    "`n` stratified training images that are NOT in the labeled subset of (label_fraction, seed): a validation set for --calibrate."
    x, y = load_fashion_mnist('train')
    keep = torch.ones(len(y), dtype=torch.bool); keep[stratified_subset(y, label_fraction, seed)] = False
    rest = keep.nonzero().squeeze(1)
    idx = rest[stratified_subset(y[rest], n/len(rest), seed + 12345)]
    return x[idx], y[idx]

def finetune(method, label_fraction, seed, cfg, encoders, hp, heldout=None):
    "Finetune one classifier; evaluate it once on the test images (or, with `heldout`, on held-out training images only)."
    t0 = time.perf_counter()
    set_seed(seed)   # label subset, head (and random encoder) init, shuffling and augmentation all follow `seed`
    dls = fmnist_finetune_dls(bs=FINETUNE['bs'], label_fraction=label_fraction, size=32, seed=seed,
                              n_valid=1 if heldout is not None else cfg['n_test'], val_bs=500)
    if heldout is not None: dls.loaders[1] = dls.valid.new(images=heldout[0], labels=heldout[1], shuffle=False, drop_last=False, bs=500)
    learn = finetune_learner(dls, pretrained=encoders.get(method), arch=ARCH, encoder_kwargs=dict(depth=DEPTH),
                             lr=hp['lr'], layer_decay=hp['layer_decay'], pool=hp['pool'], wd=FINETUNE['wd'],
                             label_smoothing=FINETUNE['label_smoothing'], augment=FINETUNE['augment'])
    learn.remove_cb(ProgressCallback)
    learn.logger = lambda *a, **k: None   # no per-epoch table: one log line per finetune
    epochs = cfg['ft_epochs'][label_fraction]
    t1 = time.perf_counter()
    learn.fit_one_cycle(epochs, cbs=[SkipValidation()])
    train_s = time.perf_counter() - t1
    steps, last = len(learn.recorder.losses), float(learn.recorder.smooth_loss.value)   # validate() resets them
    t2 = time.perf_counter()
    loss, acc = (float(v) for v in learn.validate())
    eval_s = time.perf_counter() - t2
    split = 'heldout' if heldout is not None else 'test'
    rec = {'method': method, 'label_fraction': label_fraction, 'seed': seed, f'{split}_accuracy': round(acc, 4),
           f'{split}_loss': round(loss, 4), f'{split}_images': len(dls.valid.images), 'train_images': len(dls.train.images),
           'arch': ARCH, 'depth': DEPTH, 'pretrain_epochs': 0 if method == 'random' else cfg['pretrain_epochs'],
           'pretrain_images': 0 if method == 'random' else round(60000*cfg['pretrain_fraction']),
           'finetune_epochs': epochs, 'finetune_steps': steps, 'finetune_bs': dls.train.bs,
           'lr': hp['lr'], 'layer_decay': hp['layer_decay'], 'pool': hp['pool'], 'augment': FINETUNE['augment'],
           'label_smoothing': FINETUNE['label_smoothing'], 'wd': FINETUNE['wd'], 'final_train_loss': round(last, 4),
           'train_minutes': round(train_s/60, 3), 'eval_minutes': round(eval_s/60, 3), 'minutes': round((time.perf_counter() - t0)/60, 3)}
    log(f"{method:6s} {label_fraction:.0%} labels ({rec['train_images']} images, {epochs} epochs, {rec['finetune_steps']} steps) "
        f"seed {seed}: {split} accuracy {acc:.4f} on {rec[f'{split}_images']} images "
        f"[train {train_s/60:.2f} min, eval {eval_s/60:.2f} min]")
    return rec

# ---------------------------------------------------------------- throughput (for the choice of depth, --calibrate)
class TrainTimer(Callback):
    "Wall time of the training phase of each epoch."
    def before_fit(self): self.times = []
    def before_train(self): self.t0 = time.perf_counter()
    def after_train(self): self.times.append(time.perf_counter() - self.t0)

def throughput(depths=(6, 12)):
    "Training images/s of a GMML step, an MAE step (bs 128) and a finetuning step (bs 64, TrivialAugment), and test-time images/s: second of two epochs."
    res = {}
    pdls = fmnist_pretrain_dls(bs=PRETRAIN['bs'], size=32, fraction=12*PRETRAIN['bs']/60000 + 1e-6, n_valid=100, seed=0)
    fdls = fmnist_finetune_dls(bs=FINETUNE['bs'], label_fraction=0.02, size=32, seed=0, valid=0.05, n_valid=2000, val_bs=500)
    for d in depths:
        kw = dict(arch=ARCH, seed=0, lr=PRETRAIN['lr'], encoder_kwargs=dict(depth=d), **RECIPE_BEFORE)
        for name, learn, dl in (('gmml', gmml_learner(pdls, **kw), pdls), ('mae', mae_learner(pdls, **kw, **MAE_DECODER), pdls),
                                ('finetune', finetune_learner(fdls, arch=ARCH, encoder_kwargs=dict(depth=d), augment=FINETUNE['augment']), fdls)):
            learn.remove_cb(ProgressCallback); learn.logger = lambda *a, **k: None
            timer = TrainTimer()
            learn.fit(2, cbs=[timer, SkipValidation()])
            res[f'{name} depth {d}'] = round(len(dl.train)*dl.train.bs/timer.times[-1], 1)
            if name == 'finetune':
                t0 = time.perf_counter(); learn.validate()
                res[f'evaluation depth {d}'] = round(len(dl.valid.images)/(time.perf_counter() - t0), 1)
        log('throughput (images/s): ' + ', '.join(f"{k} {v}" for k, v in res.items() if k.endswith(str(d))))
    return res

# ---------------------------------------------------------------- summary, markdown, plot
def summarize(records, key='test_accuracy'):
    rows = {}
    for r in records: rows.setdefault((r['method'], r['label_fraction']), []).append(r[key])
    return {k: dict(mean=statistics.mean(v), std=statistics.stdev(v) if len(v) > 1 else float('nan'), n=len(v), values=v)
            for k, v in rows.items()}

def pm(s, pct=True):
    f = 100 if pct else 1
    return f"{f*s['mean']:.1f} ± {f*s['std']:.1f}" if s['n'] > 1 else f"{f*s['mean']:.1f}"

def plot(summary, fractions, path, title):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    width, colors = 0.26, {'random': '#999999', 'gmml': '#d62728', 'mae': '#1f77b4'}
    for j, m in enumerate(METHODS):
        xs = [i + (j - 1)*width for i in range(len(fractions))]
        ss = [summary[(m, f)] for f in fractions]
        ax.bar(xs, [100*s['mean'] for s in ss], width, yerr=[100*(s['std'] if s['n'] > 1 else 0) for s in ss],
               capsize=4, color=colors[m], label={'random': 'random init', 'gmml': 'GMML', 'mae': 'MAE'}[m])
        for x, s in zip(xs, ss): ax.scatter([x]*s['n'], [100*v for v in s['values']], s=9, color='k', zorder=3)
    lo = min(100*min(s['values']) for s in summary.values())
    ax.set_ylim(max(0, math.floor(lo/5)*5 - 5), 100)
    ax.set_xticks(range(len(fractions)), [f"{f:.0%} labels\n({round(60000*f)} images)" for f in fractions])
    ax.set_ylabel('test accuracy (%), mean ± std'); ax.set_title(title, fontsize=10)
    ax.legend(loc='upper left', ncol=3, fontsize=9); ax.grid(axis='y', alpha=.3)
    fig.tight_layout(); fig.savefig(path, dpi=110); plt.close(fig)

def write_markdown(res, path):
    cfg, m, pre, summ = res['config'], res['machine'], res['pretraining'], res['summary']
    fr = cfg['fractions']
    L = [f"# Label efficiency on Fashion-MNIST{' (quick mode: a smoke test, not the result)' if res['mode'] == 'quick' else ''}", '',
         f"Pretrain without labels on {pre['gmml']['images']:,} Fashion-MNIST training images, finetune with "
         + ' and '.join(f"{f:.0%}" for f in fr) + " of the labels, evaluate on "
         + f"{res['records'][0]['test_images']:,} test images. Every number below was measured in the run described here.", '',
         '## Run', '',
         f"- Command: `{res['command']}`",
         f"- Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['torch_threads']} torch threads, GPU: {m['gpu']}; "
         f"torch {m['torch']}, Python {m['python']}; git commit {res['git_commit']}",
         f"- Started {res['started']}, total wall time **{res['wall_minutes']:.1f} min** "
         f"(pretraining {res['stage_minutes']['pretraining']:.1f} min, finetuning + evaluation {res['stage_minutes']['finetuning']:.1f} min)",
         f"- Finetuning seeds: {', '.join(map(str, cfg['seeds']))} (seed = labeled subset, head/random-encoder init, shuffling, "
         f"augmentation); pretraining seed 0", '',
         '## Results: test accuracy (%)', '',
         f"mean ± std over n = {len(cfg['seeds'])} seeds" + ('' if len(cfg['seeds']) > 1 else ' (one seed: no std)') + '.', '',
         '| init | ' + ' | '.join(f"{f:.0%} labels ({round(60000*f):,} images)" for f in fr) + ' |',
         '|---|' + '---|'*len(fr)]
    names = {'random': 'random init', 'gmml': 'GMML', 'mae': 'MAE'}
    for meth in METHODS: L.append(f"| {names[meth]} | " + ' | '.join(pm(summ[f'{meth}@{f}']) for f in fr) + ' |')
    L += ['', '| gain over random init (points) | ' + ' | '.join(f"{f:.0%}" for f in fr) + ' |', '|---|' + '---|'*len(fr)]
    for meth in ('gmml', 'mae'):
        L.append(f"| {names[meth]} − random | " + ' | '.join(pm(res['gains'][f'{meth}@{f}']) for f in fr) + ' |')
    L += ['', "Gains are paired by seed (same labeled subset for the three initialisations); mean ± std of the per-seed differences.",
          '', 'Per seed (test accuracy, %):', '',
          '| init | labels | ' + ' | '.join(f"seed {s}" for s in cfg['seeds']) + ' |', '|---|---|' + '---|'*len(cfg['seeds'])]
    for f in fr:
        for meth in METHODS:
            L.append(f"| {names[meth]} | {f:.0%} | " + ' | '.join(f"{100*v:.2f}" for v in summ[f'{meth}@{f}']['values']) + ' |')
    if res['mode'] == 'full' or 0.01 in fr:
        g = res['gains'].get('gmml@0.01')
        if g: L += ['', f"**Target (GMML beats random init by ≥ 10 points at 1 % labels): "
                        f"{'met' if g['mean'] >= 0.10 else 'not met'}** — measured gain {100*g['mean']:.1f} points (mean of {g['n']} seeds)."]
    L += ['', '![label efficiency](' + Path(res['plot']).name + ')', '', '## Pretraining (seed 0, once per method)', '',
          '| method | images | epochs | steps (bs) | peak lr | loss | valid loss before → after | train loss first → last | images/s | minutes |',
          '|---|---|---|---|---|---|---|---|---|---|']
    for k in ('gmml', 'mae'):
        p = pre[k]
        L.append(f"| {k.upper()} | {p['images']:,} | {p['epochs']} | {p['steps']} ({p['bs']}) | {p['lr']:g} | {p['loss']} | "
                 f"{p['valid_loss_before']:.4f} → {p['valid_loss_after']:.4f} | {p['train_loss_first']:.4f} → {p['train_loss_last_smoothed']:.4f} | "
                 f"{p['images_per_s']:.0f} | {p['minutes']:.1f} |")
    L += ['', f"Valid losses are on {pre['gmml']['valid_images']:,} unlabeled test images with a fixed corruption/mask (no labels; "
              "used only for this report). The two losses are different objectives and are not comparable with each other.",
          '', '## Settings', '',
          f"- Encoder: `{ARCH}` = timm ViT-Nano (96-d, 3 heads) with **{DEPTH} blocks** instead of 12, 28 px images zero-padded to 32, "
          "4 px patches (8×8 tokens + class token), 1 channel; the same encoder for the three initialisations.",
          f"- GMML: the library's `gmml` corruption recipe (noise-or-zeros + replace + blur blocks at pixel level, align 1; its grey-scale step is a no-op on 1-channel images), masked L1 on the "
          f"manipulated pixels, light decoder on fused blocks {{3, 4, 5, 6}}; MAE: 75 % of tokens masked, decoder "
          f"{MAE_DECODER['decoder_dim']}-d × {MAE_DECODER['decoder_depth']} blocks, MSE on masked patches + 0.1 × visible, no norm-pix. "
          f"Both: {cfg['pretrain_epochs']} epochs, batch {PRETRAIN['bs']}, AdamW (wd {PRETRAIN['wd']}), one-cycle, peak lr {PRETRAIN['lr']:g}.",
          f"- Finetuning, **identical for random / GMML / MAE**: the same labeled images per seed, batch {FINETUNE['bs']}, "
          + ', '.join(f"{cfg['ft_epochs'][str(f)]} epochs at {f:.0%}" for f in fr)
          + f" (same number of steps for every initialisation), one-cycle, AdamW (wd {FINETUNE['wd']}), label smoothing "
          f"{FINETUNE['label_smoothing']}, TrivialAugmentWide batch augmentation, a linear head on the pooled final tokens, no per-epoch validation; "
          "evaluated once at the end.",
          "- What differs: the peak learning rate, the layer-wise lr decay and the pooling (class token or mean of the patch "
          "tokens), each chosen per initialisation by validation accuracy on "
          "2,000 held-out *training* images (not the test set), see `label_efficiency_calibration.md`: "
          + '; '.join(f"{names[k]}: {v['pool']} pooling, peak lr {v['lr']:g}, layer decay {v['layer_decay']}" for k, v in cfg['finetune_lr'].items()) + '.']
    L += ['', '## Why this configuration', ''] + [f"- {s}" for s in res['reasoning']]
    L += ['', '## Stage times (minutes)', '', '| stage | minutes |', '|---|---|']
    L += [f"| pretrain {k.upper()} | {pre[k]['minutes']:.2f} |" for k in ('gmml', 'mae')]
    for f in fr:
        for meth in METHODS:
            rs = [r for r in res['records'] if r['method'] == meth and r['label_fraction'] == f]
            L.append(f"| finetune + test {names[meth]} {f:.0%} ({len(rs)} seeds; train / eval) | "
                     f"{sum(r['minutes'] for r in rs):.2f} ({sum(r['train_minutes'] for r in rs):.2f} / {sum(r['eval_minutes'] for r in rs):.2f}) |")
    L.append(f"| total | {res['wall_minutes']:.2f} |")
    L += ['', f"Raw records: `{Path(res['json']).name}` (one per method × label fraction × seed)."]
    Path(path).write_text('\n'.join(L) + '\n')

def reasoning(out, cfg, pre):
    "Why this configuration, citing the numbers measured by --calibrate (label_efficiency_calibration.json) when it is there."
    cal_f = Path(out)/'label_efficiency_calibration.json'
    cal = json.loads(cal_f.read_text()) if cal_f.exists() else None
    R = []
    if cal and cal.get('throughput'):
        t = cal['throughput']
        R.append(f"Depth 6 instead of 12 (measured by `--calibrate`, {cal['machine']['torch_threads']} thread): a 12-block encoder "
                 f"trains at {t['gmml depth 12']/t['gmml depth 6']:.2f}× the speed of the 6-block one for GMML, "
                 f"{t['mae depth 12']/t['mae depth 6']:.2f}× for MAE, {t['finetune depth 12']/t['finetune depth 6']:.2f}× for "
                 f"finetuning and {t['evaluation depth 12']/t['evaluation depth 6']:.2f}× for evaluation, so within the same "
                 "≤ 60 min the 6-block encoder gets about twice the pretraining epochs and finetuning steps.")
    R.append(f"Pretraining epochs ({cfg['pretrain_epochs']} for both methods): as many as fit in about half of the 60 min. "
             f"Measured here: GMML {pre['gmml']['images_per_s']:.0f} images/s, MAE {pre['mae']['images_per_s']:.0f} images/s "
             "(the MAE encoder sees 25 % of the tokens); MAE gets the same epochs, not the same time.")
    R.append("Finetuning: 600 labeled images are few for a ViT, so every initialisation gets the same regularisation "
             "(TrivialAugment, label smoothing 0.1, weight decay 0.05) and many epochs at 1 % "
             f"({cfg['ft_epochs']['0.01']} epochs); " + (f"{cfg['ft_epochs']['0.1']} epochs at 10 % (6,000 images) fit the budget. "
             if '0.1' in cfg['ft_epochs'] else '') + "step counts are identical across initialisations.")
    if cal:
        acc = {}
        for r in cal['records']: acc.setdefault(r['method'], []).append(r['heldout_accuracy'])
        R.append(f"Per-initialisation lr / layer decay / pooling: the best of a small grid by accuracy on {cal['config']['n_heldout']:,} "
                 f"held-out training images, 1 % labels, seed 0, with {cal['config']['pretrain_epochs']}-epoch encoders "
                 "(label_efficiency_calibration.md). Best held-out accuracy there: "
                 + ', '.join(f"{m} {100*max(v):.1f} %" for m, v in acc.items()) + '.')
    R.append("Evaluation: once per finetune, on all test images; the test set was never used to choose a setting.")
    return R

# ---------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    g = ap.add_mutually_exclusive_group()
    g.add_argument('--quick', action='store_true', help='smoke test: 6k pretraining images, 1 epoch, seed 0, 1 %% labels, 2k test images')
    g.add_argument('--calibrate', action='store_true', help='choose the finetuning lrs on held-out training images (no test set)')
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'), help='folder of the results (default: benchmarks/results)')
    ap.add_argument('--work', default=tempfile.gettempdir(), help='parent folder of the fresh folder holding the encoders')
    ap.add_argument('--encoders', default=None, help='reuse the encoders of an earlier run of the same mode (its work folder)')
    ap.add_argument('--threads', type=int, default=2, help='torch threads (default 2)')
    ap.add_argument('--overwrite', action='store_true', help='replace existing result files')
    args = ap.parse_args(argv)
    mode = 'quick' if args.quick else 'calibrate' if args.calibrate else 'full'
    cfg = dict(MODES[mode])
    out = Path(args.out); stem = STEM[mode]
    files = [out/f'{stem}.{ext}' for ext in (('json', 'md') if mode == 'calibrate' else ('json', 'md', 'png'))]
    existing = [str(f) for f in files if f.exists()]
    if existing and not args.overwrite:
        print(f"error: {', '.join(existing)} exist; pass --overwrite to replace them (or --out another folder)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix=f'label_eff_{mode}_', dir=args.work))
    started = datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    command = 'python benchmarks/bench_label_efficiency.py' + ' '.join([''] + [a for a in (argv if argv is not None else sys.argv[1:])])
    log(f"mode {mode}, {args.threads} threads, encoders in {work}")
    speed = throughput() if mode == 'calibrate' else None

    if args.encoders:   # reuse the encoders (and their pretraining record) of an earlier run with the same pretraining settings
        pre = json.loads((Path(args.encoders)/'pretraining.json').read_text())
        if any(pre[m]['epochs'] != cfg['pretrain_epochs'] or pre[m]['images'] != round(60000*cfg['pretrain_fraction']) for m in pre):
            print(f"error: the encoders in {args.encoders} were pretrained with other settings", file=sys.stderr); return 2
        log(f"reusing the encoders in {args.encoders}: " + ', '.join(p['encoder'] for p in pre.values()))
    else:
        pre = {m: pretrain(m, cfg, work) for m in ('gmml', 'mae')}
        (work/'pretraining.json').write_text(json.dumps(pre, indent=1))
    t_pre = (time.perf_counter() - T0)/60
    encoders = {m: pre[m]['encoder'] for m in ('gmml', 'mae')}

    if mode == 'calibrate':
        recs = []
        for f in cfg['fractions']:
            for s in cfg['seeds']:
                held = heldout_images(f, s, cfg['n_heldout'])
                for meth in METHODS:
                    for hp in cfg['grid'][meth]: recs.append(finetune(meth, f, s, cfg, encoders, hp, heldout=held))
        best = {}
        for meth in METHODS:
            rs = [r for r in recs if r['method'] == meth]
            b = max(rs, key=lambda r: r['heldout_accuracy'])
            best[meth] = dict(lr=b['lr'], layer_decay=b['layer_decay'], pool=b['pool'])
        res = dict(mode=mode, command=command, started=started, machine=machine(args.threads), git_commit=git_commit(),
                   wall_minutes=(time.perf_counter() - T0)/60, encoders_reused_from=args.encoders, throughput=speed, pretraining=pre, records=recs, best=best,
                   config=dict(cfg, fractions=list(cfg['fractions']), seeds=list(cfg['seeds']), ft_epochs={str(k): v for k, v in cfg['ft_epochs'].items()}))
        files[0].write_text(json.dumps(res, indent=1))
        L = ['# Label efficiency: calibration of the finetuning learning rates', '',
             f"Command: `{command}`. Machine: {res['machine']['cpu']}, {args.threads} torch threads, GPU: {res['machine']['gpu']}, "
             f"torch {res['machine']['torch']}. Wall time {res['wall_minutes']:.1f} min"
             + (f" (the encoders were reused from the earlier run of this mode in `{args.encoders}`, so the wall time excludes "
                f"their pretraining, reported below)." if args.encoders else '.'), '',
             f"Encoders pretrained (seed 0) on {pre['gmml']['images']:,} unlabeled training images for {cfg['pretrain_epochs']} epochs (fewer than the full "
             f"benchmark, to save time); finetuning at 1 % labels (600 images, seed 0) for {cfg['ft_epochs'][0.01]} epochs with the "
             f"benchmark's finetuning recipe; accuracy on {cfg['n_heldout']:,} held-out **training** images that are not in the "
             "labeled subset. The test set is not used.", '',
             '| init | pooling | peak lr | layer decay | held-out accuracy (%) | minutes |', '|---|---|---|---|---|---|']
        L += [f"| {r['method']} | {r['pool']} | {r['lr']:g} | {r['layer_decay']} | {100*r['heldout_accuracy']:.2f} | {r['minutes']:.1f} |" for r in recs]
        L += ['', 'Chosen (highest held-out accuracy per initialisation): '
              + '; '.join(f"{k}: {v['pool']} pooling, lr {v['lr']:g}, layer decay {v['layer_decay']}" for k, v in best.items()) + '.', '',
              '## Throughput (images/s, this machine, this run)', '',
              'Training phase of the second of two epochs (12 GMML/MAE steps of 128, 18 finetuning steps of 64 with TrivialAugment); '
              'evaluation: 2,000 held-out training images in batches of 500 (timing only).', '',
              '| step | ' + ' | '.join(f"depth {d}" for d in (6, 12)) + ' | depth 12 / depth 6 |', '|---|---|---|---|']
        L += [f"| {n} | {speed[f'{n} depth 6']:.0f} | {speed[f'{n} depth 12']:.0f} | {speed[f'{n} depth 12']/speed[f'{n} depth 6']:.2f} |"
              for n in ('gmml', 'mae', 'finetune', 'evaluation')]
        L += ['', 'Pretraining: ' + '; '.join(f"{k.upper()} valid loss {p['valid_loss_before']:.4f} → {p['valid_loss_after']:.4f} "
                                          f"({p['minutes']:.1f} min)" for k, p in pre.items()) + '.']
        files[1].write_text('\n'.join(L) + '\n')
        print('\n'.join(L))
        return 0

    recs = []
    for f in cfg['fractions']:
        for s in cfg['seeds']:
            for meth in METHODS: recs.append(finetune(meth, f, s, cfg, encoders, FT_LR[meth]))
    wall = (time.perf_counter() - T0)/60
    summ = summarize(recs)
    gains = {}
    for meth in ('gmml', 'mae'):
        for f in cfg['fractions']:
            d = [a['test_accuracy'] - b['test_accuracy'] for a in recs for b in recs
                 if a['method'] == meth and b['method'] == 'random' and a['label_fraction'] == b['label_fraction'] == f and a['seed'] == b['seed']]
            gains[f'{meth}@{f}'] = dict(mean=statistics.mean(d), std=statistics.stdev(d) if len(d) > 1 else float('nan'), n=len(d), values=d)
    res_cfg = dict(arch=ARCH, depth=DEPTH, pretrain=PRETRAIN, mae_decoder=MAE_DECODER, finetune=FINETUNE, finetune_lr=FT_LR,
                   pretrain_fraction=cfg['pretrain_fraction'], pretrain_epochs=cfg['pretrain_epochs'],
                   seeds=list(cfg['seeds']), fractions=list(cfg['fractions']),
                   ft_epochs={str(k): v for k, v in cfg['ft_epochs'].items()}, n_test=cfg['n_test'] or 10000)
    res = dict(mode=mode, command=command, started=started, machine=machine(args.threads), git_commit=git_commit(),
               wall_minutes=wall, stage_minutes=dict(pretraining=t_pre, finetuning=wall - t_pre), config=res_cfg,
               pretraining=pre, records=recs, summary={f'{k[0]}@{k[1]}': v for k, v in summ.items()}, gains=gains,
               reasoning=reasoning(out, res_cfg, pre), json=str(files[0]), plot=str(files[2]))
    plot(summ, cfg['fractions'], files[2], f"Fashion-MNIST, ViT-Nano ({DEPTH} blocks), {cfg['pretrain_epochs']} pretraining epochs, "
         f"n={len(cfg['seeds'])} seeds")
    write_markdown(res, files[1])
    # the raw results: a list of records; each carries the run's context (command, machine, wall time) and its pretraining
    run_info = dict(command=command, started=started, wall_minutes=round(wall, 2), machine=res['machine'], git_commit=res['git_commit'])
    pre_info = {m: {k: v for k, v in p.items() if k != 'encoder'} for m, p in pre.items()}
    files[0].write_text(json.dumps([dict(r, pretraining=pre_info.get(r['method']), run=run_info) for r in recs], indent=1))
    log(f"done in {wall:.1f} min: {', '.join(str(f) for f in files)}")
    print(files[1].read_text())
    return 0

if __name__ == '__main__': sys.exit(main())
