"""Longer GMML pretraining with the library's current defaults: does twice the label-efficiency study's pretraining
budget, with the decoder sized to the encoder (the library's default since bench_decoder.py), move GMML towards the
study's targets (>= 80 % at 1 % labels, >= +12 points over random init, >= 87 % at 10 %)?

It reuses a finished label-efficiency state folder (`bench_label_efficiency.py --state DIR`): the study's `pretrain`,
`frozen_records` and `finetune` functions, its labeled subsets, settings, seeds and test set, and its random-init
records to pair with. What changes: GMML pretrains `--epochs` epochs (the study: 5) with the library's default decoder
(the study: the 4x wider one it was measured with). The 1 % finetunes are the study's (80 epochs); the 10 % finetunes
run `--ft_epochs_10` epochs, compared with bench_longer_finetune.py's records of the same length (random init and the
study's GMML encoder). `--ft_epochs_1 80 160` adds 1 % finetunes of 160 epochs, compared with bench_longer_finetune.py's
1 % records of that length. Every stage saves its record in the state folder as it finishes (an interrupted run continues),
and the test set is touched once per evaluation.

    python benchmarks/bench_longer_pretrain.py --state /tmp/gmml_fast_label_efficiency_full [--epochs 10] [--seeds 0 1 2] [--ft_epochs_1 80 160]
"""
import argparse, json, statistics, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_label_efficiency as le
from bench_common import run_meta
from bench_longer_finetune import last_quarter_drop
from gmml_fast.data import load_fashion_mnist, stratified_subset

def mean_std(v):
    "'mean ± std' in percent (just the value for one seed; '—' for none)."
    if not v: return '—'
    return f"{100*statistics.mean(v):.1f} ± {100*statistics.stdev(v):.1f}" if len(v) > 1 else f"{100*v[0]:.1f}"

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--state', required=True, help='a finished label-efficiency state folder (full mode)')
    ap.add_argument('--epochs', type=int, default=10, help='GMML pretraining epochs (the study: 5)')
    ap.add_argument('--ft_epochs_1', type=int, nargs='+', default=[80],
                    help='finetuning epochs at 1 %% labels, one finetune per value (the study: 80; bench_longer_finetune: 160)')
    ap.add_argument('--ft_epochs_10', type=int, nargs='+', default=[30],
                    help='finetuning epochs at 10 %% labels, one finetune per value (the study: 10; bench_longer_finetune: 30)')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--overwrite', action='store_true')
    ap.add_argument('--note', default='', help='a sentence for the report (e.g. which call ran which stages)')
    a = ap.parse_args(argv)
    state, out = Path(a.state), Path(__file__).parent/'results'/'label_efficiency_longer_pretrain'
    if a.epochs < 1: sys.exit(f"error: --epochs must be >= 1, got {a.epochs}")
    if min(a.ft_epochs_10) < 1: sys.exit(f"error: --ft_epochs_10 must each be >= 1, got {a.ft_epochs_10}")
    if min(a.ft_epochs_1) < 1: sys.exit(f"error: --ft_epochs_1 must each be >= 1, got {a.ft_epochs_1}")
    e1 = le.MODES['full']['ft_epochs'][0.01]                 # the study's 1 % finetune length: its own records
    runs = [(0.01, e) for e in dict.fromkeys(a.ft_epochs_1)] + [(0.1, e) for e in dict.fromkeys(a.ft_epochs_10)]
    need = [state/'pretrain_gmml.json', state/'frozen_random.json', state/'frozen_gmml.json']
    # the records to compare with: the study's (1 %, 80 epochs) and bench_longer_finetune's (any other length)
    before_stem = lambda init, f, e, s: f'finetune_{init}_{f}_{s}.json' if (f, e) == (0.01, e1) else f'longer_finetune_{init}_{f}_{s}_{e}ep.json'
    # the study's and the first length asked for at each fraction must have records to compare with; further lengths are
    # compared where bench_longer_finetune.py has run them ('—' in the report where it has not)
    firsts = [(0.01, a.ft_epochs_1[0]), (0.1, a.ft_epochs_10[0])]
    need += [state/before_stem(i, f, e, s) for f, e in firsts for i in ('random', 'gmml') for s in a.seeds]
    missing = [str(p) for p in need if not p.exists()]
    if missing: sys.exit(f"error: {state} lacks {', '.join(missing)}: run bench_label_efficiency.py and "
                         f"bench_longer_finetune.py (--fraction, --epochs as asked for here) with --state {state} first")
    if out.with_suffix('.json').exists() and not a.overwrite: sys.exit(f"error: {out}.json exists; pass --overwrite to replace it")
    torch.set_num_threads(a.threads)
    cfg = dict(le.MODES['full'])
    t0, name = time.perf_counter(), f'gmml_default_decoder_{a.epochs}ep'
    load = lambda p: json.loads((state/p).read_text())

    pre = le.stage(state/f'pretrain_{name}.json', lambda: le.pretrain(name, 'gmml', a.epochs, cfg, state, le.heldout_split(cfg), library_decoder=True))
    x, y = load_fashion_mnist('train'); xt, yt = load_fashion_mnist('test')
    subsets = {(f, s): stratified_subset(y, f, s) for f in cfg['fractions'] for s in a.seeds}
    frozen = le.stage(state/f'frozen_{name}.json', lambda: le.frozen_records('gmml', le.load_vit(pre['encoder']), cfg, ((x, y), (xt, yt), subsets)))
    encoders = {'gmml': pre['encoder']}            # finetuned with the study's GMML settings (lr, layer decay, pooling)
    ft = {}
    for f, epochs in runs:
        c = dict(cfg, ft_epochs={f: epochs})
        for s in a.seeds:
            stem = f'finetune_{name}_{f}_{s}' if epochs == cfg['ft_epochs'][f] else f'longer_finetune_{name}_{f}_{s}_{epochs}ep'
            ft[(f, epochs, s)] = le.stage(state/f'{stem}.json', lambda: le.finetune('gmml', f, s, c, encoders))

    rows = []
    for f, e in runs:
        have = lambda init: all((state/before_stem(init, f, e, s)).exists() for s in a.seeds)
        acc = {init: [load(before_stem(init, f, e, s))['test_accuracy'] for s in a.seeds] if have(init) else None for init in ('random', 'gmml')}
        acc['new'] = [ft[(f, e, s)]['test_accuracy'] for s in a.seeds]
        diff = lambda other: [n - o for n, o in zip(acc['new'], other)] if other else None
        rows.append(dict(label_fraction=f, finetune_epochs=e, seeds=a.seeds, test_accuracy=acc,
                         gain_over_random=diff(acc['random']), gain_over_study_gmml=diff(acc['gmml']),
                         loss_fall_last_quarter=[last_quarter_drop(ft[(f, e, s)]['loss_curve']) for s in a.seeds]))
    frozen_rows = {}
    for tag, recs in (('random', load('frozen_random.json')['records']), ('gmml', load('frozen_gmml.json')['records']), ('new', frozen['records'])):
        for r in recs:
            if r['seed'] in a.seeds: frozen_rows.setdefault(f"{tag}|{r['protocol']}|{r['label_fraction']}", []).append(r['test_accuracy'])
    study_pre = load('pretrain_gmml.json')
    meta = dict(run_meta('bench_longer_pretrain.py', argv, a.threads), minutes=round((time.perf_counter() - t0)/60, 1), note=a.note)
    stage_minutes = dict(pretraining=pre['minutes'], frozen=frozen['embed_minutes'] + sum(r['minutes'] for r in frozen['records']),
                         finetuning=sum(r['minutes'] for r in ft.values()))
    res = dict(meta=meta, pretraining=pre, study_pretraining={k: v for k, v in study_pre.items() if k != 'encoder'}, finetunes=rows,
               frozen=frozen_rows, stage_minutes=stage_minutes,
               records=[dict(r, pretraining_run=name) for r in list(ft.values()) + frozen['records']])
    out.with_suffix('.json').write_text(json.dumps(res, indent=1))

    curve = lambda p: ', '.join(f"{100*e['knn_accuracy']:.1f}" for e in p['knn_curve'])
    hid = study_pre.get('decoder_hidden', 384)
    L = ["# Longer GMML pretraining with the library's current defaults", '',
         f"The label-efficiency study pretrains GMML for {study_pre['epochs']} epochs with the decoder its results were measured with "
         f"(hidden width {hid}). Here GMML pretrains **{pre['epochs']} epochs** with the library's default decoder (hidden width "
         f"{pre['decoder_hidden']}, the encoder's own), everything else as in the study (encoder, data, batch, lr, schedule, "
         "augmentation, corruption, seed 0), and is then read out and finetuned exactly as the study's GMML row: the same labeled "
         "subsets, finetuning settings and seeds, tested once on the 10,000 test images. The 10 % finetunes run "
         f"{' and '.join(map(str, dict.fromkeys(a.ft_epochs_10)))} epochs; every finetune longer than the study's is compared with "
         "`bench_longer_finetune.py`'s records of that length (— where there are none).", '',
         '## Pretraining', '',
         '| run | epochs | steps | images/s | training minutes | k-NN after every epoch (%, held-out training images) |', '|---|---|---|---|---|---|']
    for lab, p in ((f"study (hidden {hid})", study_pre), (f"this run (hidden {pre['decoder_hidden']})", pre)):
        L.append(f"| {lab} | {p['epochs']} | {p['steps']} | {p['images_per_s']} | {p['train_minutes']} | {curve(p)} |")
    L += ['', '## Test accuracy (%), mean ± std over seeds ' + ', '.join(map(str, a.seeds)), '',
          f"| protocol | label fraction | random init | GMML, study ({study_pre['epochs']} epochs) | GMML, this run ({pre['epochs']} epochs) "
          "| this run − random init (paired, points) | this run − study GMML (paired, points) |", '|---|---|---|---|---|---|---|']
    for r in rows:
        acc = r['test_accuracy']
        L.append(f"| finetune, {r['finetune_epochs']} epochs | {r['label_fraction']:.0%} | {mean_std(acc['random'])} | {mean_std(acc['gmml'])} | "
                 f"**{mean_std(acc['new'])}** | {mean_std(r['gain_over_random'])} | {mean_std(r['gain_over_study_gmml'])} |")
    for p in ('linear', 'knn'):
        for f in cfg['fractions']:
            v = {t: frozen_rows[f"{t}|{p}|{f}"] for t in ('random', 'gmml', 'new')}
            L.append(f"| {'k-NN (k=20)' if p == 'knn' else 'linear probe'} | {f:.0%} | {mean_std(v['random'])} | {mean_std(v['gmml'])} | "
                     f"{mean_std(v['new'])} | {mean_std([n - r for n, r in zip(v['new'], v['random'])])} | "
                     f"{mean_std([n - g for n, g in zip(v['new'], v['gmml'])])} |")
    ok = lambda v, t: 'met' if statistics.mean(v) >= t else 'not met'
    L += ['', '## Against the study\'s targets', '']
    for g in rows:                               # one line per (label fraction, finetune length)
        new, gain = g['test_accuracy']['new'], g['gain_over_random']
        if g['label_fraction'] == 0.01:
            L += [f"- {g['finetune_epochs']} finetuning epochs: GMML at 1 % labels ≥ 80 %: **{ok(new, 0.80)}** ({mean_std(new)} %); "
                  "GMML − random init (the same length) ≥ +12 points (paired): "
                  + (f"**{ok(gain, 0.12)}** ({mean_std(gain)} points)." if gain else "— (no random-init record of that length).")]
        else:
            L += [f"- {g['finetune_epochs']} finetuning epochs: GMML at 10 % labels ≥ 87 %: **{ok(new, 0.87)}** ({mean_std(new)} %)."]
    L += [
          '', 'Training loss fall over the last quarter of the finetuning epochs (near 0: flat): ' + '; '.join(
              f"{r['label_fraction']:.0%}, {r['finetune_epochs']} epochs: " + ', '.join(f"{100*v:.1f} %" for v in r['loss_fall_last_quarter']) for r in rows) + '.',
          '', f"Stage minutes: pretraining {stage_minutes['pretraining']:.1f}, frozen read-outs {stage_minutes['frozen']:.1f}, "
          f"finetuning + testing {stage_minutes['finetuning']:.1f}.",
          '', f"Machine: {meta['machine']}. Command: `{meta['command']}`, commit {meta['commit']}, {meta['date']}, {meta['minutes']} min in this call "
          "(stages finished by an earlier call are not counted again)."] + (['', a.note] if a.note else [])
    out.with_suffix('.md').write_text('\n'.join(L) + '\n')
    print('\n'.join(L))
    return 0

if __name__ == '__main__': sys.exit(main())
