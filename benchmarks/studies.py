"""The named studies: which stages each one needs, and the record it writes from their results.

A study is a function of a `Context` (the stage folder, quick or full settings) that asks the stage folder for the
stages it needs — computed once, then shared with every other study that asks for the same ones (`stages.Store`) — and
returns its outputs: records in `benchmarks/results/`, in the schemas `report.py` reads for the Results page, with a
markdown summary and figures. The record is built from the stage records alone, so
`python -m benchmarks.study NAME --report` rebuilds it without computing anything (listing the stages not yet run).

The label-efficiency family shares one set of settings (`LE`): the follow-ups change one thing each and reuse the rest
(the longer finetunes reuse the pretrainings; the finetune-recipe study reuses the study's own finetunes as its
`study` variant). The recipes are the library's named ones (`gmml@v1`, `finetune@v1`), with the few overrides each
study states next to its settings.
"""
from __future__ import annotations
import functools, math, statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from benchmarks import report as R
from benchmarks.stages import Store, log, run_meta, BARE_STEP, NANO
from benchmarks.configs import (ARCH, DEPTH, SIZE, PretrainStage, FinetuneStage, FrozenStage, ReadoutStage, MemoryStage,
                                ThroughputStage, HostStage)



@dataclass
class Context:
    "What a study runs with: the stage folder, quick (a smoke test of every stage) or full settings, the command line and a note for the report."
    store: Store
    quick: bool = False
    argv: list = field(default_factory=list)
    note: str | None = None
    def meta(self, **more) -> dict:
        "The run metadata of a record written now, with what the stage folder computed and reused."
        return dict(run_meta(self.argv), mode='quick' if self.quick else 'full', stages_ran=len(self.store.ran),
                    stages_reused=len(self.store.reused), stages_missing=sorted(set(self.store.missing)), note=self.note,
                    stage_commands=sorted({c for c in self.store.commands if c}), **more)

@dataclass
class Output:
    "One record a study writes: `stem` (benchmarks/results/<stem>.json), the record, its markdown (a function of the written JSON's path) and figures (suffix -> function of the path to save to)."
    stem: str
    record: object
    markdown: Callable
    figures: dict = field(default_factory=dict)

@dataclass
class Study:
    "A named study: what it measures (`doc`), the stems it writes, and the function that runs it."
    name: str
    doc: str
    stems: tuple
    run: Callable

STUDIES: dict[str, Study] = {}
def study(name: str, doc: str, stems: tuple):
    "Register a study function under `name`."
    def deco(fn):
        fn.__doc__ = fn.__doc__ or doc[0].upper() + doc[1:] + '.'
        STUDIES[name] = Study(name, doc, stems, fn)
        return fn
    return deco


# ---------------------------------------------------------------------------------------------------- label efficiency: settings
LE = {
    'full':  dict(images=60000, pretrain_epochs=5, seeds=(0, 1, 2), fractions=(0.01, 0.1), ft_epochs={0.01: 80, 0.1: 10},
                  n_test=None, n_bank=10000, n_query=2000),
    'quick': dict(images=1200, pretrain_epochs=1, seeds=(0,), fractions=(0.01,), ft_epochs={0.01: 2},
                  n_test=500, n_bank=500, n_query=250),
}
# The finetune of every initialisation: finetune@v1 with TrivialAugment and batches of 64, plus each initialisation's peak lr,
# layer decay and pooling from the calibration on held-out training images (label_efficiency_calibration.md, a legacy record).
FT_AUGMENT = dict(augment='trivialaugment')
CALIBRATED = {'random': dict(lr=1e-3, layer_decay=1.0, pool='cls'), 'gmml': dict(layer_decay=0.9),
              'mae': dict(lr=1e-3, layer_decay=1.0, pool='cls'), 'simmim': dict(layer_decay=0.9),   # SimMIM: GMML's, not calibrated
              'cnn': {}}
FT_BS = 64

def le(ctx) -> dict:
    "The label-efficiency settings of a context (quick or full)."
    return LE['quick' if ctx.quick else 'full']

def pre_cfg(m: dict, method: str, epochs: int | None = None, arch: str = ARCH, images: int | None = None, seed: int = 0,
            overrides: dict | None = None, decoder: dict | None = None, depth: int = DEPTH, bs: int = 128) -> dict:
    "A pretraining stage's config: `method`@v1 (+ `overrides`) on `images` pool images for `epochs`, read out on the settings' bank and queries."
    return PretrainStage(method=method, recipe=f'{method}@v1', overrides=dict(overrides or {}), decoder=decoder, arch=arch,
                         depth=depth, size=SIZE, images=images or m['images'], epochs=epochs or m['pretrain_epochs'], bs=bs,
                         seed=seed, n_bank=m['n_bank'], n_query=m['n_query'])

def ft_cfg(m: dict, init: str, pretrain: dict | None, fraction: float, seed: int, epochs: int | None = None, extra: dict | None = None,
           evaluate: str = 'test', arch: str = ARCH, calibrated: str | None = None) -> dict:
    "A finetune stage's config: initialisation `init` ('cnn' trains the ResNet), finetune@v1 + TrivialAugment + the calibrated settings of `calibrated` (default: `init`'s method) + `extra`."
    kind = calibrated or (pretrain.method if pretrain else init)
    return FinetuneStage(model='cnn' if init == 'cnn' else 'vit', pretrain=pretrain, arch=arch, depth=DEPTH, size=SIZE,
                         fraction=fraction, seed=seed, recipe='finetune@v1', overrides={**FT_AUGMENT, **CALIBRATED[kind], **(extra or {})},
                         epochs=epochs or m['ft_epochs'][fraction], bs=FT_BS, evaluate=evaluate, n_test=m['n_test'], n_query=m['n_query'])

def frozen_cfg(m: dict, pretrain: dict | None, arch: str = ARCH) -> dict:
    "A frozen read-out stage's config: the encoder of `pretrain` (None: random init) on every labeled subset of the settings `m`."
    return FrozenStage(pretrain=pretrain, arch=arch, depth=DEPTH, size=SIZE, fractions=list(m['fractions']), seeds=list(m['seeds']),
                       n_test=m['n_test'], n_query=m['n_query'])

def mae_time_epochs(pre: dict) -> int | None:
    "The epochs MAE runs in the time GMML trained, at the speeds measured in this study (a plan, not a measured equality)."
    if not (pre.get('gmml') and pre.get('mae')): return None
    return max(1, round(pre['gmml']['train_minutes']/(pre['mae']['train_minutes']/pre['mae']['epochs'])))

def pretrainings(ctx, methods=('gmml', 'mae')) -> dict:
    "The study's pretrainings {name: (config, record)}: GMML and MAE at equal epochs, MAE at GMML's measured time (when that is more epochs: otherwise it is the same stage), and any other `methods`."
    m, out = le(ctx), {}
    for k in methods: out[k] = (c := pre_cfg(m, k), ctx.store.run(c))
    e = mae_time_epochs({k: r for k, (c, r) in out.items()})
    if e is not None and e != out['mae'][1]['epochs']: out['mae_time'] = (c := pre_cfg(m, 'mae', epochs=e), ctx.store.run(c))
    return out

def study_finetune(ctx, pre, init, fraction, seed, **kw):
    "One finetune of the study's settings for an initialisation name ('random', 'cnn' or a pretraining of `pre`), labelled with that name."
    cfg = ft_cfg(le(ctx), init, pre[init][0] if init in pre else None, fraction, seed, **kw)
    r = ctx.store.run(cfg)
    return None if r is None else dict(r, method=init, **cfg.overrides)

def _pre_info(rec): return {k: v for k, v in rec.items() if k not in ('encoder', 'stage')}


# ---------------------------------------------------------------------------------------------------- label efficiency
COLORS = {'random': '#999999', 'gmml': '#d62728', 'mae': '#1f77b4', 'mae_time': '#9ecae1', 'simmim': '#9467bd', 'cnn': '#2ca02c'}

def _label_efficiency(ctx, with_simmim: bool, stem: str):
    m = le(ctx)
    pre = pretrainings(ctx, ('gmml', 'mae', 'simmim') if with_simmim else ('gmml', 'mae'))
    done = {k: v for k, v in pre.items() if v[1] is not None}
    recs, frozen_minutes = [], {}
    for init in ('random', *done):
        fr = ctx.store.run(frozen_cfg(m, done[init][0] if init in done else None))
        if fr is None: continue
        frozen_minutes[init] = fr['embed_minutes'] + sum(r['minutes'] for r in fr['records'])
        recs += [dict(r, method=init) for r in fr['records']]
    for f in m['fractions']:
        inits = ['random', *done] if f == 0.01 else ['random', *(k for k in done if k != 'mae_time')]
        for s in m['seeds']:
            for init in [*inits, 'cnn']:
                r = study_finetune(ctx, pre, init, f, s)
                if r is not None: recs.append(r)
    if not recs: return []
    minutes = sum(p['minutes'] for _, p in done.values()) + sum(frozen_minutes.values()) + sum(r['minutes'] for r in recs if r['protocol'] == 'finetune')
    meta = ctx.meta()
    run = dict(command=meta['command'], finished=meta['date'], stage_total_minutes=round(minutes, 2), machine=meta['machine'],
               git_commit=meta['commit'], mode=meta['mode'], note=ctx.note, stages_missing=meta['stages_missing'],
               stage_commands=meta['stage_commands'])
    info = {k: dict(_pre_info(p), recipe=c.recipe, overrides=c.overrides) for k, (c, p) in done.items()}
    out = [dict(r, pretraining=info.get(r['method']), run=run) for r in recs]
    title = f"Fashion-MNIST, ViT-Nano ({DEPTH} blocks), pretrained {m['pretrain_epochs']} epochs, n={len(m['seeds'])} seeds"
    return [Output(stem, out, _label_efficiency_md,
                   {'.png': lambda p, recs=out: plot_bars(recs, p, title), '_curves.png': lambda p, recs=out: plot_curves(recs, p)})]

def _label_efficiency_md(path) -> str:
    recs = R.load(path)
    info = R.run_info(recs)
    fr = sorted({r['label_fraction'] for r in recs})
    st = info['stage_minutes']
    L = [f"# Label efficiency on Fashion-MNIST{' (quick mode: a smoke test, not a result)' if recs[0]['run'].get('mode') == 'quick' else ''}", '',
         f"Command: {info['command_line']} on {info['machine']}; finished {info['finished']}; stages **{info['total_minutes']:.1f} min** "
         f"(pretraining {st['pretraining']:.1f}, frozen features {st['frozen features']:.1f}, finetuning {st['finetuning and evaluation']:.1f}).", '',
         '## Test accuracy (%), mean ± std over seeds', '', R.label_efficiency_table(recs, fractions=fr), '',
         '## Differences, paired by seed', '', R.gains_table(recs, fractions=fr), '',
         '## Pretraining', '', R.pretraining_table(recs), '',
         f"![test accuracy]({Path(path).stem}.png)", '', f"![curves]({Path(path).stem}_curves.png)", '',
         'Settings: `benchmarks/studies.py` (`LE`, `CALIBRATED`); every record carries its finetune settings and its pretraining.']
    missing = recs[0]['run'].get('stages_missing')
    if missing: L += ['', f"**Not run in this report** ({len(missing)} stages): " + ', '.join(missing)]
    return '\n'.join(L) + '\n'

@study('label_efficiency', "GMML and MAE pretraining on Fashion-MNIST, then 1 % and 10 % of the labels: finetune, linear probe and k-NN "
       "against random init and a small ResNet, 3 seeds (full: about 75 min on 2 CPU cores)", ('label_efficiency',))
def label_efficiency(ctx): return _label_efficiency(ctx, False, 'label_efficiency')

@study('label_efficiency_simmim', "the label-efficiency study with SimMIM added (its stages add about 70 min; the others are shared)",
       ('label_efficiency_simmim',))
def label_efficiency_simmim(ctx): return _label_efficiency(ctx, True, 'label_efficiency_simmim')

def _by(recs, method, protocol, f):
    return [r for r in recs if (r['method'], r['protocol']) == (method, protocol) and abs(r['label_fraction'] - f) < 1e-9]

def plot_bars(recs, path, title):
    "Test accuracy per initialisation and protocol, one panel per label fraction: bars (mean ± std over seeds) and the seeds as dots."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fr, methods = sorted({r['label_fraction'] for r in recs}), R.methods(recs)
    fig, axs = plt.subplots(1, len(fr), figsize=(5.2*len(fr), 4), squeeze=False)
    for ax, f in zip(axs[0], fr):
        width, seen = 0.8/len(methods), set()
        for j, init in enumerate(methods):
            for i, p in enumerate(R.PROTOCOLS):
                v = [100*r['test_accuracy'] for r in _by(recs, init, p, f)]
                if not v: continue
                x = i + (j - (len(methods) - 1)/2)*width
                ax.bar(x, statistics.mean(v), width, yerr=statistics.stdev(v) if len(v) > 1 else 0, capsize=3, color=COLORS.get(init, '#444444'),
                       label=None if init in seen else R.label(recs, init))
                seen.add(init)
                ax.scatter([x]*len(v), v, s=6, color='k', zorder=3)
        lo = min(100*r['test_accuracy'] for r in recs if abs(r['label_fraction'] - f) < 1e-9)
        ax.set_ylim(max(0, math.floor(lo/10)*10 - 5), 100)
        ax.set_xticks(range(len(R.PROTOCOLS)), list(R.PROTOCOLS.values()))
        ax.set_title(f"{f:.0%} labels ({round(60000*f):,} images)", fontsize=10); ax.grid(axis='y', alpha=.3)
        ax.set_ylabel('test accuracy (%), mean ± std')
    axs[0][0].legend(loc='upper right', fontsize=8)
    fig.suptitle(title, fontsize=10); fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)

def plot_curves(recs, path):
    "Left: each pretraining's k-NN read-out against its training minutes. Right: the finetunes' training loss per epoch, mean over seeds, per label fraction."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fr = sorted({r['label_fraction'] for r in recs})
    fig, axs = plt.subplots(1, 1 + len(fr), figsize=(4.6*(1 + len(fr)), 3.6))
    for name, p in R.pretrainings(recs).items():
        c = p['knn_curve']
        axs[0].plot([e['train_minutes'] for e in c], [100*e['knn_accuracy'] for e in c], 'o-', ms=3, color=COLORS.get(name), label=R.label(recs, name))
    axs[0].set_xlabel('pretraining minutes (this machine)'); axs[0].set_ylabel('k-NN accuracy (%), held-out training images')
    axs[0].set_title('read-out after every pretraining epoch', fontsize=10); axs[0].legend(fontsize=8); axs[0].grid(alpha=.3)
    for ax, f in zip(axs[1:], fr):
        for init in R.methods(recs):
            cs = [r['loss_curve'] for r in _by(recs, init, 'finetune', f)]
            if cs: ax.plot(range(1, len(cs[0]) + 1), [statistics.mean(v) for v in zip(*cs)], color=COLORS.get(init), label=R.label(recs, init))
        ax.set_xlabel('finetuning epoch'); ax.set_ylabel('training loss (mean over seeds)')
        ax.set_title(f'finetuning at {f:.0%} labels', fontsize=10); ax.grid(alpha=.3); ax.legend(fontsize=7)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


# ---------------------------------------------------------------------------------------------------- follow-ups
LONGER = {'full': ((0.01, 160, 'label_efficiency_longer_1pct'), (0.1, 30, 'label_efficiency_longer'), (0.1, 60, 'label_efficiency_longer_60ep')),
          'quick': ((0.01, 4, 'label_efficiency_longer_1pct'),)}

@study('longer_finetune', "the study's finetunes of random init and GMML run longer (1 %: 160 epochs; 10 %: 30 and 60)",
       tuple(s for _, _, s in LONGER['full']))
def longer_finetune(ctx):
    pre, outs = pretrainings(ctx, ('gmml',)), []
    for f, e, stem in LONGER['quick' if ctx.quick else 'full']:
        rows = []
        for s in le(ctx)['seeds']:
            for init in ('random', 'gmml'):
                short, longer = study_finetune(ctx, pre, init, f, s), study_finetune(ctx, pre, init, f, s, epochs=e)
                if short and longer: rows.append(dict(method=init, seed=s, label_fraction=f, short=short, longer=longer))
        if rows: outs.append(Output(stem, dict(meta=ctx.meta(), rows=rows), lambda p: _titled(
            'Longer finetunes', p, R.longer_finetune_table([p]) + f"\n\nThe label-efficiency study's finetunes (its encoders, labeled subsets, settings and seeds), only longer.")))
    return outs

def _titled(title, path, body) -> str:
    "A record's markdown: title, body, the command and machine, the note, and the stages not run (a --report of an unfinished study)."
    meta = R.load(path).get('meta') or {}
    missing = meta.get('stages_missing')
    return (f"# {title}\n\n{body}\n\n{R.meta_line(path)}. {meta.get('note') or ''}\n"
            + (f"\n**Not run in this report** ({len(missing)} stages): {', '.join(missing)}\n" if missing else ''))

def last_quarter_drop(curve) -> float:
    "Relative fall of the epoch loss over the last quarter of training: near 0 means the loss has flattened."
    q = max(1, len(curve)//4)
    return (curve[-q - 1] - curve[-1])/curve[-q - 1]

@study('longer_pretrain', "GMML pretrained twice as long (10 epochs), finetuned as the study (1 %: 80 epochs) and longer (1 %: 160; 10 %: 30 and 60)", ('label_efficiency_longer_pretrain',))
def longer_pretrain(ctx):
    m = le(ctx)
    epochs = 2 if ctx.quick else 10
    pre = pretrainings(ctx, ('gmml',))
    new_cfg = pre_cfg(m, 'gmml', epochs=epochs)
    new = ctx.store.run(new_cfg)
    if new is None or pre['gmml'][1] is None: return []
    runs = [(0.01, m['ft_epochs'][0.01])] + ([(0.01, 160), (0.1, 30), (0.1, 60)] if not ctx.quick else [])
    rows = []
    for f, e in runs:
        acc, curves, seeds = {k: [] for k in ('random', 'gmml', 'new')}, [], []
        for s in m['seeds']:
            a, b = study_finetune(ctx, pre, 'random', f, s, epochs=e), study_finetune(ctx, pre, 'gmml', f, s, epochs=e)
            c = ctx.store.run(ft_cfg(m, 'gmml', new_cfg, f, s, epochs=e))
            if a and b and c:
                acc['random'].append(a['test_accuracy']); acc['gmml'].append(b['test_accuracy']); acc['new'].append(c['test_accuracy'])
                curves.append(last_quarter_drop(c['loss_curve'])); seeds.append(s)
        if acc['new']:
            rows.append(dict(label_fraction=f, finetune_epochs=e, seeds=seeds, test_accuracy=acc,
                             gain_over_random=[n - r for n, r in zip(acc['new'], acc['random'])],
                             gain_over_study_gmml=[n - g for n, g in zip(acc['new'], acc['gmml'])], loss_fall_last_quarter=curves))
    res = dict(meta=ctx.meta(), pretraining=_pre_info(new), study_pretraining=_pre_info(pre['gmml'][1]), finetunes=rows)
    return [Output('label_efficiency_longer_pretrain', res, lambda p: _titled(
        'Longer GMML pretraining', p, R.longer_pretrain_table(p) + f"\n\nGMML pretrained {epochs} epochs instead of the study's "
        f"{m['pretrain_epochs']}, everything else as in the study; finetuned on the study's labeled subsets."))]

@study('wider_encoder', "GMML with a 192-d ViT-Tiny at about the study's pretraining time (2 epochs), finetuned at 1 % against the study's ViT-Nano",
       ('wider_encoder',))
def wider_encoder(ctx):
    m, arch = le(ctx), 'tiny_28'
    pre = pretrainings(ctx, ('gmml',))
    wide_cfg = pre_cfg(m, 'gmml', epochs=1 if ctx.quick else 2, arch=arch)
    wide = ctx.store.run(wide_cfg)
    if wide is None or pre['gmml'][1] is None: return []
    fts = []
    for s in m['seeds']:
        for init in ('random', 'gmml'):
            nano = study_finetune(ctx, pre, init, 0.01, s)
            r = ctx.store.run(ft_cfg(m, init, wide_cfg if init == 'gmml' else None, 0.01, s, arch=arch))
            if r and nano: fts.append(dict(method=init, seed=s, arch=arch, test_accuracy=r['test_accuracy'], params=r['params'],
                                           train_minutes=r['train_minutes'], study_test_accuracy=nano['test_accuracy']))
    res = dict(meta=ctx.meta(arch=arch), pretraining=_pre_info(wide), study_pretraining=_pre_info(pre['gmml'][1]), finetunes=fts)
    return [Output('wider_encoder', res, lambda p: _titled('A wider encoder at about equal pretraining time', p, R.wider_encoder_table(p)))]

RECIPE_VARIANTS = {'study': {}, 'drop_path': dict(drop_path=0.1), 'drloc': dict(drloc=0.1), 'me': dict(me=0.2), 'drloc_me': dict(drloc=0.1, me=0.2)}
# DRLoc is a remedy proposed for ViTs trained from scratch on small data, so random init is tried with it too
RECIPE_PLAN = {'full': {'gmml': list(RECIPE_VARIANTS), 'random': ['study', 'drloc']}, 'quick': {'gmml': ['study', 'drloc'], 'random': ['study']}}

def choose(acc: dict, plan: dict) -> dict:
    "Per initialisation, the variant with the highest mean held-out accuracy (`acc[(init, variant)]`: a list over seeds); ties go to the earlier, simpler one."
    return {init: max(vs, key=lambda v: (statistics.mean(acc[(init, v)]), -vs.index(v))) for init, vs in plan.items() if all(acc.get((init, v)) for v in vs)}

@study('finetune_recipe', "one change at a time to the 1 % finetune (stochastic depth, DRLoc, ME, both), chosen on held-out training images, then tested once",
       ('finetune_recipe',))
def finetune_recipe(ctx):
    m, plan = le(ctx), RECIPE_PLAN['quick' if ctx.quick else 'full']
    pre = pretrainings(ctx, ('gmml',))
    sel, acc = [], {}
    for s in m['seeds']:
        for init, vs in plan.items():
            for v in vs:
                r = study_finetune(ctx, pre, init, 0.01, s, extra=RECIPE_VARIANTS[v], evaluate='heldout')
                if r is None: continue
                sel.append(dict(method=init, variant=v, seed=s, heldout_accuracy=r['test_accuracy'], train_minutes=r['train_minutes']))
                acc.setdefault((init, v), []).append(r['test_accuracy'])
    best = choose(acc, plan)
    test = []
    for init, v in best.items():
        for s in m['seeds']:
            r = study_finetune(ctx, pre, init, 0.01, s, extra=RECIPE_VARIANTS[v])
            if r: test.append(dict(method=init, variant=v, seed=s, test_accuracy=r['test_accuracy'], train_minutes=r['train_minutes']))
    if not sel: return []
    res = dict(meta=ctx.meta(heldout_images=m['n_query']), variants=RECIPE_VARIANTS, plan=plan, chosen=best, selection=sel, test=test)
    def md(p):
        t = R.finetune_recipe_test(p)
        return _titled('The finetune recipe at 1 % of the labels', p, R.finetune_recipe_table(p) + '\n\nChosen variants on the test set: '
                       + '; '.join(f"{R._BASE_NAMES[k]} {R.pm(v)} %" for k, v in t.items()) + '.')
    return [Output('finetune_recipe', res, md)]


# The finetuning schedule: finetune@v1 keeps fastai's one cycle without crops or flips (every committed finetune used it);
# the papers' protocols warm up linearly, decay along a cosine with β₁ constant, and crop and flip (fidelity page).
SCHEDULE = {'full': dict(images=20000, pretrain_epochs=2, ft_epochs=40, seeds=(0, 1, 2), n_query=2000, n_test=None, n_bank=2000),
            'quick': dict(images=1200, pretrain_epochs=1, ft_epochs=2, seeds=(0,), n_query=250, n_test=500, n_bank=250)}
SCHEDULE_VARIANTS = {'finetune@v1': {},
                     "papers' schedule and views": dict(schedule='warmup_cosine', warmup=0.1, lr_end=0.01, crop_scale=(0.8, 1.0), flip=0.5)}

@study('finetune_schedule', "finetune@v1's one cycle without crops against the papers' warm-up + cosine with crops and flips, "
       "at 1 % of the labels, on held-out training images", ('finetune_schedule',))
def finetune_schedule(ctx):
    m = SCHEDULE['quick' if ctx.quick else 'full']
    pc = pre_cfg(m, 'gmml')
    pre = {'gmml': (pc, ctx.store.run(pc))}
    rows = []
    for s in m['seeds']:
        for init in ('random', 'gmml'):
            for name, extra in SCHEDULE_VARIANTS.items():
                cfg = ft_cfg(m, init, pc if init == 'gmml' else None, 0.01, s, epochs=m['ft_epochs'], extra=extra, evaluate='heldout')
                r = ctx.store.run(cfg)
                if r is not None: rows.append(dict(method=init, variant=name, seed=s, heldout_accuracy=r['test_accuracy'], train_minutes=r['train_minutes']))
    if not rows: return []
    res = dict(meta=ctx.meta(heldout_images=m['n_query']), settings=dict(m, seeds=list(m['seeds'])), variants=SCHEDULE_VARIANTS, records=rows)
    return [Output('finetune_schedule', res, lambda p: _titled('The finetuning schedule at 1 % of the labels', p, schedule_table(p)))]

def schedule_table(path) -> str:
    "The schedule study as a table: held-out accuracy per initialisation and variant (mean ± std over seeds), and the paired difference."
    d = R.load(path)
    names, inits = list(d['variants']), list(dict.fromkeys(r['method'] for r in d['records']))
    acc = lambda i, v: [r['heldout_accuracy'] for r in sorted(d['records'], key=lambda r: r['seed']) if r['method'] == i and r['variant'] == v]
    rows = [[R._BASE_NAMES.get(i, i), *[R.pm(acc(i, v)) for v in names],
             R.pm([b - a for a, b in zip(acc(i, names[0]), acc(i, names[1]))], signed=True)] for i in inits]
    st = d['settings']
    return (R.md_table(['initialisation', *[f'{v}: held-out accuracy (%)' for v in names], 'difference (points, paired by seed)'], rows)
            + f"\n\nGMML pretrained {st['pretrain_epochs']} epochs on {st['images']:,} images; finetuned {st['ft_epochs']} epochs on 1 % of the labels "
            f"(the study's calibrated finetune@v1 settings, TrivialAugment); accuracy on {st['n_query']:,} held-out training images, n = {len(st['seeds'])} seeds. "
            "The test set is not used.")

# ---------------------------------------------------------------------------------------------------- held-out read-out sweeps
SWEEP = {'full': dict(images=20000, pretrain_epochs=3, n_bank=10000, n_query=2000, seeds=(0, 1)),
         'quick': dict(images=1024, pretrain_epochs=1, n_bank=1000, n_query=500, seeds=(0,))}
FIELDS = ('knn_accuracy', 'linear_accuracy', 'step_ms', 'encoder_params', 'decoder_params', 'train_minutes', 'train_loss_last_smoothed')

def sweep(ctx, stem: str, title: str, variants: dict):
    "Pretrain every variant (name -> `pre_cfg` arguments) for every seed and read it out on the held-out training images (k-NN and linear probe); the test set is not used."
    m, recs = SWEEP['quick' if ctx.quick else 'full'], []
    for s in m['seeds']:
        for name, kw in variants.items():
            r = ctx.store.run(pre_cfg(m, 'gmml', seed=s, **kw))
            if r: recs.append(dict(variant=name, seed=s, **{k: r.get(k) for k in FIELDS}))
    if not recs: return []
    res = dict(meta=ctx.meta(), settings=dict(m, seeds=list(m['seeds']), arch=ARCH, depth=DEPTH, size=SIZE),
               variants={k: {a: b for a, b in v.items()} for k, v in variants.items()}, records=recs)
    return [Output(stem, res, lambda p: _titled(title, p, sweep_table(p) + f"\n\nPretrained on {m['images']:,} unlabeled training images for "
                   f"{m['pretrain_epochs']} epochs; k-NN (k = 20) and a linear probe fitted on {m['n_bank']:,} labeled training images and scored on "
                   f"{m['n_query']:,} held-out training images. The test set is not used."))]

def sweep_table(path) -> str:
    "A sweep record as a table: per variant the read-outs per seed and their mean, the weights and the step time relative to the first variant."
    d = R.load(path)
    names = list(dict.fromkeys(r['variant'] for r in d['records']))
    of = lambda n, k: [r[k] for r in d['records'] if r['variant'] == n]
    base = statistics.mean(of(names[0], 'step_ms'))
    rows = [[n, f"{of(n, 'encoder_params')[0]:,} + {of(n, 'decoder_params')[0]:,}", ' / '.join(R.pct(v) for v in of(n, 'knn_accuracy')), R.pm(of(n, 'knn_accuracy')),
             ' / '.join(R.pct(v) for v in of(n, 'linear_accuracy')), R.pm(of(n, 'linear_accuracy')), f"{statistics.mean(of(n, 'step_ms')):.0f}",
             f"{statistics.mean(of(n, 'step_ms'))/base:.2f}×"] for n in names]
    return R.md_table(['variant', 'weights (encoder + rest)', 'k-NN (%) per seed', 'k-NN', 'linear (%) per seed', 'linear', 'step (ms)', 'step / first'], rows)

@study('decoder', "how wide GMML's light decoder should be (4× the encoder, 1×, linear), read out on held-out training images", ('decoder',))
def decoder(ctx):
    return sweep(ctx, 'decoder', "GMML's decoder width", {'hidden 4×D = 384, 2 convs': dict(decoder=dict(hidden_dim=384, depth=2)),
                                                          'hidden D = 96, 2 convs (the default)': {},
                                                          'linear (no hidden layer)': dict(decoder=dict(depth=0))})

@study('encoder_width', "GMML with ViT-Nano (96-d) and ViT-Tiny (192-d) at equal epochs, read out on held-out training images", ('encoder_width',))
def encoder_width(ctx):
    return sweep(ctx, 'encoder_width', "GMML's encoder width", {'ViT-Nano (96-d)': dict(arch='nano_28'), 'ViT-Tiny (192-d)': dict(arch='tiny_28')})

@study('recipe', "gmml@v1 with one part of its recipe taken away at a time (augmentation; the published optimisation) or the paper's corruption budget",
       ('recipe',))
def recipe(ctx):
    return sweep(ctx, 'recipe', 'The pretraining recipe, one change at a time', {
        'gmml@v1': {}, 'without augmentation': dict(overrides=dict(augment=False)),
        'without the published optimisation (wd 0.05, no clipping, no drop-path)': dict(overrides=dict(wd=0.05, wd_end=None, clip=None, drop_path=0.0)),
        "with the paper's per-image corruption budget (gmml_paper)": dict(overrides=dict(corruption='gmml_paper'))})


# ---------------------------------------------------------------------------------------------------- ablations
ABLATIONS = {'full': dict(arch='nano_28', depth=4, images=4096, bs=128, epochs=4, lr=1.5e-3, n_bank=1000, n_query=2000,
                          finetune_epochs=12, finetune_lr=2e-3, seeds=(0, 1, 2), repeat=('replace',)),
             'quick': dict(arch='nano_28', depth=4, images=1024, bs=64, epochs=1, lr=1e-3, n_bank=500, n_query=1000,
                           finetune_epochs=4, finetune_lr=2e-3, seeds=(0,), repeat=())}
DEFAULT_RATIO = 0.7          # every recipe of gmml_fast.corruption.CORRUPTIONS hides 70 % in total, as in the paper's Fig. 5
ALIENS = ('zeros', 'noise', 'replace', 'comb1', 'comb2', 'gmml')
RATIOS, QUICK_RATIOS, RATIO_RECIPE = (0.1, 0.3, 0.5, 0.7, 0.9), (0.1, 0.7, 0.9), 'replace'
TITLES = {'alien': 'alien concept (Fig. 5)', 'ratio': 'corruption ratio (Fig. 6)', 'blocks': 'fused blocks (Fig. 7)'}

def fused_block_settings(depth: int) -> dict[str, tuple[int, ...]]:
    "The GMML paper's six fusion settings for 12 blocks (Fig. 7 a-f) rescaled to `depth` blocks (block·depth/12, rounded); coinciding settings merged."
    paper = {'a': (2, 4, 6, 8, 10, 12), 'b': (4, 6, 8, 10, 12), 'c': (6, 8, 10, 12), 'd': (8, 10, 12), 'e': (10, 12), 'f': (12,)}
    out = {}
    for k, bl in paper.items():
        scaled = tuple(sorted({max(1, round(depth*b/12)) for b in bl}))
        prev = next((n for n, v in out.items() if v == scaled), None)
        if prev is None: out[k] = scaled
        else: out[prev + '/' + k] = out.pop(prev)
    return out

def ablation_plan(p: dict, quick: bool = False) -> dict[str, list[tuple[str, dict]]]:
    "For each ablation, its (label, GMML recipe overrides) in plot order; a configuration shared by two ablations is one stage."
    from gmml_fast.gmml import default_blocks
    fb = fused_block_settings(p['depth'])
    if quick: fb = {k: v for k, v in fb.items() if v in (tuple(range(1, p['depth'] + 1)), default_blocks(p['depth']), (p['depth'],))}
    return {'alien': [(a, dict(corruption=a)) for a in ALIENS],
            # one alien concept, so that the share actually corrupted is the nominal ratio (steps of a mixed recipe overlap)
            'ratio': [(f'{r:.1f}', dict(corruption=RATIO_RECIPE, **({} if r == DEFAULT_RATIO else dict(ratio=r)))) for r in (QUICK_RATIOS if quick else RATIOS)],
            'blocks': [(f"{k}: {'-'.join(map(str, v))}", {} if v == default_blocks(p['depth']) else dict(blocks=v)) for k, v in fb.items()]}

def _ablation_pre(p, overrides, seed):
    m = dict(images=p['images'], pretrain_epochs=p['epochs'], n_bank=p['n_bank'], n_query=p['n_query'])
    return pre_cfg(m, 'gmml', arch=p['arch'], depth=p['depth'], bs=p['bs'], seed=seed, overrides=dict(lr=p['lr'], **overrides))

def _variant(rec, overrides, seed):
    return dict(corruption=overrides.get('corruption', 'gmml'), ratio=overrides.get('ratio', DEFAULT_RATIO), blocks=overrides.get('blocks'), seed=seed,
                probe_acc=rec['linear_accuracy'], knn_acc=rec['knn_accuracy'], coverage=rec['coverage'], recon_l1_before=rec['valid_loss_before'],
                recon_l1=rec['valid_loss'], steps=rec['steps'])

def run_ablations(store: Store, quick: bool = False, p: dict | None = None) -> dict:
    """The default variant and random init for every seed (linear probe + finetune), then every variant of the three ablations
    for the first seed (linear probe); every read-out on held-out training images. Returns what `tables`, `seed_summary` and `plot` show."""
    p = dict(ABLATIONS['quick' if quick else 'full'], **(p or {}))
    plan = ablation_plan(p, quick)
    def pre(overrides, seed): return store.run(_ablation_pre(p, overrides, seed))
    def fine(pre_c, seed):
        m = dict(n_test=None, n_query=p['n_query'], ft_epochs={})
        c = ft_cfg(m, 'gmml' if pre_c else 'random', pre_c, p['n_bank']/60000, seed, epochs=p['finetune_epochs'], evaluate='heldout',
                   arch=p['arch']).replace(depth=p['depth'], overrides=dict(lr=p['finetune_lr'], pool='avg'))
        return store.run(c)
    default, rnd = [], []
    for s in p['seeds']:
        c = _ablation_pre(p, {}, s)
        r, f = store.run(c), fine(c, s)
        if r and f: default.append(dict(_variant(r, {}, s), finetune_acc=f['test_accuracy']))
        ro, f = store.run(ReadoutStage(arch=p['arch'], depth=p['depth'], size=SIZE, n_bank=p['n_bank'], n_query=p['n_query'], seed=s)), fine(None, s)
        if ro and f: rnd.append(dict(seed=s, probe_acc=ro['linear_accuracy'], knn_acc=ro['knn_accuracy'], finetune_acc=f['test_accuracy']))
    abl = {name: [dict(label=lbl, **_variant(r, kw, p['seeds'][0])) for lbl, kw in vs if (r := pre(kw, p['seeds'][0]))] for name, vs in plan.items()}
    reps = {a: [_variant(r, dict(corruption=a), s) for s in p['seeds'] if (r := pre(dict(corruption=a), s))] for a in p.get('repeat', ())}
    return dict(protocol={k: list(v) if isinstance(v, tuple) else v for k, v in p.items()}, default_seeds=default, random_init=rnd, ablations=abl, repeats=reps)

@functools.lru_cache(maxsize=4)
def _coverage_images(n: int):
    from gmml_fast.files import load_fashion_mnist
    from benchmarks.stages import normalised
    return normalised(load_fashion_mnist('train')[0][:n], SIZE)

def measured_coverage(corruption='gmml', ratio=None, n: int = 256) -> float:
    "Mean share of pixels a corruption recipe actually hides on `n` training images (steps may overlap; 'gmml' adds a blur block of its own)."
    from gmml_fast.corruption import gmml_corrupt
    from gmml_fast.masking import mask_coverage
    return float(mask_coverage(gmml_corrupt(_coverage_images(n), corruption, ratio=ratio, seed=123)[1]).mean())

def tables(res: dict) -> dict:
    "One pandas DataFrame per ablation, a row per variant: linear-probe and k-NN accuracy on held-out training images, measured coverage, reconstruction L1 after pretraining."
    import pandas as pd
    cols = [c for c in ('probe_acc', 'knn_acc', 'coverage', 'recon_l1') if all(c in r for rows in res['ablations'].values() for r in rows)]
    return {name: pd.DataFrame(rows).set_index('label')[cols].round(4) for name, rows in res['ablations'].items() if rows}

def seed_summary(res: dict):
    "Per seed: probe and finetuned accuracy of the default GMML variant, of the repeated variants and of random init, with mean and std over seeds."
    import pandas as pd
    runs = [('GMML default', res['default_seeds'])] + [(f'GMML {a}', v) for a, v in res.get('repeats', {}).items()] + [('random init', res['random_init'])]
    # by seed: a --report of an unfinished study may have fewer seeds of one run than of another
    df = pd.DataFrame({(name, m): pd.Series({f"seed {r['seed']}": r[m] for r in rows}) for name, rows in runs for m in ('probe_acc', 'finetune_acc')
                       if rows and m in rows[0]}).reindex([f"seed {r['seed']}" for r in res['default_seeds']])
    if len(df) > 1: df.loc['mean'], df.loc['std'] = df.mean(), df.iloc[:len(res['default_seeds'])].std(ddof=0)
    return df.round(4)

def plot(res: dict, title: str | None = None):
    """Three panels of linear-probe accuracy, one per ablation (error bars: the std of the default variant over seeds; dashed: random
    init), and a fourth: finetuned and probe accuracy of the default variant and of random init, per seed."""
    import numpy as np
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
    axs[0].set_ylabel('linear-probe accuracy'); axs[0].legend(fontsize=8)
    ax = axs[3]
    for i, key in enumerate(('random_init', 'default_seeds')):
        for m, c in (('probe_acc', 'C0'), ('finetune_acc', 'C1')):
            v = [r[m] for r in res[key]]
            ax.plot(np.full(len(v), i) + (0.08 if m == 'finetune_acc' else -0.08), v, 'o', color=c, alpha=0.7,
                    label=('finetuned' if m == 'finetune_acc' else 'linear probe') if i == 0 else None)
    ax.set_xticks([0, 1], ['random\ninit', 'GMML\ndefault']); ax.set_xlim(-0.5, 1.5)
    ax.set_title('does pretraining help? (all seeds)', fontsize=10); ax.grid(alpha=0.3); ax.legend(fontsize=8)
    if title: fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig

def load_results(path=R.RESULTS/'ablations.json') -> dict | None:
    "The committed ablation record, or None when it was never written."
    path = Path(path)
    return R.load(path) if path.exists() else None

def _df_md(df) -> str:
    return R.md_table([df.index.name or '', *map(str, df.columns)], [[i, *(f'{v:.4f}' if isinstance(v, float) else v for v in r)] for i, r in zip(df.index, df.values.tolist())])

@study('ablations', "GMML's three ablations in miniature (alien concept, corruption ratio, fused blocks; the paper's Figs. 5-7), read out on held-out training images",
       ('ablations',))
def ablations(ctx):
    res = run_ablations(ctx.store, ctx.quick)
    if not res['default_seeds']: return []
    res['meta'] = ctx.meta()
    def md(path):
        d = R.load(path)
        body = '\n\n'.join(f"## {TITLES[n]}\n\n{_df_md(t)}" for n, t in tables(d).items())
        ss = seed_summary(d); ss.columns = [f'{a} {b}' for a, b in ss.columns]
        return _titled('GMML ablations in miniature', path, body + '\n\n## The default variant and random init over seeds\n\n' + _df_md(ss))
    return [Output('ablations', res, md, {'.png': lambda p, res=res: plot(res, title='GMML ablations in miniature').savefig(p, dpi=110, bbox_inches='tight')})]


# ---------------------------------------------------------------------------------------------------- speed and memory
def code_key() -> str:
    """The part of a measurement's config that says which code it measured: a timing or a count read back from the state
    folder must have been measured on this commit (a '+' marks uncommitted changes, which make it unrepeatable)."""
    from benchmarks.stages import git_state
    g = git_state()
    return f"{g['commit'] or 'no git'}{'+' if g['dirty'] else ''}"

def machine_key() -> str:
    "The part of a measurement's config that says where it ran: timings and memory are not shared between machines."
    from benchmarks.stages import machine
    m = machine()
    return f"{m['cpu']}, {m['torch_threads']} threads, torch {m['torch']}, GPU {m['gpu']}"

# The throughput stage's images/s keys (stages.throughput), by a stable id: the ratios name their steps by these keys and
# are themselves named by ids, so that a ratio's display label can change without breaking anything.
TP_STEPS = {'corrupt_batched': 'gmml_corrupt, batched (256×3×32×32)', 'corrupt_loop': 'gmml_corrupt, per-image loop (256×3×32×32)',
            'gmml_tiny': 'GMML step (fastai)', 'gmml_tiny_raw': 'GMML step (raw PyTorch loop)',
            'mae_192x4_tiny': 'MAE step, decoder 192-d × 4 (fastai)', 'mae_128x1_tiny': 'MAE step, decoder 128-d × 1 (fastai)',
            'ce_tiny': 'finetune step, CE (fastai)', 'ce_drloc_me_tiny': 'finetune step, CE + DRLoc + ME (fastai)',
            **{f'{i}_nano_{p}': f'{n} step, {NANO}, {p} (fastai)' for i, n in (('gmml', 'GMML'), ('mae', 'MAE'), ('simmim', 'SimMIM'), ('ce', 'finetune'))
               for p in ('float32', 'bf16', 'compiled')}}
GMML_CE_TARGET = 1.1       # the project's bound on GMML step time / classification (CE) step time

def compute_ratios(rows: dict) -> list[dict]:
    """Every ratio of the throughput record, from its measured images/s `rows` alone (each of two numbers measured in the same run).

    One direction and one unit for all: `time_ratio` is the time of the numerator over the time of the denominator, so
    above 1 the numerator is slower. A row: a stable snake_case `id`; a display `label`; `numerator` and `denominator`,
    the `rows` keys of the two measured steps; their names in a sentence (`numerator_name`, `denominator_name`); `kind`,
    'comparison' (two steps, the same number of images each) or 'overhead' (the k-NN monitor's read-out against one
    epoch of the default pretraining job: `numerator_images` and `denominator_images` say how many images each is);
    `time_ratio`; and where the project set one, `target` (an upper bound on `time_ratio`) and `met`."""
    from gmml_fast.config import PretrainConfig
    out = []
    def ratio(id, label, num, den, names, target=None, images=None):
        n_num, n_den = images or (1, 1)
        r = dict(id=id, label=label, numerator=TP_STEPS.get(num, num), denominator=TP_STEPS.get(den, den),
                 numerator_name=names[0], denominator_name=names[1], kind='overhead' if images else 'comparison')
        if images: r.update(numerator_images=n_num, denominator_images=n_den)
        r['time_ratio'] = (n_num/rows[r['numerator']])/(n_den/rows[r['denominator']])
        if target is not None: r.update(target=target, met=bool(r['time_ratio'] <= target))
        out.append(r)
    ratio('corrupt_batched_vs_loop', 'batched corruption time / per-image loop time (gmml_corrupt, 256×3×32×32)', 'corrupt_batched', 'corrupt_loop',
          ('batched gmml_corrupt', 'the per-image loop'))
    for d in ('192x4', '128x1'):
        w = d.replace('x', '-d × ')
        ratio(f'mae_{d}_vs_gmml_tiny', f'MAE step time (decoder {w}) / GMML step time, ViT-Tiny', f'mae_{d}_tiny', 'gmml_tiny',
              (f'the MAE step (decoder {w})', 'the GMML step'))
    for s, name in (('tiny', 'ViT-Tiny'), ('nano', 'ViT-Nano/6')):
        ratio(f'gmml_vs_ce_{s}', f'GMML step time / CE step time, {name}', 'gmml_tiny' if s == 'tiny' else 'gmml_nano_float32',
              'ce_tiny' if s == 'tiny' else 'ce_nano_float32', ('the GMML step', 'the classification (CE) step'), target=GMML_CE_TARGET)
    ratio('ce_drloc_me_vs_ce_tiny', 'CE + DRLoc + ME step time / CE step time, ViT-Tiny', 'ce_drloc_me_tiny', 'ce_tiny',
          ('the CE + DRLoc + ME step', 'the CE step'))
    ratio('fastai_vs_raw_gmml_tiny', 'GMML step time, fastai / raw PyTorch loop, ViT-Tiny', 'gmml_tiny', 'gmml_tiny_raw',
          ('the fastai GMML step', 'the same step in a raw PyTorch loop'))
    ratio('mae_vs_gmml_nano', 'MAE step time (default decoder) / GMML step time, ViT-Nano/6', 'mae_nano_float32', 'gmml_nano_float32',
          ('the MAE step (default decoder)', 'the GMML step'))
    ratio('simmim_vs_gmml_nano', 'SimMIM step time / GMML step time, ViT-Nano/6', 'simmim_nano_float32', 'gmml_nano_float32',
          ('the SimMIM step', 'the GMML step'))
    for m, name in (('gmml', 'GMML'), ('mae', 'MAE'), ('simmim', 'SimMIM'), ('ce', 'CE')):
        for p in ('bf16', 'compiled'):
            ratio(f'{m}_{p}_vs_float32_nano', f'{name} step time, {p} / float32, ViT-Nano/6', f'{m}_nano_{p}', f'{m}_nano_float32',
                  (f'the {p} {name} step' if p == 'bf16' else f'the compiled {name} step (float32)', f'the float32 {name} step'))
    cli = PretrainConfig()                      # the monitor's read-out, after every epoch of the default pretraining job
    n_bank, n_query, n_epoch = cli.monitor, cli.monitor//4, round(60000*cli.fraction)
    for m, name in (('knn', 'k-NN'), ('knn_linear', 'k-NN + linear probe')):
        ratio(f'{m}_monitor_vs_epoch_nano', f'{name} monitor time / pretraining epoch time, default job, ViT-Nano/6',
              f'{name} monitor read-out ({n_bank:,} + {n_query} images)', 'gmml_nano_float32',
              (f'the {name} monitor read-out ({n_bank + n_query:,} images)', f'one epoch of the default pretraining job ({n_epoch:,} images at the GMML ViT-Nano/6 step rate)'),
              images=(n_bank + n_query, n_epoch))
    return out

TP_NOTE = ("Every ratio is time over time (step time over step time; for the monitors, read-out time over one epoch's time): "
           'above 1, the first step is slower. '
           'On a CPU, bf16 is emulated; bf16 and compilation are aimed at GPUs (`benchmarks/gpu.py`).')

def throughput_md(path) -> str:
    "The throughput record's markdown: the command and setup, the images/s of each step by setting, and the step-time ratios."
    d = R.load(path)
    return (f"# Throughput\n\n`{d['command']}` on {d['machine']} ({d['wall_s']/60:.1f} min). {d['setup']}.\n\n"
            + R.throughput_table(path) + '\n\n' + R.ratios_table(path) + f'\n\n{TP_NOTE}\n'
            + (f"\n{d['ratios_migrated']}\n" if d.get('ratios_migrated') else ''))

@study('throughput', "images/s of every step the project compares, and their step-time ratios, measured in one process (full: about 10 min on 2 CPU cores)", ('throughput',))
def throughput(ctx):
    r = ctx.store.run(ThroughputStage(batches=4, epochs=2, repeats=2, machine=machine_key(), code=code_key()) if ctx.quick else
                      ThroughputStage(batches=8, epochs=3, repeats=5, machine=machine_key(), code=code_key()))
    if r is None: return []
    meta = ctx.meta()
    res = dict(meta=meta, machine=R.machine_line(meta['machine']), command=meta['command'],
               setup=r['setup'], images_per_s=r['images_per_s'], ratios=compute_ratios(r['images_per_s']), wall_s=r['wall_s'])
    return [Output('throughput', res, throughput_md)]

@study('host', "what one training batch asks of the device, per method: ATen ops, kernel launches, host syncs, host-to-device literals and host ms (about 12 min on 2 CPU cores)", ('host',))
def host(ctx):
    quick = dict(short=4, long=8, repeats=1)
    full = {'tiny': dict(short=20, long=60, repeats=3), 'nano': dict(short=10, long=30, repeats=3)}   # nano: 0.3 s a step
    recs = {k: ctx.store.run(HostStage(setting=k, machine=machine_key(), code=code_key(), **(quick if ctx.quick else full[k]))) for k in ('tiny', 'nano')}
    if any(r is None for r in recs.values()): return []
    meta = ctx.meta()
    res = dict(meta=meta, command=meta['command'], machine=R.machine_line(meta['machine']), settings=recs)
    return [Output('host', res, lambda p: '# Host work per training batch\n\n' + R.host_table(p) + '\n')]


MEMORY_CONFIGS = [(m, arch, size, bs) for arch, size, bs in (('tiny_32', 32, 64), ('small_224', 224, 8)) for m in ('gmml', 'mae', 'finetune')]

@study('memory', "peak memory of one training step (GMML, MAE, finetuning with DRLoc + ME) at ViT-Tiny/32 px and ViT-S/224 px, each in a fresh process",
       ('memory',))
def memory(ctx):
    cfgs = MEMORY_CONFIGS[:1] if ctx.quick else MEMORY_CONFIGS
    rows = [dict(method=m, arch=a, size=s, bs=b, **r) for m, a, s, b in cfgs
            if (r := ctx.store.run(MemoryStage(method=m, arch=a, size=s, bs=b, precision='32', machine=machine_key(), code=code_key())))]
    if not rows: return []
    meta = ctx.meta()
    res = dict(meta=meta, command=meta['command'], device=rows[0]['device'], precision='32', torch=meta['machine']['torch'], rows=rows)
    def md(p):
        d = R.load(p)
        kind = 'CUDA peak allocation' if d['device'] != 'CPU' else 'growth of the peak resident memory (RSS)'
        return (f"# Memory of a training step\n\n`{d['command']}` on {d['device']}, torch {d['torch']}: per configuration, in a fresh process, the "
                f"{kind} over three training steps from just before the first (the optimizer's buffers are created in the first and counted).\n\n"
                + R.md_table(['step', 'encoder', 'images', 'batch', 'step memory (MiB)', 'process peak (MiB)'],
                             [[r['method'] + (' (CE + DRLoc + ME)' if r['method'] == 'finetune' else ''), r['arch'], f"{r['size']} px", r['bs'],
                               f"{r['step_mib']:.0f}", f"{r['peak_mib']:.0f}"] for r in d['rows']]) + '\n')
    return [Output('memory', res, md)]
