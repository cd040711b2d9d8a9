"The label-efficiency benchmark: its committed results are complete and consistent, and the script never overwrites results."
import json, re, statistics, subprocess, sys
from pathlib import Path

BENCH = Path(__file__).parent.parent/'benchmarks'
RESULTS = BENCH/'results'

def test_label_efficiency_results_are_complete_and_consistent():
    recs = json.loads((RESULTS/'label_efficiency.json').read_text())
    assert isinstance(recs, list)
    # the schema: one record per initialisation × label fraction × seed, accuracy on the 10k test images
    keys = sorted((r['method'], r['label_fraction'], r['seed']) for r in recs)
    assert keys == sorted((m, f, s) for m in ('random', 'gmml', 'mae') for f in (0.01, 0.1) for s in (0, 1, 2))
    for r in recs:
        assert 0 <= r['test_accuracy'] <= 1 and r['test_images'] == 10000
        assert r['train_images'] == round(60000*r['label_fraction'])
        assert r['pretrain_images'] == (0 if r['method'] == 'random' else 60000)
        assert r['run']['machine']['torch_threads'] >= 1 and r['run']['wall_minutes'] > 0 and r['run']['command']
    # the same finetuning budget for every initialisation at a given label fraction
    for f in (0.01, 0.1):
        assert len({(r['finetune_steps'], r['finetune_bs']) for r in recs if r['label_fraction'] == f}) == 1
    # the markdown table shows the means and stds of these records (nothing typed by hand)
    md = (RESULTS/'label_efficiency.md').read_text()
    names = {'random': 'random init', 'gmml': 'GMML', 'mae': 'MAE'}
    for m, name in names.items():
        row = re.search(rf'^\| {name} \| ([\d.]+) ± ([\d.]+) \| ([\d.]+) ± ([\d.]+) \|$', md, re.M)
        assert row, name
        for j, f in enumerate((0.01, 0.1)):
            acc = [100*r['test_accuracy'] for r in recs if r['method'] == m and r['label_fraction'] == f]
            assert float(row[1 + 2*j]) == round(statistics.mean(acc), 1)
            assert float(row[2 + 2*j]) == round(statistics.stdev(acc), 1)
    # the README quotes the same table
    readme = (BENCH.parent/'README.md').read_text()
    for m, name in (('random', 'random'), ('gmml', 'GMML'), ('mae', 'MAE')):
        means = [f"{statistics.mean(100*r['test_accuracy'] for r in recs if r['method'] == m and r['label_fraction'] == f):.1f}"
                 for f in (0.01, 0.1)]
        assert re.search(rf'^\| {name} \| {means[0]} ± [\d.]+ \| {means[1]} ± [\d.]+ \|$', readme, re.M), name

def test_label_efficiency_refuses_to_overwrite(tmp_path):
    (tmp_path/'label_efficiency_quick.json').write_text('[]')
    r = subprocess.run([sys.executable, str(BENCH/'bench_label_efficiency.py'), '--quick', '--out', str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and '--overwrite' in r.stderr
    assert (tmp_path/'label_efficiency_quick.json').read_text() == '[]'       # untouched
