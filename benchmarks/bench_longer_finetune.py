"""Longer finetunes: does the gap between a GMML-pretrained and a randomly initialised ViT hold when the finetune runs
several times as many steps as in the label-efficiency study (10 epochs = 930 steps at 10 % of the labels, 80 epochs =
720 steps at 1 %)?

It reuses a finished label-efficiency state folder (`bench_label_efficiency.py --state DIR`): the GMML encoder that study
pretrained, its finetuning function and settings, and its records to compare with. Only the number of finetuning
epochs changes. Each finetune saves its record in the state folder as it finishes (an interrupted run
continues), and the test set is touched once per finetune, as in the study.

    python benchmarks/bench_longer_finetune.py --state /tmp/gmml_fast_label_efficiency_full [--epochs 30] [--seeds 0]
    python benchmarks/bench_longer_finetune.py --state ... --fraction 0.01 --epochs 160    # results: label_efficiency_longer_1pct.*
"""
import argparse, json, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_label_efficiency as le
from bench_common import run_meta

def last_quarter_drop(curve):
    "Relative fall of the mean training loss over the last quarter of the epochs (0.05: 5 % lower at the end)."
    q = max(1, len(curve)//4)
    return (curve[-q - 1] - curve[-1])/curve[-q - 1]

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--state', required=True, help='a finished label-efficiency state folder (full mode)')
    ap.add_argument('--fraction', type=float, default=0.1, choices=(0.01, 0.1), help='label fraction (default 0.1)')
    ap.add_argument('--epochs', type=int, default=30, help='finetuning epochs (the study: 10 at 10 %%, 80 at 1 %%)')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0]); ap.add_argument('--inits', nargs='+', default=['random', 'gmml'])
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--overwrite', action='store_true')
    ap.add_argument('--stem', default=None, help='report name under benchmarks/results (default: label_efficiency_longer, '
                    'with _1pct at 1 %%); another name keeps the committed reports when running another length')
    a = ap.parse_args(argv)
    F, state = a.fraction, Path(a.state)
    out = Path(__file__).parent/'results'/(a.stem or 'label_efficiency_longer' + ('' if F == 0.1 else f'_{F:.0%}'.replace('%', 'pct')))
    if a.stem is not None and (Path(a.stem).name != a.stem or a.stem.strip('.') == ''): sys.exit(f"error: --stem must be a plain file name, got {a.stem!r}")
    if a.epochs < 1: sys.exit(f"error: --epochs must be >= 1, got {a.epochs}")
    missing = [str(state/f'finetune_{i}_{F}_{s}.json') for i in a.inits for s in a.seeds if not (state/f'finetune_{i}_{F}_{s}.json').exists()]
    if missing: sys.exit(f"error: {state} lacks the study's {F:.0%} finetunes {', '.join(missing)}: run bench_label_efficiency.py --state {state} first")
    if out.with_suffix('.json').exists() and not a.overwrite: sys.exit(f"error: {out}.json exists; pass --overwrite to replace it")
    torch.set_num_threads(a.threads)
    cfg = dict(le.MODES['full'], ft_epochs={F: a.epochs})
    encoders = {k: json.loads((state/f'pretrain_{k}.json').read_text())['encoder'] for k in a.inits if k not in ('random', 'cnn')}
    t0, rows = time.perf_counter(), []
    for s in a.seeds:
        for init in a.inits:
            longer = le.stage(state/f'longer_finetune_{init}_{F}_{s}_{a.epochs}ep.json', lambda: le.finetune(init, F, s, cfg, encoders))
            short = json.loads((state/f'finetune_{init}_{F}_{s}.json').read_text())
            rows.append(dict(method=init, seed=s, label_fraction=F, short=short, longer=longer))
    meta = dict(run_meta('bench_longer_finetune.py', argv, a.threads), minutes=round((time.perf_counter() - t0)/60, 1))
    out.with_suffix('.json').write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    name = {'random': 'random init', 'gmml': 'GMML', 'mae': 'MAE (same epochs)', 'mae_time': 'MAE (more epochs)', 'simmim': 'SimMIM'}
    lines = [f"| {name.get(r['method'], r['method'])} | {r['seed']} | {100*r['short']['test_accuracy']:.1f} | {100*last_quarter_drop(r['short']['loss_curve']):.1f} % "
             f"| {100*r['longer']['test_accuracy']:.1f} | {100*last_quarter_drop(r['longer']['loss_curve']):.1f} % | {r['longer']['train_minutes']:.1f} |" for r in rows]
    acc = {(r['method'], r['seed'], k): r[k]['test_accuracy'] for r in rows for k in ('short', 'longer')}
    e0, spe = le.MODES['full']['ft_epochs'][F], rows[0]['longer']['finetune_steps']//a.epochs    # the study's epochs; steps per epoch
    gaps = [f"seed {s}: {100*(acc[('gmml', s, 'short')] - acc[('random', s, 'short')]):+.1f} points at {e0} epochs, "
            f"{100*(acc[('gmml', s, 'longer')] - acc[('random', s, 'longer')]):+.1f} at {a.epochs}" for s in a.seeds
            if ('gmml', s, 'short') in acc and ('random', s, 'short') in acc]
    md = f"""# Longer finetunes at {100*F:.0f} % of the labels

The label-efficiency study finetunes for {e0} epochs ({e0*spe} steps) at {100*F:.0f} % of the labels, and its training losses are still
falling at the end. Here the same finetunes (same encoders, labeled subsets, settings and seeds; `bench_label_efficiency.finetune`)
run {a.epochs} epochs ({a.epochs*spe} steps). Test accuracy on the 10,000 test images (%), one evaluation per finetune, and how much
the mean training loss fell over the last quarter of the epochs (smaller: closer to converged).

| init | seed | {e0} epochs | loss fall, last quarter | {a.epochs} epochs | loss fall, last quarter | training min ({a.epochs} epochs) |
|---|---|---|---|---|---|---|
{chr(10).join(lines)}

GMML − random init: {'; '.join(gaps) or '—'}.

Machine: {meta['machine']}. Command: `{meta['command']}`, commit {meta['commit']}, {meta['date']}, {meta['minutes']} min.
"""
    out.with_suffix('.md').write_text(md)
    print(md)
    return 0

if __name__ == '__main__': sys.exit(main())
