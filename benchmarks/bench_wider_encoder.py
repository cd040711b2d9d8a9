"""A wider encoder at about equal pretraining time: does GMML with a 192-d ViT-Tiny (6 blocks) finetune better at 1 % of
the labels than the label-efficiency study's 96-d ViT-Nano, and does its lead over random initialisation grow?

On held-out training images a ViT-Tiny pretrained with GMML read out 5.3 points better with a linear probe than ViT-Nano at
equal epochs (benchmarks/results/encoder_width.md), at 2.8x the step time. Here ViT-Tiny pretrains with GMML on the same
60,000 unlabeled images with the library's defaults (its decoder as wide as the encoder) for `--epochs` epochs: 2 by
default, about the 15.9 training minutes the study's 5 ViT-Nano epochs took (ViT-Tiny's GMML step: ~1.0 s per 128
images in encoder_width.md). Then the study's 1 % finetune (`bench_label_efficiency.finetune`: same labeled subsets,
seeds, recipe and per-initialisation settings, 80 epochs) for the pretrained ViT-Tiny and a random-init ViT-Tiny, tested
once each on the 10,000 test images; the study's ViT-Nano records are the comparison. Every stage saves its record in
the state folder as it finishes, so an interrupted run continues where it stopped.

    python benchmarks/bench_wider_encoder.py --state /work/le_state/gmml_fast_label_efficiency_full [--epochs 2] [--seeds 0 1 2]
    python benchmarks/bench_wider_encoder.py --state DIR --quick     # smoke test: 1.2k images, 1 epoch, 2 finetuning epochs, seed 0
"""
import argparse, json, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_label_efficiency as le
from bench_common import run_meta
from bench_longer_pretrain import mean_std     # 'mean ± std' in percent

F, INITS = 0.01, ('random', 'gmml')
NAMES = {'random': 'random init', 'gmml': 'GMML'}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--state', required=True, help='a finished label-efficiency state folder (full mode); --quick: any folder')
    ap.add_argument('--arch', default='tiny_28', help="the wider encoder preset (default 'tiny_28': 192-d, 3 heads)")
    ap.add_argument('--epochs', type=int, default=2, help='GMML pretraining epochs of the wider encoder (default 2: about equal time)')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--quick', action='store_true'); ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--overwrite', action='store_true')
    ap.add_argument('--note', default='', help='a sentence for the report (e.g. what else shared the machine)')
    a = ap.parse_args(argv)
    state = Path(a.state)
    if a.epochs < 1: sys.exit(f"error: --epochs must be >= 1, got {a.epochs}")
    if a.arch == le.ARCH: sys.exit(f"error: --arch must differ from the study's encoder ({le.ARCH})")
    seeds = [0] if a.quick else a.seeds
    if not a.quick:
        missing = [f'finetune_{i}_{F}_{s}.json' for i in INITS for s in seeds if not (state/f'finetune_{i}_{F}_{s}.json').exists()]
        if missing: sys.exit(f"error: {state} lacks the study's 1 % finetunes {', '.join(missing)}: run bench_label_efficiency.py --state {state} first")
    out = state/'wider_encoder_quick' if a.quick else Path(__file__).parent/'results'/'wider_encoder'
    if out.with_suffix('.json').exists() and not (a.overwrite or a.quick): sys.exit(f"error: {out}.json exists; pass --overwrite to replace it")
    state.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(a.threads)
    cfg = dict(le.MODES['quick' if a.quick else 'full'])
    cfg['ft_epochs'] = {F: cfg['ft_epochs'][F]}
    epochs = 1 if a.quick else a.epochs
    name, tag = f"gmml_{a.arch}_{epochs}ep", ('quick_' if a.quick else '')
    t0 = time.perf_counter()
    pre = le.stage(state/f'{tag}pretrain_{name}.json',
                   lambda: le.pretrain(f'{tag}{name}', 'gmml', epochs, cfg, state, le.heldout_split(cfg), library_decoder=True, arch=a.arch))
    encoders, ft = {'gmml': pre['encoder']}, {}
    for s in seeds:
        for init in INITS:
            ft[(init, s)] = le.stage(state/f'{tag}wider_finetune_{init}_{a.arch}_{F}_{s}.json',
                                     lambda: le.finetune(init, F, s, cfg, encoders, arch=a.arch))
    study = {} if a.quick else {(i, s): json.loads((state/f'finetune_{i}_{F}_{s}.json').read_text()) for i in INITS for s in seeds}
    study_pre = None if a.quick else json.loads((state/'pretrain_gmml.json').read_text())
    meta = dict(run_meta('bench_wider_encoder.py', argv, a.threads), minutes_this_call=round((time.perf_counter() - t0)/60, 1),
                arch=a.arch, seeds=seeds, note=a.note,
                stage_minutes=round(pre['minutes'] + sum(r['minutes'] for r in ft.values()), 1))
    res = dict(meta=meta, pretraining=pre, study_pretraining=study_pre,
               finetunes=[dict(method=i, seed=s, arch=a.arch, test_accuracy=r['test_accuracy'], params=r['params'],
                               train_minutes=r['train_minutes'],
                               study_test_accuracy=study[(i, s)]['test_accuracy'] if study else None) for (i, s), r in ft.items()])
    out.with_suffix('.json').write_text(json.dumps(res, indent=1))
    md = report(res, ft, study, pre, study_pre, seeds, a.arch)
    out.with_suffix('.md').write_text(md); print(md)
    return 0

def report(res, ft, study, pre, study_pre, seeds, arch):
    m, rows = res['meta'], []
    for i in INITS:
        wide = [ft[(i, s)]['test_accuracy'] for s in seeds]
        nano = [study[(i, s)]['test_accuracy'] for s in seeds] if study else None
        d = mean_std([w - n for w, n in zip(wide, nano)]) if nano else '—'
        rows.append(f"| {NAMES[i]} | {mean_std(nano) if nano else '—'} | {mean_std(wide)} ({' / '.join(f'{100*w:.1f}' for w in wide)}) | {d} |")
    gap = lambda rec: [rec[('gmml', s)]['test_accuracy'] - rec[('random', s)]['test_accuracy'] for s in seeds]
    knn = lambda p: f"{100*p['knn_curve'][-1]['knn_accuracy']:.1f}"
    pre_rows = [f"| {arch} (this run) | {pre['epochs']} | {pre['train_minutes']:.1f} | {pre['images_per_s']:.0f} | {knn(pre)} |"]
    if study_pre: pre_rows.insert(0, f"| {le.ARCH} (the study) | {study_pre['epochs']} | {study_pre['train_minutes']:.1f} | {study_pre['images_per_s']:.0f} | {knn(study_pre)} |")
    return f"""# A wider encoder at about equal pretraining time: GMML with {arch} at 1 % of the labels

GMML pretraining (seed 0, all unlabeled training images, the library's defaults with the decoder as wide as the encoder):

| encoder | epochs | training min | images/s | k-NN after (%, held-out training images) |
|---|---|---|---|---|
{chr(10).join(pre_rows)}

The study's 1 % finetune (600 labeled images, its recipe and settings per initialisation, {ft[(INITS[0], seeds[0])]['finetune_epochs']} epochs),
test accuracy on {ft[(INITS[0], seeds[0])]['test_images']:,} test images (%), seeds {', '.join(map(str, seeds))}; differences paired by seed:

| init | {le.ARCH} (the study) | {arch} (per seed) | {arch} − {le.ARCH} (points) |
|---|---|---|---|
{chr(10).join(rows)}

GMML − random init: {mean_std(gap(ft))} points with {arch}{f'; {mean_std(gap(study))} with {le.ARCH} (the study)' if study else ''}.

Machine: {m['machine']}. Command: `{m['command']}`, commit {m['commit']}, {m['date']}. The stages took {m['stage_minutes']} min in all;
{m['minutes_this_call']} min were spent in this call (finished stages are read back from the state folder).
{m['note']}
"""

if __name__ == '__main__': sys.exit(main())
