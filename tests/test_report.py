"""benchmarks/report.py, the renderer of the Results page and of the README's results: its arithmetic on records made
up here, its tables on the committed records, and the stored outputs of the pages that use it (they must be what
the renderer makes of the committed records today, so no page can quote a number its records do not hold)."""
import ast, importlib.util, json, re, statistics
from pathlib import Path
import pytest

from benchmarks import report as R

ROOT = Path(__file__).resolve().parent.parent

def _rec(method, protocol, f, seed, acc, epochs=None):
    pre = None if epochs is None else dict(epochs=epochs, steps=epochs*10, images_per_s=100.0, train_minutes=epochs*2.0, minutes=epochs*2.1,
                                           knn_curve=[dict(epoch=0, knn_accuracy=0.5), dict(epoch=epochs, knn_accuracy=0.6)])
    return dict(method=method, protocol=protocol, label_fraction=f, seed=seed, test_accuracy=acc, train_images=round(60000*f),
                minutes=1.0, pretraining=pre, run=dict(command='cmd', stage_total_minutes=9.0, finished='today',
                                                       machine=dict(cpu='cpu', logical_cpus=2, torch_threads=2, torch='2', gpu='none')))

@pytest.fixture
def recs():
    out = []
    for s, (r, g, m) in enumerate([(0.70, 0.78, 0.75), (0.72, 0.77, 0.76), (0.71, 0.80, 0.74)]):
        out += [_rec('random', 'finetune', 0.01, s, r), _rec('gmml', 'finetune', 0.01, s, g, epochs=5),
                _rec('mae_time', 'finetune', 0.01, s, m, epochs=9), _rec('gmml', 'linear', 0.01, s, g - 0.1, epochs=5)]
    out.append(_rec('random', 'finetune', 0.01, 7, 0.99))            # a seed GMML lacks: never paired
    return out

def test_mean_std_and_formatting():
    assert R.mean_std([0.5, 0.7]) == pytest.approx((60.0, 100*statistics.stdev([0.5, 0.7])))
    assert R.pm([0.5, 0.7]) == '60.0 ± 14.1' and R.pm([0.05], signed=True) == '+5.0 ± 0.0' and R.pm([-0.02, -0.04], signed=True) == '-3.0 ± 1.4'
    assert R.pm([]) == '—' and R.pct(0.7821) == '78.2'
    with pytest.raises(ValueError): R.mean_std([])
    assert R.md_table(['a', 'b'], [[1, 2]]) == '| a | b |\n|---|---|\n| 1 | 2 |'

def test_paired_differences_use_only_shared_seeds_in_seed_order(recs):
    d = R.paired(recs, 'gmml', 'random', 0.01)
    assert d == pytest.approx([0.08, 0.05, 0.09])                     # seeds 0, 1, 2; seed 7 has no GMML run
    assert R.paired(list(reversed(recs)), 'gmml', 'random', 0.01) == pytest.approx(d)
    assert R.paired(recs, 'gmml', 'random', 0.1) == []

def test_labels_carry_the_pretraining_epochs(recs):
    assert R.label(recs, 'gmml') == 'GMML, 5 epochs' and R.label(recs, 'mae_time') == 'MAE, 9 epochs'
    assert R.label(recs, 'random') == 'random init' and R.methods(recs) == ['random', 'gmml', 'mae_time']

def test_tables_show_the_records_means_and_paired_gains(recs):
    t = R.label_efficiency_table(recs, fractions=(0.01, 0.1))
    random_accs = [r['test_accuracy'] for r in recs if (r['method'], r['protocol']) == ('random', 'finetune')]
    assert f"| random init | finetune | {R.pm(random_accs)} | — |" in t       # all four random-init seeds; no 10 % runs
    assert '| GMML, 5 epochs | linear probe | 68.3 ± 1.5 | — |' in t and 'k-NN' not in t      # no k-NN records, no k-NN rows
    g = R.gains_table(recs, fractions=(0.01,))
    assert '| GMML, 5 epochs − random init | +7.3 ± 2.1 |' in g
    assert '| GMML, 5 epochs − MAE, 9 epochs | +3.3 ± 2.5 |' in g
    p = R.pretraining_table(recs)
    assert '| MAE, 9 epochs | 9 | 90 | 100 | 18.0 | 50.0 → 60.0 |' in p
    info = R.run_info(recs)
    assert info['total_minutes'] == 9.0 and info['stage_minutes']['pretraining'] == pytest.approx(10.5 + 18.9)

def test_missing_record_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='has not been run'): R.load('no_such_study')
    with pytest.raises(FileNotFoundError, match='no record'): R.load(tmp_path/'x.json')

def test_every_table_renders_from_the_committed_records():
    "Each renderer runs on the committed records and shows the numbers they hold (recomputed here with statistics)."
    rerun = R.load('label_efficiency')
    g = [100*x['test_accuracy'] for x in rerun if (x['method'], x['protocol'], x['label_fraction']) == ('gmml', 'finetune', 0.01)]
    cell = f"{statistics.mean(g):.1f} ± {statistics.stdev(g):.1f}"
    assert f"| GMML, 5 epochs | finetune | {cell} |" in R.label_efficiency_table(rerun)
    assert f"| GMML, 5 epochs | {cell} |" in R.readme_table()
    for fn in (R.longer_finetune_table, R.longer_pretrain_table, R.wider_encoder_table, R.finetune_recipe_table,
               R.throughput_table, R.ratios_table, R.readme_summary, R.quick_start_table, R.quick_start_sentence):
        out = fn()
        assert isinstance(out, str) and re.search(r'\d', out), fn.__name__
    h = R.load('host')['settings']['tiny']['per_batch']['GMML']
    assert f"| GMML | {h['ops']:,.0f} | {h['launches']:,.0f} |" in R.host_table()
    lp = R.load('label_efficiency_longer_pretrain')
    row = next(f for f in lp['finetunes'] if (f['label_fraction'], f['finetune_epochs']) == (0.01, 160))
    assert f"| 1 % | 160 | {R.pm(row['test_accuracy']['random'])} | {R.pm(row['test_accuracy']['gmml'])} | {R.pm(row['test_accuracy']['new'])} |" in R.longer_pretrain_table()

def test_quick_start_record_is_complete_and_consistent():
    spec = importlib.util.spec_from_file_location('qs', ROOT/'tools'/'quick_start.py')
    qs = importlib.util.module_from_spec(spec); spec.loader.exec_module(qs)
    rec = R.quick_start()
    assert rec['commands'] == list(qs.COMMANDS) and rec['finetune']['options'] == qs.FINETUNE_OPTIONS
    assert rec['gap_points'] == pytest.approx(100*(rec['accuracy']['pretrained'] - rec['accuracy']['random_init']), abs=0.01)
    assert rec['compared_with_pretrained_run'] and all(m > 0 for m in rec['minutes'].values())
    assert rec['pretrain']['valid_loss_after'] < rec['pretrain']['valid_loss_before']
    assert (ROOT/'docs'/'images'/'main_job.png').stat().st_size > 10_000

def _cells(nb):
    for c in json.loads((ROOT/'nbs'/f'{nb}.ipynb').read_text(encoding='utf-8'))['cells']:
        if c['cell_type'] == 'code': yield ''.join(c['source']), c.get('outputs', [])

@pytest.mark.parametrize('nb', ['index', 'results'])
def test_stored_pages_are_what_the_renderer_makes_of_the_committed_records(nb, monkeypatch):
    "Re-run the page's rendering cells (not its training cells) and compare with the markdown stored in the notebook."
    monkeypatch.chdir(ROOT/'nbs')
    ns, checked = {}, 0
    for src, outs in _cells(nb):
        body = '\n'.join(l for l in src.splitlines() if not l.startswith('#|'))
        stored = [''.join(o['data']['text/markdown']) for o in outs if 'text/markdown' in o.get('data', {})]
        if not (stored or re.search(r'^#\|\s*(hide|echo:\s*false)', src, re.M)): continue       # a code example, not rendering
        tree = ast.parse(body)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, nb, 'exec'), ns)
        value = eval(compile(ast.Expression(last.value), nb, 'eval'), ns) if last is not None else None
        if stored:
            assert getattr(value, 'data', None) == stored[0], f'{nb}: a stored table differs from its records; run `bash run.sh notebooks {nb}`'
            checked += 1
    assert checked >= 2

def test_readme_is_a_front_page():
    readme = (ROOT/'README.md').read_text(encoding='utf-8')
    assert len(readme) <= 12_000, len(readme)
    links = re.findall(r'\]\(((?!https?:)[^)#]+)\)', readme)
    missing = [l for l in links if not (ROOT/l).exists()]
    assert links and not missing, missing                              # every relative link and image resolves in the repository
    assert 'python -m gmml_fast.launch --gpus 0,1 script.py' in readme and 'pip install -e .' in readme   # the commands users type

def _throughput_record(tmp_path):
    "A made-up throughput record in the study's schema: images/s of a ViT-Tiny, a ViT-Nano/6 and a corruption step, and two ratios."
    ips = {'gmml_corrupt, batched (256×3×32×32)': 1000.0, 'GMML step (fastai)': 50.0, 'finetune step, CE (fastai)': 60.0,
           'finetune step, CE + DRLoc + ME (fastai)': 40.0, 'GMML step, ViT-Nano/6 at 28 px, float32 (fastai)': 300.0,
           'k-NN monitor read-out (2,000 + 500 images)': 1000.0}
    rat = [dict(id='gmml_vs_ce_tiny', label='GMML step time / CE step time, ViT-Tiny', numerator='GMML step (fastai)',
                denominator='finetune step, CE (fastai)', numerator_name='the GMML step', denominator_name='the CE step',
                kind='comparison', time_ratio=1.2, target=1.1, met=False),
           dict(id='ce_drloc_me_vs_ce_tiny', label='CE + DRLoc + ME step time / CE step time, ViT-Tiny', numerator='finetune step, CE + DRLoc + ME (fastai)',
                denominator='finetune step, CE (fastai)', numerator_name='the CE + DRLoc + ME step', denominator_name='the CE step',
                kind='comparison', time_ratio=1.5),
           dict(id='knn_monitor_vs_epoch_nano', label='k-NN monitor time / pretraining epoch time', numerator='k-NN monitor read-out (2,000 + 500 images)',
                denominator='GMML step, ViT-Nano/6 at 28 px, float32 (fastai)', numerator_name='the k-NN monitor read-out',
                denominator_name='one pretraining epoch', kind='overhead', numerator_images=2500, denominator_images=30000, time_ratio=0.025)]
    p = tmp_path/'throughput.json'
    p.write_text(json.dumps(dict(setup='ViT-Tiny (192-d, 12 blocks, patch 4) on 3×32×32 Fashion-MNIST batches of 128 and ViT-Nano/6 on 1×28×28 ones',
                                 images_per_s=ips, ratios=rat)), encoding='utf-8')
    return p

def test_ratios_table_reads_every_ratio_as_step_time_over_step_time(tmp_path):
    t = R.ratios_table(_throughput_record(tmp_path))
    assert t.splitlines()[0] == '| ratio (measured in one run) | step time ratio | reads as | target |'
    assert '| GMML step time / CE step time, ViT-Tiny | 1.20× | The GMML step takes 1.20× the time of the CE step: slower | ≤ 1.1×: missed (1.200×) |' in t
    assert '| 1.50× | The CE + DRLoc + ME step takes 1.50× the time of the CE step: slower | — |' in t
    assert '| 0.025× | The k-NN monitor read-out takes 0.025× the time of one pretraining epoch: it adds 2.5 % to it | — |' in t
    assert R.ratio_reads_as(dict(numerator_name='a', denominator_name='b', time_ratio=0.5)) == 'A takes 0.50× the time of b: faster'
    assert R.ratio_reads_as(dict(numerator_name='a', denominator_name='b', time_ratio=1.001)).endswith(': the same')

def test_throughput_table_puts_each_step_under_the_setting_it_was_measured_at(tmp_path):
    p = _throughput_record(tmp_path)
    g = R.throughput_groups(R.load(p))
    assert g == {'Corruption alone (`gmml_corrupt`, no model), random 256×3×32×32 batches': ['gmml_corrupt, batched (256×3×32×32)'],
                 'ViT-Tiny (192-d, 12 blocks, patch 4), 3×32×32 Fashion-MNIST images, batches of 128':
                     ['GMML step (fastai)', 'finetune step, CE (fastai)', 'finetune step, CE + DRLoc + ME (fastai)'],
                 'ViT-Nano/6, 1×28×28 Fashion-MNIST images, batches of 128': ['GMML step, ViT-Nano/6 at 28 px, float32 (fastai)'],
                 "The pretraining monitors' read-out, with the GMML encoder of ViT-Nano/6, 1×28×28 Fashion-MNIST images":
                     ['k-NN monitor read-out (2,000 + 500 images)']}
    t = R.throughput_table(p)
    assert '**ViT-Nano/6, 1×28×28 Fashion-MNIST images, batches of 128**\n\n| step | images/s |\n|---|---|\n| GMML step, ViT-Nano/6 at 28 px, float32 (fastai) | 300 |' in t
    assert 'ViT-Tiny' not in R.throughput_table(p, keys=['GMML step, ViT-Nano/6 at 28 px, float32 (fastai)'])
    d = R.load('throughput')                           # the committed record: no ViT-Nano/6 step under a ViT-Tiny heading, nor the reverse
    for head, keys in R.throughput_groups(d).items():
        model = 'ViT-Tiny' if head.startswith('ViT-Tiny') else 'ViT-Nano/6' if 'ViT-Nano/6' in head else None
        assert model is not None or all(k.startswith('gmml_corrupt') for k in keys), head
        if model == 'ViT-Tiny': assert not any('ViT-Nano' in k or k.startswith('gmml_corrupt') for k in keys), head
        if model == 'ViT-Nano/6': assert all('ViT-Nano/6' in k or 'monitor read-out' in k for k in keys), head
        if model: assert re.search(re.escape(model) + r'( \([^)]*\))? on ' + re.search(r'\d+×\d+×\d+', head)[0], d['setup']), head   # its image size, as in setup
    assert sum(map(len, R.throughput_groups(d).values())) == len(d['images_per_s'])

def test_a_rerun_legacy_record_becomes_history(tmp_path, monkeypatch):
    "Once the runner reran a study, its legacy record lives under history/: the Reproduce table lists it there, and the Results page quotes what it measured, with its commit."
    old = [_rec(m, 'finetune', f, s, a + (0.05 if m == 'gmml' else 0) + s/100) for f in (0.01, 0.1) for s in range(3)
           for m, a in (('random', 0.6), ('gmml', 0.6))]
    (tmp_path/'history').mkdir()
    (tmp_path/'history'/'label_efficiency.json').write_text(json.dumps(old))
    entry = dict(command='python benchmarks/bench_old.py --threads 2', commit='abc1234', study='label_efficiency')
    (tmp_path/'legacy.json').write_text(json.dumps({'label_efficiency': dict(entry, file='history/label_efficiency.json')}))
    monkeypatch.setattr(R, 'RESULTS', tmp_path); monkeypatch.setattr(R, 'LEGACY', tmp_path/'legacy.json')
    s = R.history_sentence()
    assert 'commit abc1234' in s and '`benchmarks/results/history/label_efficiency.json`' in s, s
    assert 'GMML +5.0 ± 0.0 points over random init at 1 % and +5.0 ± 0.0 at 10 %' in s, s
    assert ('| `history/label_efficiency` | `python benchmarks/bench_old.py` | abc1234 | `label_efficiency` (rerun: this file is history) |'
            in R.legacy_table()), R.legacy_table()
    (tmp_path/'label_efficiency.json').write_text(json.dumps(old + [_rec('cnn', 'finetune', f, s, 0.7) for f in (0.01, 0.1) for s in range(3)]))
    assert 'earlier version of the code' not in R.readme_summary() and 'ResNet stays ahead of GMML' in R.readme_summary()
    (tmp_path/'legacy.json').write_text(json.dumps({'label_efficiency': entry}))       # not rerun yet: no history to quote
    assert R.history_sentence() == ''
    assert 'These numbers were measured by an earlier version of the code' in R.readme_summary()   # and the README says so
