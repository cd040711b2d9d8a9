"The committed benchmark records (benchmarks/results/, most of them legacy: measured by scripts the study runner replaced) are complete and consistent with each other and with their markdown; every one is either the runner's or listed with its original command."
import json, re, statistics, subprocess
import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT/'benchmarks'
RESULTS = BENCH/'results'
NAMES = {'random': 'random init', 'gmml': 'GMML', 'mae': 'MAE (5 epochs)', 'mae_time': 'MAE (9 epochs)', 'simmim': 'SimMIM',
         'cnn': 'ResNet from scratch'}

LEGACY = json.loads((RESULTS/'legacy.json').read_text())
def legacy_only(*stems):
    "These checks read the schema of the scripts the study runner replaced; a record rewritten by the runner is tested by tests/test_study.py."
    return pytest.mark.skipif(any(s not in LEGACY for s in stems), reason=f"{', '.join(stems)}: rewritten by benchmarks/study.py")

def _mean_std(v): return round(100*statistics.mean(v), 1), round(100*statistics.stdev(v), 1)
def _pm(v): return f"{100*statistics.mean(v):.1f} ± {100*statistics.stdev(v):.1f}"     # the reports' 'mean ± std' in percent

@legacy_only('label_efficiency_simmim')
def test_label_efficiency_results_are_complete_and_consistent():
    recs = json.loads((RESULTS/'label_efficiency_simmim.json').read_text())
    assert isinstance(recs, list)
    # one record per initialisation × protocol × label fraction × seed, accuracy on the 10k test images
    keys = sorted((r['method'], r['protocol'], r['label_fraction'], r['seed']) for r in recs)
    frozen = [(m, p, f, s) for m in ('random', 'gmml', 'mae', 'mae_time', 'simmim') for p in ('knn', 'linear') for f in (0.01, 0.1) for s in (0, 1, 2)]
    ft = [(m, 'finetune', 0.01, s) for m in NAMES for s in (0, 1, 2)]
    ft10 = [(m, 'finetune', 0.1, s) for m in ('random', 'gmml', 'mae', 'simmim', 'cnn') for s in (0, 1, 2)]
    md = (RESULTS/'label_efficiency_simmim.md').read_text()
    missing = sorted(set(ft + ft10) - set(keys))               # a report written with --report lists the finetunes it lacks
    if missing:
        listed = md.split('**Not run in this report**')[1].split('\n')[0]
        assert listed.startswith(f' ({len(missing)} finetunes')
        for m, _, f, s in missing: assert f"{NAMES[m]} seed {s}" in listed, (m, f, s)
    assert keys == sorted(set(frozen + ft + ft10) - set(missing)) and len(keys) == len(set(keys))
    assert set(frozen) <= set(keys) and {k for k in ft if k[0] != 'simmim'} <= set(keys)     # the earlier stages are all there
    for r in recs:
        assert r['test_images'] == 10000 and r['train_images'] == round(60000*r['label_fraction'])
        assert r['run']['machine']['torch_threads'] >= 1 and r['run']['stage_total_minutes'] > 0 and r['run']['command']
        # a classifier that learned nothing scores 10 %: every protocol and initialisation must do clearly better
        assert r['test_accuracy'] > 0.3, r
    fts = [r for r in recs if r['protocol'] == 'finetune']
    assert {r['finetune_steps'] for r in fts if r['label_fraction'] == 0.01} == {80*(600//64)}   # 80 epochs of 9 full batches
    for f in (0.01, 0.1):   # the same finetuning budget for every initialisation at a label fraction
        assert len({(r['finetune_steps'], r['finetune_bs'], r['finetune_epochs']) for r in fts if r['label_fraction'] == f}) <= 1
    for r in fts: assert len(r['loss_curve']) == r['finetune_epochs']
    # pretraining: MAE at equal time ran as many epochs as fit in GMML's training time at the speed of MAE's equal-epochs run
    pre = {r['method']: r['pretraining'] for r in recs if r['pretraining']}
    assert pre['gmml']['epochs'] == pre['mae']['epochs'] < pre['mae_time']['epochs']
    assert pre['mae_time']['epochs'] == round(pre['gmml']['train_minutes']/(pre['mae']['train_minutes']/pre['mae']['epochs']))
    for p in pre.values(): assert len(p['knn_curve']) == p['epochs'] + 1
    # the markdown table shows the means and stds of these records (nothing typed by hand)
    for m, name in NAMES.items():
        for p in ('finetune', 'linear', 'knn'):
            cells = []
            for f in (0.01, 0.1):
                acc = [r['test_accuracy'] for r in recs if (r['method'], r['protocol'], r['label_fraction']) == (m, p, f)]
                cells.append('—' if not acc else '{} ± {}'.format(*_mean_std(acc)))
            if cells == ['—', '—']: continue
            row = f"| {name} | {p} | {cells[0]} | {cells[1]} |"
            assert row in md, row

@legacy_only('label_efficiency')
def test_default_rerun_is_complete_without_simmim_and_its_report_shows_its_records():
    """label_efficiency.*: every stage computed by the default command (SimMIM opt-in) — in the process that wrote the
    record, or by the commands a `--report` record names; complete, SimMIM-free, and its report shows its total and
    its GMML rows."""
    recs = json.loads((RESULTS/'label_efficiency.json').read_text())
    keys = sorted((r['method'], r['protocol'], r['label_fraction'], r['seed']) for r in recs)
    seeds, fr = (0, 1, 2), (0.01, 0.1)
    want = ([(m, p, f, s) for m in ('random', 'gmml', 'mae', 'mae_time') for p in ('knn', 'linear') for f in fr for s in seeds]
            + [(m, 'finetune', 0.01, s) for m in ('random', 'gmml', 'mae', 'mae_time', 'cnn') for s in seeds]
            + [(m, 'finetune', 0.1, s) for m in ('random', 'gmml', 'mae', 'cnn') for s in seeds])
    assert keys == sorted(want)
    run = recs[0]['run']
    assert all(r['run'] == run for r in recs)                    # one run wrote every record
    assert '--note' not in run['command']                        # the note is the record's `note`
    computed = run.get('stage_commands') or [] if '--report' in run['command'] else [run['command']]
    assert computed and all('--simmim' not in c and '--report' not in c for c in computed)
    md = (RESULTS/'label_efficiency.md').read_text()
    assert 'SimMIM' not in md and '](label_efficiency.png)' in md and '](label_efficiency_curves.png)' in md
    total = f"{run['stage_total_minutes']:.1f} min"
    assert f"**{total}**" in md                                  # the report's time of the default run, not a number nearby
    for f in fr:                                                 # the report's GMML and random-init rows of the rerun
        for m in ('gmml', 'random'):
            acc = [r['test_accuracy'] for r in recs if (r['method'], r['protocol'], r['label_fraction']) == (m, 'finetune', f)]
            assert _pm(acc) in md, (m, f)

@legacy_only('label_efficiency_longer', 'label_efficiency_longer_1pct', 'label_efficiency_longer_60ep', 'label_efficiency_simmim')
@pytest.mark.parametrize('stem,fraction,steps_per_epoch', [('label_efficiency_longer', 0.1, 93), ('label_efficiency_longer_1pct', 0.01, 9),
                                                            ('label_efficiency_longer_60ep', 0.1, 93)])
def test_longer_finetune_results_match_the_study(stem, fraction, steps_per_epoch):
    "label_efficiency_longer*: the same finetunes as the study (subset, settings, test set), only longer; its table shows the JSON."
    d = json.loads((RESULTS/f'{stem}.json').read_text())
    md = (RESULTS/f'{stem}.md').read_text()
    study = {(r['method'], r['seed']): r for r in json.loads((RESULTS/'label_efficiency_simmim.json').read_text())
             if r['protocol'] == 'finetune' and r['label_fraction'] == fraction}
    assert {r['method'] for r in d['rows']} in ({'random', 'gmml'}, {'random'}) and {r['label_fraction'] for r in d['rows']} == {fraction}
    assert sorted((r['method'], r['seed']) for r in d['rows']) == sorted({(r['method'], r['seed']) for r in d['rows']}) and len(d['rows']) >= 3
    for r in d['rows']:
        short, longer = r['short'], r['longer']
        assert short['test_accuracy'] == study[(r['method'], r['seed'])]['test_accuracy']      # the study's own record
        assert longer['finetune_epochs'] > short['finetune_epochs'] and longer['finetune_steps'] == longer['finetune_epochs']*steps_per_epoch
        for k in ('train_images', 'test_images', 'lr', 'layer_decay', 'pool', 'finetune_bs'): assert longer[k] == short[k], k
        assert len(longer['loss_curve']) == longer['finetune_epochs'] and longer['test_accuracy'] > 0.3
        assert f"| {r['seed']} | {100*short['test_accuracy']:.1f} |" in md and f"| {100*longer['test_accuracy']:.1f} |" in md
@legacy_only('label_efficiency_longer_pretrain', 'label_efficiency_simmim')
def test_longer_pretrain_results_match_the_study():
    "label_efficiency_longer_pretrain.*: only GMML's pretraining (epochs, decoder) differs from the study; the finetunes and read-outs are the study's; its table shows the JSON."
    d = json.loads((RESULTS/'label_efficiency_longer_pretrain.json').read_text())
    md = (RESULTS/'label_efficiency_longer_pretrain.md').read_text()
    pre, before = d['pretraining'], d['study_pretraining']
    assert pre['epochs'] > before['epochs'] and pre['steps'] == pre['epochs']*468 and pre['decoder_hidden'] == 96
    for k in ('images', 'bs', 'lr', 'method'): assert pre[k] == before[k], k
    assert len(pre['knn_curve']) == pre['epochs'] + 1
    assert pre['knn_curve'][0]['knn_accuracy'] == before['knn_curve'][0]['knn_accuracy']     # the same seed-0 encoder before training
    study = {(r['method'], r['protocol'], r['label_fraction'], r['seed']): r for r in json.loads((RESULTS/'label_efficiency_simmim.json').read_text())}
    # bench_longer_finetune's records, by (label fraction, finetune epochs, method, seed)
    longer = {(r['label_fraction'], r['longer']['finetune_epochs'], r['method'], r['seed']): r['longer']
              for stem in ('label_efficiency_longer', 'label_efficiency_longer_1pct', 'label_efficiency_longer_60ep') for r in json.loads((RESULTS/f'{stem}.json').read_text())['rows']}
    ref = lambda init, f, e, s: study[(init, 'finetune', f, s)] if (f, e) == (0.01, 80) else longer.get((f, e, init, s))
    fts = [r for r in d['records'] if r['protocol'] == 'finetune']
    runs = sorted({(r['label_fraction'], r['finetune_epochs']) for r in fts})
    assert (0.01, 80) in runs and any(f == 0.1 for f, _ in runs)
    assert sorted((r['label_fraction'], r['finetune_epochs'], r['seed']) for r in fts) == [(f, e, s) for f, e in runs for s in (0, 1, 2)]
    for r in fts:
        f = r['label_fraction']                                # the settings of the records compared with (the shortest length has them)
        x = ref('gmml', f, min(e for g, e in runs if g == f), r['seed'])
        for k in ('train_images', 'test_images', 'lr', 'layer_decay', 'pool', 'finetune_bs'): assert r[k] == x[k], k
        assert r['method'] == 'gmml' and len(r['loss_curve']) == r['finetune_epochs'] and r['test_accuracy'] > 0.3
    assert sorted((row['label_fraction'], row['finetune_epochs']) for row in d['finetunes']) == runs
    for row in d['finetunes']:                                 # the comparison columns are the study's and the longer finetunes' records
        f, e = row['label_fraction'], row['finetune_epochs']
        for init in ('random', 'gmml'):                        # a length bench_longer_finetune has not run is shown as '—', not made up
            refs = [ref(init, f, e, s) for s in row['seeds']]
            assert row['test_accuracy'][init] == ([x['test_accuracy'] for x in refs] if all(refs) else None)
        new = row['test_accuracy']['new']
        ms = _pm(new)
        assert f"| finetune, {e} epochs | {f:.0%} |" in md and f"**{ms}**" in md
        if row['gain_over_random']:                            # the lead is the per-seed difference of the two columns
            assert row['gain_over_random'] == pytest.approx([a - b for a, b in zip(new, row['test_accuracy']['random'])])
    frozen = [r for r in d['records'] if r['protocol'] in ('knn', 'linear')]
    assert len(frozen) == 12 and all(r['test_images'] == 10000 for r in frozen)
@legacy_only('encoder_width')
def test_encoder_width_results_are_complete_and_their_table_shows_them():
    "encoder_width.*: both encoders for every seed, under one setting, read out on held-out training images; the table is the JSON's."
    d = json.loads((RESULTS/'encoder_width.json').read_text())
    md = (RESULTS/'encoder_width.md').read_text()
    m, recs = d['meta'], d['records']
    assert m['mode'] == 'full' and m['n_query'] == 2000 and m['n_bank'] == 10000
    assert sorted((r['arch'], r['seed']) for r in recs) == sorted((a, s) for a in ('nano_28', 'tiny_28') for s in m['seeds'])
    params = {r['arch']: r['encoder_params'] for r in recs}
    assert params['tiny_28'] > 3*params['nano_28']                     # twice the width: about 4x the weights
    for arch in ('nano_28', 'tiny_28'):
        rs = [r for r in recs if r['arch'] == arch]
        for k in ('knn_accuracy', 'linear_accuracy'):
            assert all(30 < r[k] < 100 for r in rs)
            assert f"| {statistics.mean(r[k] for r in rs):.2f} |" in md

@legacy_only('finetune_recipe', 'label_efficiency_simmim')
def test_finetune_recipe_results_chose_on_heldout_images_and_tested_on_the_studys_subsets():
    "benchmarks/results/finetune_recipe.*: every variant for every seed on held-out training images, the choice is their best mean, the test runs are the study's finetunes with the chosen arguments; the tables show the JSON."
    from benchmarks.studies import choose
    d = json.loads((RESULTS/'finetune_recipe.json').read_text())
    md = (RESULTS/'finetune_recipe.md').read_text()
    seeds, plan = d['meta']['seeds'], d['plan']
    assert seeds == [0, 1, 2] and set(plan['gmml']) == set(d['variants']) and d['meta']['finetune_epochs'] == 80
    sel = {(x['method'], x['variant'], x['seed']): {'test_accuracy': x['heldout_accuracy']} for x in d['selection']}
    assert sorted(sel) == sorted((i, v, s) for i, vs in plan.items() for v in vs for s in seeds)
    assert d['chosen'] == choose({(i, v): [sel[(i, v, s)]['test_accuracy'] for s in seeds] for i, vs in plan.items() for v in vs}, plan)
    study = {(r['method'], r['seed']): r['test_accuracy'] for r in json.loads((RESULTS/'label_efficiency_simmim.json').read_text())
             if r['protocol'] == 'finetune' and r['label_fraction'] == 0.01}
    test = {(x['method'], x['seed']): x for x in d['test']}
    assert sorted(test) == sorted((i, s) for i in plan for s in seeds)
    for (i, s), x in test.items():
        assert x['variant'] == d['chosen'][i]
        if x['variant'] == 'study': assert x['test_accuracy'] == study[(i, s)]      # the study's own record, not a rerun
        assert x['test_accuracy'] > 0.3
    for init, vs in plan.items():
        for v in vs:
            acc = [100*sel[(init, v, s)]['test_accuracy'] for s in seeds]
            assert f"| {' / '.join(f'{a:.1f}' for a in acc)} | {statistics.mean(acc):.1f} ± {statistics.stdev(acc):.1f} |" in md

@legacy_only('wider_encoder', 'label_efficiency_simmim')
def test_wider_encoder_results_pair_the_studys_records():
    "benchmarks/results/wider_encoder.*: GMML and random init for seeds 0-2 with the wider encoder, each paired with the study's own ViT-Nano record; the table shows the JSON's numbers."
    d = json.loads((RESULTS/'wider_encoder.json').read_text())
    md = (RESULTS/'wider_encoder.md').read_text()
    seeds, arch = d['meta']['seeds'], d['meta']['arch']
    assert seeds == [0, 1, 2] and arch != 'nano_28' and d['pretraining']['arch'] == arch
    study = {(r['method'], r['seed']): r['test_accuracy'] for r in json.loads((RESULTS/'label_efficiency_simmim.json').read_text())
             if r['protocol'] == 'finetune' and r['label_fraction'] == 0.01}
    ft = {(x['method'], x['seed']): x for x in d['finetunes']}
    assert sorted(ft) == sorted((i, s) for i in ('gmml', 'random') for s in seeds)
    for (i, s), x in ft.items():
        assert x['arch'] == arch and x['study_test_accuracy'] == study[(i, s)] and 0.3 < x['test_accuracy'] < 1
    for i in ('random', 'gmml'):
        wide = [ft[(i, s)]['test_accuracy'] for s in seeds]
        diff = [w - study[(i, s)] for w, s in zip(wide, seeds)]
        assert f"{_pm(wide)} ({' / '.join(f'{100*w:.1f}' for w in wide)}) | {_pm(diff)} |" in md

def test_every_committed_record_is_the_runners_or_a_listed_legacy_one():
    "benchmarks/results/: each record was written by study.py (its command says so) or is listed in legacy.json with its original command, its commit and the study that measures the question now (or why none does); no entry names a record that is not there."
    from benchmarks.report import is_runner_command
    from benchmarks.studies import STUDIES
    legacy = json.loads((RESULTS/'legacy.json').read_text())
    stems = {p.stem for p in RESULTS.glob('*.json')} - {'legacy', 'gpu'}
    for stem in stems:
        d = json.loads((RESULTS/f'{stem}.json').read_text())
        meta = d[0]['run'] if isinstance(d, list) else d.get('meta', d)
        if stem in legacy and not legacy[stem].get('file'):                  # a legacy record still in place
            e = legacy[stem]
            assert e['command'].startswith('python benchmarks/bench_') and re.fullmatch(r'[0-9a-f]{7}', e['commit']), stem
            assert e['study'] in STUDIES if e['study'] else e['why'], stem
            assert stem in STUDIES[e['study']].stems if e['study'] else True, stem
        else: assert is_runner_command(meta['command']) and (meta.get('commit') or meta.get('git_commit')), stem      # `python -m benchmarks.study ...` (older: benchmarks/study.py)
        assert (RESULTS/f'{stem}.md').is_file(), stem
    for k, e in legacy.items():                   # every entry names a record that is there: in place, or retired to history/
        if k == '_about': continue
        if e.get('file'): assert e['file'] == f'history/{k}.json' and (RESULTS/e['file']).is_file() and (RESULTS/f'history/{k}.md').is_file(), k
        else: assert k in stems, k
    assert not list(BENCH.glob('bench_*.py'))       # the scripts the runner replaced are gone
    # one module per subject: the runner, the studies, their stages and typed configs, measuring, reporting, the GPU study
    assert {p.stem for p in BENCH.glob('*.py') if p.name != '__init__.py'} == {
        'study', 'studies', 'stages', 'configs', 'measure', 'report', 'gpu'}

def test_no_tracked_file_edits_sys_path():
    "benchmarks/ is a package installed with gmml_fast (setup.py), so nothing (notebooks, tests, tools, docs) needs to edit sys.path to import it."
    try: files = subprocess.run(['git', 'ls-files', '-z'], capture_output=True, text=True, cwd=ROOT, check=True, timeout=60).stdout.split('\0')
    except (OSError, subprocess.SubprocessError): pytest.skip('not a git checkout')
    edits = ['sys.path.' + verb for verb in ('insert', 'append')]      # spelled in two pieces, so this file does not match itself
    found = []
    for f in filter(None, files):
        p = ROOT/f
        if not p.is_file() or p.is_symlink(): continue
        text = p.read_bytes().decode('utf-8', errors='ignore')
        found += [f'{f}: {e}' for e in edits if e in text]
    assert not found, f'files that edit sys.path (import the installed packages instead, e.g. `from benchmarks import report`): {found}'

def test_throughput_ratios_are_time_ratios_of_the_records_own_images_per_s():
    "Every ratio of the throughput record is the time of its numerator over that of its denominator, from the record's images/s alone (so above 1 the numerator is slower), named by a stable id apart from its label; what compute_ratios makes of the same images/s; its markdown shows them."
    from benchmarks.studies import compute_ratios, GMML_CE_TARGET
    d = json.loads((RESULTS/'throughput.json').read_text())
    ips, rat = d['images_per_s'], d['ratios']
    assert isinstance(rat, list) and rat == compute_ratios(ips)
    ids = [r['id'] for r in rat]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r'[a-z0-9]+(_[a-z0-9]+)*', i) for i in ids)
    for r in rat:
        n_num, n_den = r.get('numerator_images', 1), r.get('denominator_images', 1)
        assert r['time_ratio'] == pytest.approx((n_num/ips[r['numerator']])/(n_den/ips[r['denominator']]), rel=1e-12), r['id']
        assert ('numerator_images' in r) == (r['kind'] == 'overhead') and r['label'] != r['id']
        if 'target' in r: assert r['met'] == (r['time_ratio'] <= r['target']), r['id']
    by = {r['id']: r for r in rat}
    assert by['gmml_vs_ce_tiny']['target'] == by['gmml_vs_ce_nano']['target'] == GMML_CE_TARGET
    assert by['ce_drloc_me_vs_ce_tiny']['time_ratio'] > 1 and by['ce_drloc_me_vs_ce_tiny']['numerator'] == 'finetune step, CE + DRLoc + ME (fastai)'
    md = (RESULTS/'throughput.md').read_text()
    assert all(r['label'] in md for r in rat) and 'above 1, the first step is slower' in md

def test_a_rerun_retires_the_legacy_record_to_history(tmp_path, monkeypatch):
    "When the runner writes a record over a legacy one, the legacy files move to history/ and legacy.json says where; a second retirement never overwrites history."
    from benchmarks import study
    res = tmp_path/'results'; res.mkdir()
    for name in ('label_efficiency.json', 'label_efficiency.md', 'label_efficiency.png', 'label_efficiency_curves.png', 'label_efficiency_simmim.json'):
        (res/name).write_text(name)
    (res/'legacy.json').write_text(json.dumps({'label_efficiency': dict(command='python benchmarks/bench_x.py', commit='abc1234', study='label_efficiency')}))
    monkeypatch.setattr(study, 'HERE', tmp_path)
    study._retire_legacy(res, 'label_efficiency')
    assert sorted(p.name for p in (res/'history').iterdir()) == ['label_efficiency.json', 'label_efficiency.md', 'label_efficiency.png', 'label_efficiency_curves.png']
    assert (res/'label_efficiency_simmim.json').is_file() and not (res/'label_efficiency.json').exists()
    assert json.loads((res/'legacy.json').read_text())['label_efficiency']['file'] == 'history/label_efficiency.json'
    study._retire_legacy(res, 'label_efficiency')                       # already retired: nothing moves
    assert (res/'history'/'label_efficiency.json').read_text() == 'label_efficiency.json'
    (res/'label_efficiency.json').write_text('new'); (res/'legacy.json').write_text(json.dumps({'label_efficiency': dict(command='c', commit='d', study='e')}))
    with pytest.raises(SystemExit): study._retire_legacy(res, 'label_efficiency')    # history/ holds files of that name: refuse
    assert (res/'label_efficiency.json').read_text() == 'new'
