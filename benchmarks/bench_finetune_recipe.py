"""Finetuning recipe at 1 % of the labels: do the package's auxiliary finetuning losses (DRLoc, ME) or stochastic depth
lift the label-efficiency study's finetunes? Chosen on held-out *training* images, then tested once.

Stage 1 (selection) finetunes the study's GMML encoder and a random-init ViT on 600 labeled training images per seed,
with 5 % of the training images (3,000, stratified per seed) kept out of the labeled subset, and reads accuracy on those
held-out images. The test set is not used. Variants (`finetune_learner` arguments on top of the
study's recipe, `bench_label_efficiency.FINETUNE` / `FT_HP`):

- `study`: the study's recipe as it is;
- `drop_path`: stochastic depth 0.1 in the finetune;
- `drloc`: DRLoc, relative-position regression between random token pairs, weight 0.1 (Liu et al., "Efficient Training
  of Visual Transformers with Small Datasets", NeurIPS 2021, arXiv:2106.03746);
- `me`: ME, reconstruction of masked final embeddings, weight 0.2;
- `drloc_me`: both, as in the README's quick start.

Stage 2 (test) takes, per initialisation, the variant with the highest mean held-out accuracy and finetunes it on the
study's own labeled subsets (`bench_label_efficiency.finetune`, same seeds), evaluating once on the 10,000 test images;
the study's records are the comparison. Every finetune saves its record in the state folder as it finishes.

    python benchmarks/bench_finetune_recipe.py --state /work/le_state/gmml_fast_label_efficiency_full
    python benchmarks/bench_finetune_recipe.py --state DIR --quick      # smoke test: 1 seed, 2 epochs, 2 variants
"""
import argparse, json, statistics, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_label_efficiency as le
from bench_common import run_meta

F, HELDOUT = 0.01, 0.05
VARIANTS = {'study': {}, 'drop_path': dict(drop_path=0.1), 'drloc': dict(drloc=0.1), 'me': dict(me=0.2),
            'drloc_me': dict(drloc=0.1, me=0.2)}
# DRLoc is a remedy proposed for ViTs trained from scratch on small data, so random init is tried with it too
PLAN = {'gmml': list(VARIANTS), 'random': ['study', 'drloc']}
NAMES = {'random': 'random init', 'gmml': 'GMML'}

def mean_std(v): return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else float('nan'))

def choose(sel, plan, seeds):
    "Per initialisation: the variant with the highest mean held-out accuracy over `seeds` (ties: the earlier, simpler one)."
    best = {}
    for init, vs in plan.items():
        means = {v: statistics.mean(sel[(init, v, s)]['test_accuracy'] for s in seeds) for v in vs}
        best[init] = max(vs, key=lambda v: (means[v], -vs.index(v)))
    return best

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--state', required=True, help='a finished label-efficiency state folder (full mode)')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--quick', action='store_true', help='smoke test: seed 0, 2 finetuning epochs, 500 test images, two variants')
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--overwrite', action='store_true')
    ap.add_argument('--note', default='', help='a sentence for the report (e.g. what else shared the machine)')
    a = ap.parse_args(argv)
    state = Path(a.state)
    out = state/'finetune_recipe_quick' if a.quick else Path(__file__).parent/'results'/'finetune_recipe'   # a smoke test writes no results
    if not (state/'pretrain_gmml.json').exists():
        sys.exit(f"error: {state} holds no GMML encoder (pretrain_gmml.json): run bench_label_efficiency.py --state {state} first")
    missing = [f'finetune_{i}_{F}_{s}.json' for i in PLAN for s in a.seeds if not (state/f'finetune_{i}_{F}_{s}.json').exists()]
    if missing and not a.quick:       # the study's records are the comparison (and the test result of its own recipe)
        sys.exit(f"error: {state} lacks the study's 1 % finetunes {', '.join(missing)} (--seeds must be seeds the study ran)")
    if out.with_suffix('.json').exists() and not (a.overwrite or a.quick): sys.exit(f"error: {out}.json exists; pass --overwrite to replace it")
    torch.set_num_threads(a.threads)
    seeds, plan = ([0], {'gmml': ['study', 'drloc'], 'random': ['study']}) if a.quick else (a.seeds, PLAN)
    cfg = dict(le.MODES['full'], ft_epochs={F: 2 if a.quick else 80}, n_test=500 if a.quick else None)
    tag = 'quick_' if a.quick else ''
    encoders = {'gmml': json.loads((state/'pretrain_gmml.json').read_text())['encoder']}
    t0, sel, test = time.perf_counter(), {}, {}
    for s in seeds:                   # seed-major: an interrupted run has whole seeds to compare
        for init, vs in plan.items():
            for v in vs:
                sel[(init, v, s)] = le.stage(state/f'{tag}recipe_select_{init}_{v}_{s}.json',
                                             lambda: le.finetune(init, F, s, cfg, encoders, extra=VARIANTS[v], heldout=HELDOUT))
    best = choose(sel, plan, seeds)
    for init, v in best.items():
        for s in seeds:
            if v == 'study' and not a.quick:
                test[(init, v, s)] = json.loads((state/f'finetune_{init}_{F}_{s}.json').read_text())   # the study's own record
            else:
                test[(init, v, s)] = le.stage(state/f'{tag}recipe_test_{init}_{v}_{s}.json',
                                              lambda: le.finetune(init, F, s, cfg, encoders, extra=VARIANTS[v]))
    study = {(i, s): json.loads((state/f'finetune_{i}_{F}_{s}.json').read_text()) for i in plan for s in seeds} if not a.quick else {}
    meta = dict(run_meta('bench_finetune_recipe.py', argv, a.threads), minutes_this_call=round((time.perf_counter() - t0)/60, 1),
                seeds=seeds, label_fraction=F, heldout=HELDOUT, finetune_epochs=cfg['ft_epochs'][F], note=a.note,
                # the finetunes' own minutes (training + evaluation), whichever call ran them; the study's reused records excluded
                stage_minutes=round(sum(r['minutes'] for r in sel.values()) + sum(r['minutes'] for (i, v, s), r in test.items()
                                                                                 if v != 'study' or a.quick), 1))
    res = dict(meta=meta, variants=VARIANTS, plan=plan, chosen=best,
               selection=[dict(method=i, variant=v, seed=s, heldout_accuracy=r['test_accuracy'], train_minutes=r['train_minutes'])
                          for (i, v, s), r in sel.items()],
               test=[dict(method=i, variant=v, seed=s, test_accuracy=r['test_accuracy'], train_minutes=r['train_minutes'])
                     for (i, v, s), r in test.items()])
    out.with_suffix('.json').write_text(json.dumps(res, indent=1))
    md = report(res, sel, test, study, plan, best, seeds)
    out.with_suffix('.md').write_text(md); print(md)
    return 0

def report(res, sel, test, study, plan, best, seeds):
    m = res['meta']
    rows = []
    for init, vs in plan.items():
        base = [sel[(init, 'study', s)]['test_accuracy'] for s in seeds]
        for v in vs:
            acc = [sel[(init, v, s)]['test_accuracy'] for s in seeds]
            mu, sd = mean_std([100*x for x in acc]); dmu, dsd = mean_std([100*(x - b) for x, b in zip(acc, base)])
            mins = statistics.mean(sel[(init, v, s)]['train_minutes'] for s in seeds)
            rows.append(f"| {NAMES[init]} | {v}{' (chosen)' if best[init] == v else ''} | {json.dumps(VARIANTS[v]) if VARIANTS[v] else '—'} | "
                        f"{' / '.join(f'{100*x:.1f}' for x in acc)} | {mu:.1f} ± {sd:.1f} | "
                        f"{'—' if v == 'study' else f'{dmu:+.1f} ± {dsd:.1f}'} | {mins:.1f} |")
    trows = []
    for init, v in best.items():
        acc = [test[(init, v, s)]['test_accuracy'] for s in seeds]
        mu, sd = mean_std([100*x for x in acc])
        if study:
            st = [study[(init, s)]['test_accuracy'] for s in seeds]; smu, ssd = mean_std([100*x for x in st])
            dmu, dsd = mean_std([100*(x - b) for x, b in zip(acc, st)])
            trows.append(f"| {NAMES[init]} | {v} | {smu:.1f} ± {ssd:.1f} | {mu:.1f} ± {sd:.1f} | {dmu:+.1f} ± {dsd:.1f} |")
        else: trows.append(f"| {NAMES[init]} | {v} | — | {mu:.1f} ± {sd:.1f} | — |")
    gap = ''
    if 'gmml' in best and 'random' in best:
        g = [100*(test[('gmml', best['gmml'], s)]['test_accuracy'] - test[('random', best['random'], s)]['test_accuracy']) for s in seeds]
        gmu, gsd = mean_std(g)
        gap = f"\nGMML − random init, each with its chosen recipe, paired by seed: {' / '.join(f'{x:+.1f}' for x in g)} points ({gmu:+.1f} ± {gsd:.1f}).\n"
    return f"""# Finetuning recipe at 1 % of the labels: DRLoc, ME, stochastic depth

The label-efficiency study's finetune (ViT-Nano, 6 blocks, 600 labeled images, {m['finetune_epochs']} epochs, its recipe and
per-initialisation learning rates) with one change at a time. GMML uses the study's encoder.

## Selection on held-out training images

{int(100*m['heldout'])} % of the training images held out per seed (stratified; never labeled, never evaluated on the test set);
600 labeled images from the rest. Held-out accuracy (%) per seed {', '.join(map(str, seeds))}; differences paired by seed.

| init | variant | arguments | per seed | mean ± std | vs `study` (points) | training min |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

## Test (the study's labeled subsets, 10,000 test images, once per finetune)

| init | chosen variant | study's recipe (%) | chosen (%) | chosen − study, paired (points) |
|---|---|---|---|---|
{chr(10).join(trows)}
{gap}
Machine: {m['machine']}. Command: `{m['command']}`, commit {m['commit']}, {m['date']}. The finetunes took {m['stage_minutes']} min
in all; {m['minutes_this_call']} min were spent in this call (finished stages are read back from the state folder).
{m['note']}
"""

if __name__ == '__main__': sys.exit(main())
