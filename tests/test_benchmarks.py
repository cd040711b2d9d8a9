"The label-efficiency benchmark: its committed results are complete and consistent, its quick mode runs and resumes, it never overwrites results; and its follow-ups (longer finetunes, longer pretraining) match it."
import json, re, statistics, subprocess, sys
import pytest
from pathlib import Path

BENCH = Path(__file__).parent.parent/'benchmarks'
RESULTS = BENCH/'results'
NAMES = {'random': 'random init', 'gmml': 'GMML', 'mae': 'MAE (5 epochs)', 'mae_time': 'MAE (9 epochs)', 'simmim': 'SimMIM',
         'cnn': 'ResNet from scratch'}

def _mean_std(v): return round(100*statistics.mean(v), 1), round(100*statistics.stdev(v), 1)
def _pm(v): return f"{100*statistics.mean(v):.1f} ± {100*statistics.stdev(v):.1f}"     # the reports' 'mean ± std' in percent

def test_label_efficiency_results_are_complete_and_consistent():
    recs = json.loads((RESULTS/'label_efficiency.json').read_text())
    assert isinstance(recs, list)
    # one record per initialisation × protocol × label fraction × seed, accuracy on the 10k test images
    keys = sorted((r['method'], r['protocol'], r['label_fraction'], r['seed']) for r in recs)
    frozen = [(m, p, f, s) for m in ('random', 'gmml', 'mae', 'mae_time', 'simmim') for p in ('knn', 'linear') for f in (0.01, 0.1) for s in (0, 1, 2)]
    ft = [(m, 'finetune', 0.01, s) for m in NAMES for s in (0, 1, 2)]
    ft10 = [(m, 'finetune', 0.1, s) for m in ('random', 'gmml', 'mae', 'simmim', 'cnn') for s in (0, 1, 2)]
    md = (RESULTS/'label_efficiency.md').read_text()
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

def _run(*args, timeout=600):
    return subprocess.run([sys.executable, str(BENCH/'bench_label_efficiency.py'), '--quick', *args],
                          capture_output=True, text=True, timeout=timeout, cwd=BENCH)

def test_label_efficiency_refuses_to_overwrite(tmp_path):
    (tmp_path/'label_efficiency_quick.json').write_text('[]')
    r = _run('--out', str(tmp_path), '--state', str(tmp_path/'state'))
    assert r.returncode == 2 and '--overwrite' in r.stderr
    assert (tmp_path/'label_efficiency_quick.json').read_text() == '[]'       # untouched
    assert not (tmp_path/'state').exists()                                    # and nothing was computed

def test_label_efficiency_quick_runs_and_resumes(tmp_path):
    out, state = tmp_path/'out', tmp_path/'state'
    r = _run('--out', str(out), '--state', str(state), '--threads', '2', '--simmim')
    assert r.returncode == 0, r.stderr[-2000:]
    recs = json.loads((out/'label_efficiency_quick.json').read_text())
    assert {(x['method'], x['protocol']) for x in recs} == (
        {(m, p) for m in ('random', 'gmml', 'mae', 'mae_time', 'simmim') for p in ('knn', 'linear')} | {(m, 'finetune') for m in NAMES})
    for f in ('md', 'png'): assert (out/f'label_efficiency_quick.{f}').stat().st_size > 0
    assert (out/'label_efficiency_quick_curves.png').stat().st_size > 0
    # an interrupted run continues: drop one finished finetune, rerun; only that stage is computed again, with the same result
    lost = state/'finetune_gmml_0.01_0.json'
    before = json.loads(lost.read_text()); lost.unlink()
    r = _run('--out', str(out), '--state', str(state), '--threads', '2', '--overwrite', '--report')   # report what is there
    assert r.returncode == 0 and not lost.exists()
    assert '**Not run in this report** (1 finetunes' in (out/'label_efficiency_quick.md').read_text()
    r = _run('--out', str(out), '--state', str(state), '--threads', '2', '--overwrite')
    assert r.returncode == 0, r.stderr[-2000:]
    assert '14 finished stages found: continuing' in r.stdout
    assert len(re.findall(r'finetune \d+% \(', r.stdout)) == 1 and not re.search(r'\] \w+: pretraining', r.stdout)
    after = json.loads(lost.read_text())
    assert after['test_accuracy'] == before['test_accuracy'] and after['loss_curve'] == before['loss_curve']
    # without --simmim (the default) the same state serves, and the report leaves SimMIM out
    assert {x['method'] for x in json.loads((out/'label_efficiency_quick.json').read_text())} == set(NAMES) - {'simmim'}
    assert 'SimMIM' not in (out/'label_efficiency_quick.md').read_text()
    # a state folder of other settings is refused instead of mixed in
    (state/'config.json').write_text('{}')
    r = _run('--out', str(out), '--state', str(state), '--overwrite')
    assert r.returncode == 2 and '--fresh' in r.stderr

def test_default_rerun_is_complete_without_simmim_and_its_report_shows_its_records():
    "label_efficiency_rerun.*: the default command (SimMIM opt-in) from an empty state to the report in one process; complete, SimMIM-free, and its report shows its total and its GMML rows."
    recs = json.loads((RESULTS/'label_efficiency_rerun.json').read_text())
    keys = sorted((r['method'], r['protocol'], r['label_fraction'], r['seed']) for r in recs)
    seeds, fr = (0, 1, 2), (0.01, 0.1)
    want = ([(m, p, f, s) for m in ('random', 'gmml', 'mae', 'mae_time') for p in ('knn', 'linear') for f in fr for s in seeds]
            + [(m, 'finetune', 0.01, s) for m in ('random', 'gmml', 'mae', 'mae_time', 'cnn') for s in seeds]
            + [(m, 'finetune', 0.1, s) for m in ('random', 'gmml', 'mae', 'cnn') for s in seeds])
    assert keys == sorted(want)
    run = recs[0]['run']
    assert all(r['run'] == run for r in recs)                    # one run wrote every record
    assert '--simmim' not in run['command'] and '--report' not in run['command'] and '--note' not in run['command']
    md = (RESULTS/'label_efficiency_rerun.md').read_text()
    assert 'SimMIM' not in md and '](label_efficiency_rerun.png)' in md and '](label_efficiency_rerun_curves.png)' in md
    total = f"{run['stage_total_minutes']:.1f} min"
    assert f"**{total}**" in md                                  # the report's time of the default run, not a number nearby
    for f in fr:                                                 # the report's GMML and random-init rows of the rerun
        for m in ('gmml', 'random'):
            acc = [r['test_accuracy'] for r in recs if (r['method'], r['protocol'], r['label_fraction']) == (m, 'finetune', f)]
            assert _pm(acc) in md, (m, f)

@pytest.mark.parametrize('stem,fraction,steps_per_epoch', [('label_efficiency_longer', 0.1, 93), ('label_efficiency_longer_1pct', 0.01, 9),
                                                            ('label_efficiency_longer_60ep', 0.1, 93)])
def test_longer_finetune_results_match_the_study_and_the_script_refuses_a_missing_state(tmp_path, stem, fraction, steps_per_epoch):
    "benchmarks/bench_longer_finetune.py: the same finetunes as the study (subset, settings, test set), only longer; its table shows the JSON."
    d = json.loads((RESULTS/f'{stem}.json').read_text())
    md = (RESULTS/f'{stem}.md').read_text()
    study = {(r['method'], r['seed']): r for r in json.loads((RESULTS/'label_efficiency.json').read_text())
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
    sys.path.insert(0, str(BENCH))                            # in-process: one more interpreter would cost ~10 s
    try:
        import bench_longer_finetune
        with pytest.raises(SystemExit) as e: bench_longer_finetune.main(['--state', str(tmp_path/'none'), '--fraction', str(fraction)])
        bad = []
        for stem in ('../elsewhere', '..'):                   # a path, or a name that is only dots
            with pytest.raises(SystemExit) as e2: bench_longer_finetune.main(['--state', str(tmp_path), '--stem', stem])
            bad.append(str(e2.value.code))
    finally: sys.path.remove(str(BENCH))
    msg = str(e.value.code)                                   # sys.exit(message): one line, no traceback, nothing written
    assert msg.startswith('error:') and 'lacks the study' in msg and '\n' not in msg
    assert all(m.startswith('error: --stem must be a plain file name') for m in bad) and not list(tmp_path.iterdir())

def test_longer_pretrain_results_match_the_study_and_the_script_refuses_a_missing_state(tmp_path):
    "benchmarks/bench_longer_pretrain.py: only GMML's pretraining (epochs, decoder) differs from the study; the finetunes and read-outs are the study's; its table shows the JSON."
    d = json.loads((RESULTS/'label_efficiency_longer_pretrain.json').read_text())
    md = (RESULTS/'label_efficiency_longer_pretrain.md').read_text()
    pre, before = d['pretraining'], d['study_pretraining']
    assert pre['epochs'] > before['epochs'] and pre['steps'] == pre['epochs']*468 and pre['decoder_hidden'] == 96
    for k in ('images', 'bs', 'lr', 'method'): assert pre[k] == before[k], k
    assert len(pre['knn_curve']) == pre['epochs'] + 1
    assert pre['knn_curve'][0]['knn_accuracy'] == before['knn_curve'][0]['knn_accuracy']     # the same seed-0 encoder before training
    study = {(r['method'], r['protocol'], r['label_fraction'], r['seed']): r for r in json.loads((RESULTS/'label_efficiency.json').read_text())}
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
    sys.path.insert(0, str(BENCH))
    try:
        import bench_longer_pretrain
        with pytest.raises(SystemExit) as e: bench_longer_pretrain.main(['--state', str(tmp_path/'none')])
    finally: sys.path.remove(str(BENCH))
    msg = str(e.value.code)
    assert msg.startswith('error:') and 'lacks' in msg and '\n' not in msg and not (tmp_path/'none').exists()

def test_encoder_width_results_are_complete_and_their_table_shows_them():
    "benchmarks/bench_encoder_width.py: both encoders for every seed, under one setting, read out on held-out training images; the table is the JSON's."
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

def _recipe_script():
    sys.path.insert(0, str(BENCH))
    try:
        import bench_finetune_recipe
        return bench_finetune_recipe
    finally: sys.path.remove(str(BENCH))

def test_finetune_recipe_quick_runs_resumes_and_chooses_by_heldout_accuracy(tmp_path):
    "benchmarks/bench_finetune_recipe.py --quick: selection finetunes on held-out training images, the best variant per init goes to the test; a rerun computes nothing."
    from gmml_fast.patches import create_encoder
    from gmml_fast.models import export_encoder
    state = tmp_path/'state'; state.mkdir()
    enc = export_encoder(create_encoder('nano_28', in_chans=1, depth=6), state/'enc.safetensors')   # a stand-in for the study's GMML encoder
    (state/'pretrain_gmml.json').write_text(json.dumps({'encoder': str(enc)}))
    run = lambda: subprocess.run([sys.executable, str(BENCH/'bench_finetune_recipe.py'), '--state', str(state), '--quick'],
                                 capture_output=True, text=True, timeout=600, cwd=BENCH)
    r = run()
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((state/'finetune_recipe_quick.json').read_text())
    sel = {(x['method'], x['variant']): x['heldout_accuracy'] for x in d['selection']}
    assert set(sel) == {('gmml', 'study'), ('gmml', 'drloc'), ('random', 'study')}
    assert d['chosen'] == {'gmml': max(('study', 'drloc'), key=lambda v: sel[('gmml', v)]), 'random': 'study'}
    assert {(x['method'], x['variant']) for x in d['test']} == set(d['chosen'].items())
    stages = sorted(p.name for p in state.glob('quick_recipe_*.json'))
    assert len(stages) == 5 and all('select' in s for s in stages[:3]) and all('test' in s for s in stages[3:])
    sel_rec = json.loads((state/'quick_recipe_select_gmml_drloc_0.json').read_text())
    assert sel_rec['extra'] == {'drloc': 0.1} and sel_rec['evaluated_on'].startswith('5%') and sel_rec['test_images'] == 3000
    assert sel_rec['train_images'] == 600                                      # the study's count, drawn from the other training images
    r = run()                                                                  # every stage is read back: no finetune runs again
    assert r.returncode == 0 and 'finetune 1%' not in r.stdout
    assert json.loads((state/'finetune_recipe_quick.json').read_text())['selection'] == d['selection']

def test_finetune_recipe_choice_and_missing_state(tmp_path):
    "choose() takes the best mean held-out accuracy (a tie goes to the variant listed first); a missing state is one line."
    m = _recipe_script()
    sel = {('gmml', v, s): {'test_accuracy': a} for v, accs in {'study': (0.7, 0.8), 'drloc': (0.8, 0.7), 'me': (0.6, 0.7)}.items()
           for s, a in enumerate(accs)}
    assert m.choose(sel, {'gmml': ['study', 'drloc', 'me']}, [0, 1]) == {'gmml': 'study'}
    sel[('gmml', 'me', 1)] = {'test_accuracy': 0.95}
    assert m.choose(sel, {'gmml': ['study', 'drloc', 'me']}, [0, 1]) == {'gmml': 'me'}
    with pytest.raises(SystemExit) as e: m.main(['--state', str(tmp_path/'none')])
    msg = str(e.value.code)
    assert msg.startswith('error:') and 'pretrain_gmml.json' in msg and '\n' not in msg
    (tmp_path/'st').mkdir(); (tmp_path/'st'/'pretrain_gmml.json').write_text('{}')           # an encoder, but no study finetunes for seed 7
    with pytest.raises(SystemExit) as e: m.main(['--state', str(tmp_path/'st'), '--seeds', '7'])
    msg = str(e.value.code)
    assert msg.startswith('error:') and 'finetune_gmml_0.01_7.json' in msg and '\n' not in msg

def test_finetune_recipe_results_chose_on_heldout_images_and_tested_on_the_studys_subsets():
    "benchmarks/results/finetune_recipe.*: every variant for every seed on held-out training images, the choice is their best mean, the test runs are the study's finetunes with the chosen arguments; the tables show the JSON."
    m = _recipe_script()
    d = json.loads((RESULTS/'finetune_recipe.json').read_text())
    md = (RESULTS/'finetune_recipe.md').read_text()
    seeds, plan = d['meta']['seeds'], d['plan']
    assert seeds == [0, 1, 2] and plan == m.PLAN and d['variants'] == m.VARIANTS and d['meta']['finetune_epochs'] == 80
    sel = {(x['method'], x['variant'], x['seed']): {'test_accuracy': x['heldout_accuracy']} for x in d['selection']}
    assert sorted(sel) == sorted((i, v, s) for i, vs in plan.items() for v in vs for s in seeds)
    assert d['chosen'] == m.choose(sel, plan, seeds)
    study = {(r['method'], r['seed']): r['test_accuracy'] for r in json.loads((RESULTS/'label_efficiency.json').read_text())
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

def test_wider_encoder_refuses_bad_arguments_in_one_line(tmp_path):
    "benchmarks/bench_wider_encoder.py: a missing study state, the study's own encoder as --arch, or --epochs 0 each stop with one line, before anything runs."
    sys.path.insert(0, str(BENCH))
    try:
        import bench_wider_encoder as m
    finally: sys.path.remove(str(BENCH))
    for args, words in ((['--state', str(tmp_path/'none')], "lacks the study's 1 % finetunes"),
                        (['--state', str(tmp_path), '--arch', 'nano_28'], 'must differ'),
                        (['--state', str(tmp_path), '--epochs', '0'], '--epochs must be >= 1')):
        with pytest.raises(SystemExit) as e: m.main(args)
        msg = str(e.value.code)
        assert msg.startswith('error:') and words in msg and '\n' not in msg, msg
    assert not (tmp_path/'none').exists() and list(tmp_path.iterdir()) == []     # nothing was written

def test_wider_encoder_results_pair_the_studys_records():
    "benchmarks/results/wider_encoder.*: GMML and random init for seeds 0-2 with the wider encoder, each paired with the study's own ViT-Nano record; the table shows the JSON's numbers."
    d = json.loads((RESULTS/'wider_encoder.json').read_text())
    md = (RESULTS/'wider_encoder.md').read_text()
    seeds, arch = d['meta']['seeds'], d['meta']['arch']
    assert seeds == [0, 1, 2] and arch != 'nano_28' and d['pretraining']['arch'] == arch
    study = {(r['method'], r['seed']): r['test_accuracy'] for r in json.loads((RESULTS/'label_efficiency.json').read_text())
             if r['protocol'] == 'finetune' and r['label_fraction'] == 0.01}
    ft = {(x['method'], x['seed']): x for x in d['finetunes']}
    assert sorted(ft) == sorted((i, s) for i in ('gmml', 'random') for s in seeds)
    for (i, s), x in ft.items():
        assert x['arch'] == arch and x['study_test_accuracy'] == study[(i, s)] and 0.3 < x['test_accuracy'] < 1
    for i in ('random', 'gmml'):
        wide = [ft[(i, s)]['test_accuracy'] for s in seeds]
        diff = [w - study[(i, s)] for w, s in zip(wide, seeds)]
        assert f"{_pm(wide)} ({' / '.join(f'{100*w:.1f}' for w in wide)}) | {_pm(diff)} |" in md
