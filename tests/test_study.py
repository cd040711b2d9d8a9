"benchmarks/study.py (`python -m benchmarks.study`), the one runner of the benchmark studies: a quick study end to end, a resumed study computes only what is missing, a second study reads the first's shared stages back, --report computes nothing, bad input is one line; and the stage keys behind all of it."
import json, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT/'benchmarks'

def study(*args, timeout=900, script=False):
    "Run the runner as a user would (`python -m benchmarks.study` from the repository root; `script`: `python benchmarks/study.py`); one torch thread unless the test says otherwise (the suite runs one test at a time on 2 cores)."
    more = ['--threads', '1'] if args and not args[0].startswith('-') and args[0] != 'gpu' and '--threads' not in args else []
    how = [str(BENCH/'study.py')] if script else ['-m', 'benchmarks.study']
    return subprocess.run([sys.executable, *how, *args, *more], capture_output=True, text=True, timeout=timeout, cwd=ROOT)

def counts(r) -> tuple[int, int]:
    "(stages computed, stages read back) from the runner's last line."
    m = re.search(r'done: (\d+) stages computed, (\d+) read back', r.stdout)
    assert m, r.stdout[-2000:] + r.stderr[-2000:]
    return int(m[1]), int(m[2])

@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    "One quick label-efficiency study in a fresh stage folder, shared by the tests below (about a minute)."
    state = tmp_path_factory.mktemp('state')
    r = study('label_efficiency', '--quick', '--state', str(state))
    assert r.returncode == 0, r.stderr[-3000:]
    return state, r

@pytest.mark.slow
def test_a_quick_study_runs_end_to_end_and_report_reads_its_record(quick):
    from benchmarks import report as R
    state, r = quick
    out = state/'results'                                   # a quick record goes next to its stages, never into benchmarks/results
    recs = json.loads((out/'label_efficiency.json').read_text())
    pre = R.pretrainings(recs)
    inits = ('random', 'gmml', 'mae', *(['mae_time'] if 'mae_time' in pre else []))    # MAE at GMML's time: a row when it is more epochs
    assert {(x['method'], x['protocol']) for x in recs} == ({(m, p) for m in inits for p in ('knn', 'linear')} | {(m, 'finetune') for m in (*inits, 'cnn')})
    for x in recs:
        assert x['run']['mode'] == 'quick' and x['run']['command'].startswith('python -m benchmarks.study label_efficiency --quick --state ')
        assert x['test_images'] == 500 and 0.0 < x['test_accuracy'] <= 1
        assert (x['pretraining'] is None) == (x['method'] in ('random', 'cnn'))
    ft = [x for x in recs if x['protocol'] == 'finetune']
    assert {x['train_images'] for x in ft} == {600} and all(len(x['loss_curve']) == 2 for x in ft)
    e = round(pre['gmml']['train_minutes']/(pre['mae']['train_minutes']/pre['mae']['epochs']))
    assert pre['mae_time']['epochs'] == e if 'mae_time' in pre else e == pre['mae']['epochs']
    assert all(len(p['knn_curve']) == p['epochs'] + 1 and p['recipe'].endswith('@v1') for p in pre.values())
    md = (out/'label_efficiency.md').read_text()
    assert R.label_efficiency_table(recs, fractions=(0.01,)) in md and 'quick mode' in md
    for f in ('label_efficiency.png', 'label_efficiency_curves.png'): assert (out/f).stat().st_size > 10000
    # GMML, MAE and MAE at GMML's time (the same stage as MAE's when that is as many epochs); a frozen read-out of each and of
    # random init; a finetune of each, of random init and of the ResNet. A dependency is read back when a later stage needs it.
    n = 2 + ('mae_time' in pre)
    assert counts(r)[0] == n + (n + 1) + (n + 2)
    stages = sorted(p.name for p in state.glob('*.json'))
    assert len(stages) == 3*n + 3 and all(re.fullmatch(r'(pretrain|frozen|finetune)-[0-9a-f]{12}\.json', s) for s in stages)
    assert len(list(state.glob('pretrain-*.safetensors'))) == n and not list(state.glob('*.tmp'))

@pytest.mark.slow
def test_a_resumed_study_computes_only_the_missing_stage_and_gets_the_same_result(quick):
    state, _ = quick
    r = study('label_efficiency', '--quick', '--state', str(state), '--overwrite')
    assert r.returncode == 0 and counts(r)[0] == 0                  # everything read back
    # an interrupted run: one finetune is missing
    gmml_ft = next(p for p in state.glob('finetune-*.json')
                   if (c := json.loads(p.read_text())['stage']['config'])['pretrain'] and c['pretrain']['method'] == 'gmml')
    before = json.loads(gmml_ft.read_text()); gmml_ft.unlink()
    r = study('label_efficiency', '--quick', '--state', str(state), '--overwrite', '--report')      # the record of what is there
    assert r.returncode == 0 and counts(r)[0] == 0 and not gmml_ft.exists()
    assert gmml_ft.name in r.stdout                                  # listed as not run
    rec = json.loads((state/'results'/'label_efficiency.json').read_text())
    assert not [x for x in rec if (x['method'], x['protocol']) == ('gmml', 'finetune')]
    r = study('label_efficiency', '--quick', '--state', str(state), '--overwrite')
    assert r.returncode == 0 and counts(r)[0] == 1
    after = json.loads(gmml_ft.read_text())
    assert after['test_accuracy'] == before['test_accuracy'] and after['loss_curve'] == before['loss_curve']   # seeded: the same numbers

@pytest.mark.slow
def test_a_second_study_reads_the_first_studys_stages_back(quick):
    state, _ = quick
    n0 = len(list(state.glob('*.json')))
    r = study('longer_finetune', '--quick', '--state', str(state))
    assert r.returncode == 0, r.stderr[-3000:]
    computed, reused = counts(r)
    assert computed == 2 and reused >= 3          # the two longer finetunes; GMML's pretraining and the short finetunes are the study's
    assert len(list(state.glob('*.json'))) == n0 + 2
    d = json.loads((state/'results'/'label_efficiency_longer_1pct.json').read_text())
    study_rec = {x['method']: x for x in json.loads((state/'results'/'label_efficiency.json').read_text()) if x['protocol'] == 'finetune'}
    for row in d['rows']:
        assert row['short']['test_accuracy'] == study_rec[row['method']]['test_accuracy']      # the same stage, read back
        assert row['longer']['finetune_epochs'] == 4 and row['short']['finetune_epochs'] == 2
    assert 'Longer finetunes' in (state/'results'/'label_efficiency_longer_1pct.md').read_text()

@pytest.mark.slow
def test_bad_input_is_one_line_and_touches_nothing(tmp_path):
    for args, words in ((['nope'], "no study 'nope'"), ([], 'name a study'), (['throughput', '--threads', '0'], '--threads must be >= 1')):
        r = study(*args, '--state', str(tmp_path/'state'))
        assert r.returncode == 2 and r.stderr.strip().startswith('error:') and words in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    (tmp_path/'out').mkdir(); (tmp_path/'out'/'memory.json').write_text('{}')
    r = study('memory', '--quick', '--state', str(tmp_path/'state'), '--out', str(tmp_path/'out'))
    assert r.returncode == 2 and '--overwrite' in r.stderr and (tmp_path/'out'/'memory.json').read_text() == '{}'
    assert not (tmp_path/'state').exists()                          # refused before a stage folder was made
    (tmp_path/'empty').mkdir()
    r = study('label_efficiency', '--quick', '--report', '--state', str(tmp_path/'empty'), '--out', str(tmp_path/'o'))
    assert r.returncode == 1 and 'nothing to write' in r.stderr and not (tmp_path/'o').exists()
    (tmp_path/'file').write_text('')
    for args, words in ((['--state', str(tmp_path/'file')], 'is a file'), (['--report', '--state', str(tmp_path/'nowhere')], 'does not exist'),
                        (['--out', str(tmp_path/'file'), '--state', str(tmp_path/'empty')], 'is a file')):
        r = study('memory', '--quick', *args)
        assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path/'nowhere').exists()

@pytest.mark.skipif(__import__('torch').cuda.is_available(), reason='checks the refusal on a machine without CUDA')
def test_gpu_is_handed_to_the_gpu_study():
    "`study.py gpu ...` runs benchmarks/gpu.py with its own options: here its preflight, which refuses a machine without CUDA in one line."
    r = study('gpu', '--parts', 'throughput', '--preflight')
    assert r.returncode == 1 and 'no CUDA device' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr

def test_an_unreadable_stage_record_is_one_line(tmp_path):
    from benchmarks.stages import Store, StageFileError
    from benchmarks.configs import ReadoutStage
    st, cfg = Store(tmp_path), ReadoutStage(seed=1)
    st.path(cfg).write_text('{')                  # e.g. a disk that filled up under another tool
    with pytest.raises(StageFileError, match='delete it and run the study again'): st.run(cfg)

def test_list_names_every_study():
    "As a module (the documented form) and as a script of the installed package: the same list."
    from benchmarks.studies import STUDIES
    r = study('--list')
    assert r.returncode == 0, r.stderr
    for name in [*STUDIES, 'gpu']: assert re.search(rf'^{name} ', r.stdout, re.M), name
    s = study('--list', script=True)
    assert s.returncode == 0 and s.stdout == r.stdout, s.stderr

def test_stage_keys_follow_settings_and_recipes(tmp_path):
    from dataclasses import dataclass
    from benchmarks.stages import stage_key, Store
    from benchmarks.studies import pre_cfg, ft_cfg, frozen_cfg, LE
    from benchmarks.configs import StageConfig
    from gmml_fast.checked import hp
    m = LE['quick']
    key = lambda c: stage_key(c.kind, c.key_dict())
    a = pre_cfg(m, 'gmml')
    assert key(a) == key(pre_cfg(m, 'gmml'))                     # equal settings share
    assert key(a) != key(pre_cfg(m, 'gmml', epochs=2))
    assert key(a) != key(pre_cfg(m, 'gmml', overrides=dict(clip=1.0)))   # a recipe field
    assert stage_key('pretrain', a.key_dict()) != stage_key('frozen', a.key_dict())
    f = ft_cfg(m, 'gmml', a, 0.01, 0)
    assert key(f) != key(ft_cfg(m, 'gmml', pre_cfg(m, 'gmml', epochs=2), 0.01, 0))   # its pretraining is part of it
    assert f.key_dict()['pretrain'] == a.key_dict() and isinstance(frozen_cfg(m, None).key_dict()['fractions'], list)
    # a stage is computed once, written whole, then read back
    @dataclass(frozen=True)
    class Echo(StageConfig):
        kind = 'echo'
        x: int = hp(0, 'a number', within='[0, inf)')
    calls = []
    from benchmarks import stages
    stages.STAGES['echo'] = lambda cfg, store: calls.append(cfg) or dict(value=cfg.x)
    try:
        st = Store(tmp_path)
        assert st.run(Echo(x=1))['value'] == 1 and st.run(Echo(x=1))['value'] == 1 and len(calls) == 1
        assert st.ran == [st.path(Echo(x=1)).name] and st.reused == st.ran and not list(tmp_path.glob('*.tmp'))
        assert Store(tmp_path, compute=False).run(Echo(x=2)) is None and len(calls) == 1
        with pytest.raises(TypeError, match='typed config'): st.run(dict(x=1))
    finally: del stages.STAGES['echo']

def test_a_stage_config_out_of_range_is_one_error_naming_the_field():
    from benchmarks.configs import FinetuneStage, PretrainStage, HostStage
    with pytest.raises(ValueError, match=r'fraction must be in \(0, 1\], got 1.5'): FinetuneStage(fraction=1.5)
    with pytest.raises(ValueError, match='method must be one of gmml, mae, simmim'): PretrainStage(method='byol')
    with pytest.raises(ValueError, match='epochs must be an integer'): PretrainStage(epochs=2.5)
    with pytest.raises(ValueError, match='long must exceed short'): HostStage(short=10, long=10)

def test_a_measurement_is_not_read_back_for_other_code(tmp_path):
    "Timings and counts measure the code: a host, throughput or memory stage of one commit is not another's."
    from benchmarks.configs import HostStage, ThroughputStage, MemoryStage
    from benchmarks.stages import Store
    from benchmarks.studies import code_key
    st = Store(tmp_path)
    for cls in (HostStage, ThroughputStage, MemoryStage):
        assert st.path(cls(code='4e7eb06')) != st.path(cls(code='8f1f89d')) != st.path(cls(code='8f1f89d+'))
    assert re.fullmatch(r'[0-9a-f]{7,}\+?', code_key())

# Stage names of the label-efficiency study's records, computed from untyped config dicts (GMML's pretraining at e2c14fe,
# the other two at 1985867): typed configs must find every stage finished before them.
PRETRAIN_GMML_KEY, FINETUNE_GMML_1PCT_SEED0_KEY, FROZEN_RANDOM_KEY = '7c9376710425', '8900f7ec9ef2', '84318d00f8f8'

def test_typed_configs_name_the_stages_the_untyped_ones_did():
    "Same settings, same stage names as before the configs were typed."
    from benchmarks.stages import stage_key
    from benchmarks.studies import pre_cfg, ft_cfg, frozen_cfg, LE
    m = LE['full']
    g = pre_cfg(m, 'gmml')
    assert stage_key('pretrain', g.key_dict()) == PRETRAIN_GMML_KEY
    assert stage_key('finetune', ft_cfg(m, 'gmml', g, 0.01, 0).key_dict()) == FINETUNE_GMML_1PCT_SEED0_KEY
    assert stage_key('frozen', frozen_cfg(m, None).key_dict()) == FROZEN_RANDOM_KEY

def test_choose_takes_the_best_mean_and_breaks_ties_by_order():
    from benchmarks.studies import choose
    acc = {('gmml', 'study'): [0.7, 0.8], ('gmml', 'drloc'): [0.8, 0.7], ('gmml', 'me'): [0.6, 0.7]}
    assert choose(acc, {'gmml': ['study', 'drloc', 'me']}) == {'gmml': 'study'}
    acc[('gmml', 'me')] = [0.6, 0.95]
    assert choose(acc, {'gmml': ['study', 'drloc', 'me']}) == {'gmml': 'me'}
    assert choose({('gmml', 'study'): [0.5]}, {'gmml': ['study', 'drloc']}) == {}        # a variant not yet run: no choice
