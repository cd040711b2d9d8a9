"""GMML's three ablations in miniature on Fashion-MNIST: alien-concept type (paper Fig. 5), corruption ratio (Fig. 6)
and the blocks fused into the decoder (Fig. 7).

Every variant goes through one protocol, `run_variant`: pretrain a 4-block ViT-Nano with GMML on a few thousand
unlabeled training images for a fixed number of steps, then fit a linear probe on the frozen encoder's features with
few labels and measure it on held-out test images. Same data, initial weights, seed and budget for every variant.
Finetuning — what the paper's figures report — costs as much as pretraining here and, this short, is noisier than the
differences we look for; it is run for the default variant and for a random-init baseline over several seeds, which
also shows the seed-to-seed noise of both measures.

    python benchmarks/bench_ablations.py               # full run; writes benchmarks/results/ablations.{json,md,png}
    python benchmarks/bench_ablations.py --overwrite   # the same, replacing existing results
    python benchmarks/bench_ablations.py --quick       # tiny budget; prints, writes nothing (what the tutorial runs)
    python benchmarks/bench_ablations.py --threads 1   # the committed run's setting (16 min on a shared 2-core CPU)

The tutorial nbs/tutorial_ablations.ipynb imports this file and calls the same functions with the QUICK settings.
"""
from __future__ import annotations
import argparse, json, os, sys, time
from pathlib import Path

import numpy as np
import torch
from fastai.torch_core import set_seed

from gmml_fast.aliens import gmml_corrupt
from gmml_fast.data import fmnist_pretrain_dls, fmnist_finetune_dls
from gmml_fast.learner import gmml_learner, finetune_learner
from gmml_fast.masking import mask_coverage
from gmml_fast.models import default_blocks
from bench_common import gmml_decoder_before, cpu_name, SkipValidation, RECIPE_BEFORE

RESULTS = Path(__file__).resolve().parent/'results'
STEM = 'ablations'

# ---------------------------------------------------------------- the protocol
# `FULL` is the committed run; `QUICK` the CPU test-run version used by the tutorial. Plain dicts: override any entry.
FULL = dict(arch='nano_28', depth=4, size=28, n_pretrain=4096, bs=128, epochs=4, lr=1.5e-3, n_recon_valid=512,
            n_labels=1000, n_test=2000, finetune_epochs=12, finetune_lr=2e-3, seeds=(0, 1, 2), repeat=('replace',))
QUICK = dict(FULL, n_pretrain=1024, bs=64, epochs=1, lr=1e-3, n_recon_valid=128, n_labels=500, n_test=1000,
             finetune_epochs=4, seeds=(0,), repeat=())

DEFAULT_RATIO = 0.7          # every recipe of gmml_fast.aliens.RECIPES hides 70 % in total, as in the paper's Fig. 5
ALIENS = ('zeros', 'noise', 'replace', 'comb1', 'comb2', 'gmml')
RATIOS = (0.1, 0.3, 0.5, 0.7, 0.9)
QUICK_RATIOS = (0.1, 0.7, 0.9)
RATIO_RECIPE = 'replace'

def fused_block_settings(depth: int) -> dict[str, tuple[int, ...]]:
    "The paper's six fusion settings for 12 blocks (Fig. 7 a-f) rescaled to `depth` blocks (block·depth/12, rounded); coinciding settings merged."
    paper = {'a': (2, 4, 6, 8, 10, 12), 'b': (4, 6, 8, 10, 12), 'c': (6, 8, 10, 12), 'd': (8, 10, 12), 'e': (10, 12), 'f': (12,)}
    out = {}
    for k, bl in paper.items():
        scaled = tuple(sorted({max(1, round(depth*b/12)) for b in bl}))
        prev = next((n for n, v in out.items() if v == scaled), None)
        if prev is None: out[k] = scaled
        else: out[prev + '/' + k] = out.pop(prev)
    return out

def _fit(learn, epochs: int):
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, cbs=[SkipValidation()])

def _validate(learn):
    with learn.no_bar(), learn.no_logging(): return learn.validate()

def pretrain_dls(p: dict):
    "Unlabeled loaders: a stratified `n_pretrain` subset of the 60k training images; `n_recon_valid` test images for the reconstruction loss."
    return fmnist_pretrain_dls(bs=p['bs'], size=p['size'], fraction=p['n_pretrain']/60000, valid='test',
                               n_valid=p['n_recon_valid'], seed=0)

def label_dls(p: dict, bs: int = 64):
    "The labeled few (`n_labels` training images, stratified, the same for every variant) and `n_test` test images."
    return fmnist_finetune_dls(bs=bs, label_fraction=p['n_labels']/60000, size=p['size'], n_valid=p['n_test'], seed=0)

@torch.no_grad()
def features(encoder, dl) -> tuple[np.ndarray, np.ndarray]:
    "Mean of the final-normed patch tokens of a frozen `encoder` for every image of `dl` (in order), and the labels."
    was = encoder.training; encoder.eval()
    fs, ys = [], []
    for xb, yb in dl:
        fs.append(encoder.forward_features(xb)[:, encoder.num_prefix_tokens:].mean(1)); ys.append(yb)
    encoder.train(was)
    return torch.cat(fs).float().cpu().numpy(), torch.cat(ys).cpu().numpy()

def linear_probe(encoder, p: dict) -> float:
    "Test accuracy of a multinomial logistic regression (scikit-learn, L-BFGS, C=0.1) on standardised frozen features."
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    dls = label_dls(p, bs=256)
    ftr, ytr = features(encoder, dls.train.new(shuffle=False, drop_last=False))
    fte, yte = features(encoder, dls.valid)
    sc = StandardScaler().fit(ftr)
    clf = LogisticRegression(C=0.1, max_iter=3000).fit(sc.transform(ftr), ytr)
    return float((clf.predict(sc.transform(fte)) == yte).mean())

def finetune_accuracy(pretrained, p: dict, seed: int) -> float:
    "Test accuracy after finetuning the whole encoder + a linear head (avg pool; layer-wise lr decay 0.75 if pretrained) for `finetune_epochs`."
    set_seed(seed)
    dls = label_dls(p)
    if pretrained is None:
        ft = finetune_learner(dls, arch=p['arch'], pool='avg', lr=p['finetune_lr'], encoder_kwargs=dict(depth=p['depth']))
    else: ft = finetune_learner(dls, pretrained=pretrained, pool='avg', lr=p['finetune_lr'])
    _fit(ft, p['finetune_epochs'])
    return float(_validate(ft)[1])

_COVERAGE = {}
def measured_coverage(corruption='gmml', ratio=None, size: int = 28, n: int = 256) -> float:
    "Mean share of pixels a recipe actually corrupts on `n` training images (steps may overlap; 'gmml' adds a blur block of its own)."
    k = (corruption, ratio, size)
    if k not in _COVERAGE:
        x = fmnist_pretrain_dls(bs=n, size=size, fraction=0.01, valid='test', n_valid=10, seed=0).train.one_batch()[0]
        _COVERAGE[k] = float(mask_coverage(gmml_corrupt(x, corruption, ratio=ratio, seed=123)[1]).mean())
    return _COVERAGE[k]

def run_variant(corruption='gmml', ratio=None, blocks=None, seed: int = 0, p: dict | None = None, pretrain: bool = True,
                finetune: bool = False) -> dict:
    "Pretrain one GMML variant under protocol `p` (entries override `FULL`), probe it and optionally finetune it; `pretrain=False`: random init."
    p = dict(FULL, **(p or {}))
    t0 = time.perf_counter()
    set_seed(seed)                                       # same initial weights and data order for every variant of a seed
    dls = pretrain_dls(p)
    learn = gmml_learner(dls, p['arch'], corruption=corruption, ratio=ratio, blocks=blocks, lr=p['lr'], seed=seed,
                         encoder_kwargs=dict(depth=p['depth']), decoder=gmml_decoder_before(96), **RECIPE_BEFORE)
    res = dict(corruption=corruption, ratio=DEFAULT_RATIO if ratio is None else ratio, blocks=list(learn.model.blocks),
               seed=seed, pretrained=pretrain)
    if pretrain:
        res['coverage'] = measured_coverage(corruption, ratio, p['size'])
        res['recon_l1_before'] = float(_validate(learn)[0])   # masked L1 on test images; comparable only within a recipe and ratio
        _fit(learn, p['epochs'])
        res['steps'] = p['epochs']*len(dls.train)
        res['recon_l1'] = float(_validate(learn)[0])
    res['probe_acc'] = linear_probe(learn.model.encoder, p)
    if finetune: res['finetune_acc'] = finetune_accuracy(learn if pretrain else None, p, seed)
    res['seconds'] = round(time.perf_counter() - t0, 1)
    return res

# ---------------------------------------------------------------- the three ablations
def ablation_plan(p: dict, quick: bool = False) -> dict[str, list[tuple[str, dict]]]:
    "For each ablation, its (label, run_variant arguments) in plot order; a configuration shared by two ablations runs once."
    fb = fused_block_settings(p['depth'])
    if quick: fb = {k: v for k, v in fb.items() if v in (tuple(range(1, p['depth'] + 1)), default_blocks(p['depth']), (p['depth'],))}
    return {'alien': [(a, dict(corruption=a)) for a in ALIENS],
            # one alien concept, so that the share actually corrupted is the nominal ratio (steps of a mixed recipe overlap)
            'ratio': [(f'{r:.1f}', dict(corruption=RATIO_RECIPE, ratio=None if r == DEFAULT_RATIO else r))
                      for r in (QUICK_RATIOS if quick else RATIOS)],
            'blocks': [(f"{k}: {'-'.join(map(str, v))}", dict(blocks=None if v == default_blocks(p['depth']) else v)) for k, v in fb.items()]}

def _key(kw: dict, seed: int, pretrain: bool = True):
    return (kw.get('corruption', 'gmml'), kw.get('ratio'), tuple(kw['blocks']) if kw.get('blocks') else None, seed, pretrain)

def run_ablations(p: dict | None = None, quick: bool = False, log=print) -> dict:
    """The default variant and the random-init baseline for every seed (probe + finetune), then every variant of the
    three ablations for the first seed (probe; each distinct configuration runs once, the default is shared)."""
    p = dict(QUICK if quick else FULL, **(p or {}))
    plan, cache, t0 = ablation_plan(p, quick), {}, time.perf_counter()
    def run(kw, seed, pretrain=True, finetune=False):
        k = _key(kw, seed, pretrain)
        if k not in cache:
            cache[k] = run_variant(**kw, seed=seed, p=p, pretrain=pretrain, finetune=finetune)
            log(f"[{time.perf_counter() - t0:6.0f}s] {'GMML ' + str(kw or 'default') if pretrain else 'random init'} seed {seed}: " +
                ', '.join(f'{m} {cache[k][m]:.3f}' for m in ('probe_acc', 'finetune_acc') if m in cache[k]))
        return cache[k]
    out = dict(protocol=p, default_seeds=[run({}, s, finetune=True) for s in p['seeds']],
               random_init=[run({}, s, pretrain=False, finetune=True) for s in p['seeds']], ablations={})
    for name, variants in plan.items():
        out['ablations'][name] = [dict(label=lbl, **run(kw, p['seeds'][0])) for lbl, kw in variants]
    # the alien concepts named in `repeat` (e.g. the sweep's outlier) are re-run with every seed, as a check of their result
    out['repeats'] = {a: [run(dict(corruption=a), s) for s in p['seeds']] for a in p.get('repeat', ())}
    out['seconds'] = round(time.perf_counter() - t0, 1)
    return out

TITLES = {'alien': 'alien concept (Fig. 5)', 'ratio': 'corruption ratio (Fig. 6)', 'blocks': 'fused blocks (Fig. 7)'}

def tables(res: dict) -> dict:
    "One pandas DataFrame per ablation, a row per variant: linear-probe accuracy, measured coverage, reconstruction L1 after pretraining."
    import pandas as pd
    return {name: pd.DataFrame(rows).set_index('label')[['probe_acc', 'coverage', 'recon_l1']].round(4)
            for name, rows in res['ablations'].items()}

def seed_summary(res: dict):
    "Per seed: probe and finetuned accuracy of the default GMML variant, of the repeated variants and of random init, with mean and std over seeds."
    import pandas as pd
    runs = [('GMML default', res['default_seeds'])] + [(f'GMML {a}', v) for a, v in res.get('repeats', {}).items()] + [('random init', res['random_init'])]
    df = pd.DataFrame({(name, m): [r[m] for r in rows] for name, rows in runs for m in ('probe_acc', 'finetune_acc') if m in rows[0]},
                      index=[f"seed {r['seed']}" for r in res['default_seeds']])
    if len(df) > 1: df.loc['mean'], df.loc['std'] = df.mean(), df.iloc[:len(res['default_seeds'])].std(ddof=0)
    return df.round(4)

def plot(res: dict, title: str | None = None):
    """Three panels of linear-probe accuracy, one per ablation (error bars: the std of the default variant over seeds; dashed: random
    init), and a fourth: finetuned and probe accuracy of the default variant and of random init, per seed."""
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(1, 4, figsize=(17, 3.9), gridspec_kw=dict(width_ratios=[6, 5, 4, 3]))
    dflt = [r['probe_acc'] for r in res['default_seeds']]
    sd = float(np.std(dflt)) if len(dflt) > 1 else None
    base = np.mean([r['probe_acc'] for r in res['random_init']])
    for ax, (name, tab) in zip(axs, tables(res).items()):
        x = np.arange(len(tab))
        ax.errorbar(x, tab['probe_acc'].values, yerr=sd, fmt='o-', color='C0', capsize=3,
                    label='GMML variant' + (f' (± std of the default over {len(dflt)} seeds)' if sd is not None else ''))
        ax.axhline(base, color='k', ls='--', lw=1, label='random init')
        for a, rows in res.get('repeats', {}).items():               # the extra seeds of a repeated variant, as small dots
            lbl = a if name == 'alien' else f'{DEFAULT_RATIO:.1f}' if name == 'ratio' and a == RATIO_RECIPE else None
            if lbl in tab.index:
                v = [r['probe_acc'] for r in rows]
                ax.plot(np.full(len(v), list(tab.index).index(lbl)) + 0.12, v, '.', color='C3', label=f'{a}, {len(v)} seeds')
        ax.set_xticks(x, tab.index, rotation=20 if name == 'blocks' else 0)
        ax.set_title(TITLES[name], fontsize=10); ax.grid(alpha=0.3)
    # one y scale for the three ablations, at least 10 points tall, so that small differences are not blown up
    vals = [r['probe_acc'] for rows in [*res['ablations'].values(), *res.get('repeats', {}).values()] for r in rows] + dflt + [base]
    mid, half = (max(vals) + min(vals))/2, max(0.05, (max(vals) - min(vals))/2 + (sd or 0) + 0.01)
    for ax in axs[:3]: ax.set_ylim(mid - half, mid + half)
    axs[0].set_ylabel('linear-probe test accuracy'); axs[0].legend(fontsize=8)
    ax = axs[3]
    for i, (key, lbl) in enumerate((('random_init', 'random\ninit'), ('default_seeds', 'GMML\ndefault'))):
        for m, c in (('probe_acc', 'C0'), ('finetune_acc', 'C1')):
            v = [r[m] for r in res[key]]
            ax.plot(np.full(len(v), i) + (0.08 if m == 'finetune_acc' else -0.08), v, 'o', color=c, alpha=0.7,
                    label=('finetuned' if m == 'finetune_acc' else 'linear probe') if i == 0 else None)
    ax.set_xticks([0, 1], ['random\ninit', 'GMML\ndefault']); ax.set_xlim(-0.5, 1.5)
    ax.set_title('does pretraining help? (all seeds)', fontsize=10); ax.grid(alpha=0.3); ax.legend(fontsize=8)
    if title: fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig

# ---------------------------------------------------------------- the committed results
def machine() -> str:
    cpu = cpu_name()
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'
    return f'{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}, {dev}'

def _md_table(df) -> list[str]:
    "A DataFrame as markdown table lines (without needing `tabulate`)."
    head = [df.index.name or ''] + list(df.columns)
    rows = [[str(i)] + [f'{v:.4f}' if isinstance(v, float) else str(v) for v in r] for i, r in zip(df.index, df.values.tolist())]
    return ['| ' + ' | '.join(r) + ' |' for r in [head, ['---']*len(head)] + rows]

def markdown(res: dict) -> str:
    p = res['protocol']
    md = ['# GMML ablations in miniature (Fashion-MNIST, 4-block ViT-Nano)', '',
          f"Machine: {res['machine']}. Command: `{res['command']}`. Wall time: {res['seconds']/60:.1f} min" +
          (f" (load average {res['load_start']:.1f} at the start, {res['load_end']:.1f} at the end)" if 'load_start' in res else '') + ". "
          f"Seeds: {p['seeds'][0]} for every ablation variant; {list(p['seeds'])} for the default variant and the random-init baseline.", '',
          f"Protocol: GMML pretraining of `{p['arch']}` (depth {p['depth']}, {p['size']}×{p['size']} images) on {p['n_pretrain']} unlabeled "
          f"training images, {res['default_seeds'][0]['steps']} AdamW steps of {p['bs']} (one-cycle, peak lr {p['lr']}); then, on "
          f"{p['n_labels']} labeled training images, a linear probe (logistic regression on frozen mean-pooled tokens) for every variant and "
          f"finetuning ({p['finetune_epochs']} epochs, lr {p['finetune_lr']}, layer decay 0.75) for the default variant and random init; accuracy on "
          f"{p['n_test']} test images. Repeated with every seed: {', '.join(p.get('repeat', ())) or 'none'}. The ratio ablation uses the single alien concept '{RATIO_RECIPE}'. `coverage`: measured share of corrupted pixels; `recon_l1`: masked L1 on test images after "
          f"pretraining (comparable only within one recipe and ratio).", '']
    for name, tab in tables(res).items(): md += [f'## {TITLES[name]}', ''] + _md_table(tab) + ['']
    md += ['## Noise level: the default variant, the repeated variants and random init over seeds', '']
    ss = seed_summary(res)
    ss.columns = [f'{a} {b}' for a, b in ss.columns]
    md += _md_table(ss)
    return '\n'.join(md) + '\n'

def load_results(path=RESULTS/f'{STEM}.json') -> dict | None:
    "The committed full results, or None when they were never written."
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='tiny budget; print the tables, write nothing')
    ap.add_argument('--overwrite', action='store_true', help='replace existing results')
    ap.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s own choice)')
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    files = [RESULTS/f'{STEM}.{e}' for e in ('json', 'md', 'png')]
    if not a.quick and not a.overwrite and any(f.exists() for f in files):
        sys.exit(f"{', '.join(str(f) for f in files if f.exists())} exist(s); pass --overwrite to replace")
    load_start = os.getloadavg()[0]
    res = run_ablations(quick=a.quick)
    res.update(load_start=load_start, load_end=os.getloadavg()[0], machine=machine(), command=' '.join(['python', 'benchmarks/bench_ablations.py'] + sys.argv[1:]))
    md = markdown(res)
    print(md)
    if a.quick: return res
    RESULTS.mkdir(exist_ok=True)
    files[0].write_text(json.dumps(res, indent=1) + '\n')
    files[1].write_text(md)
    plot(res, title=f"GMML ablations in miniature — {res['machine']}").savefig(files[2], dpi=110, bbox_inches='tight')
    return res

if __name__ == '__main__':
    main()
