"""The Results page and the README's results table, rendered from the committed records.

Every number that `nbs/results.ipynb` (the Results page) and `nbs/index.ipynb` (the README) show about measured
results comes from the JSON records the benchmark scripts wrote into `benchmarks/results/` and from the quick start's
record (`docs/images/quick_start.json`, written by `tools/quick_start.py`). This module reads them and formats
them: tables as markdown, numbers as text; nothing is typed by hand, so a page cannot drift from its records.

    from benchmarks.report import load, label_efficiency_table
    print(label_efficiency_table(load('label_efficiency')))

Conventions: accuracies are stored as fractions and shown in percent; "a ± b" is the mean and the sample standard
deviation over seeds; a gain "paired by seed" is the mean ± std of the per-seed differences.
"""
from __future__ import annotations
import json, statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT/'benchmarks'/'results'
QUICK_START = ROOT/'docs'/'images'/'quick_start.json'
FRACTIONS = (0.01, 0.1)
PROTOCOLS = {'finetune': 'finetune', 'linear': 'linear probe', 'knn': 'k-NN'}
_BASE_NAMES = {'random': 'random init', 'gmml': 'GMML', 'mae': 'MAE', 'mae_time': 'MAE', 'simmim': 'SimMIM',
               'cnn': 'ResNet from scratch'}
DASH = '—'


# ---------------------------------------------------------------------------------------------------- numbers
def load(name: str | Path):
    "A committed record: a stem of benchmarks/results/ (`'label_efficiency'`) or a path to a JSON file."
    p = Path(name)
    if p.suffix != '.json': p = RESULTS/f'{name}.json'
    if not p.is_file(): raise FileNotFoundError(f"no record {p}: the benchmark that writes it has not been run")
    return json.loads(p.read_text(encoding='utf-8'))

def mean_std(values, scale: float = 100.0) -> tuple[float, float]:
    "Mean and sample standard deviation of `values` times `scale` (0 for the std of a single value)."
    v = [scale*x for x in values]
    if not v: raise ValueError('mean_std needs at least one value')
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)

def pm(values, digits: int = 1, signed: bool = False, scale: float = 100.0) -> str:
    "'mean ± std' of `values` in percent (or points), `signed` puts a + on positive means; '—' for no values."
    if not values: return DASH
    m, s = mean_std(values, scale)
    return f"{m:+.{digits}f} ± {s:.{digits}f}" if signed else f"{m:.{digits}f} ± {s:.{digits}f}"

def pct(x, digits: int = 1) -> str:
    "A fraction as a percentage: 0.7821 -> '78.2'."
    return f'{100*x:.{digits}f}'

def md_table(header, rows) -> str:
    "A markdown table from a header and rows of cells (anything printable)."
    lines = ['| ' + ' | '.join(map(str, header)) + ' |', '|' + '---|'*len(header)]
    lines += ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows]
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------------- the study
def by_seed(recs, method: str, protocol: str, fraction: float) -> dict[int, float]:
    "{seed: test accuracy} of one initialisation × protocol × label fraction of a label-efficiency record list."
    return {r['seed']: r['test_accuracy'] for r in recs
            if (r['method'], r['protocol']) == (method, protocol) and abs(r['label_fraction'] - fraction) < 1e-9}

def paired(recs, a: str, b: str, fraction: float, protocol: str = 'finetune') -> list[float]:
    "Per-seed differences a − b (fractions) over the seeds both have, in seed order."
    x, y = by_seed(recs, a, protocol, fraction), by_seed(recs, b, protocol, fraction)
    return [x[s] - y[s] for s in sorted(set(x) & set(y))]

def pretrainings(recs) -> dict[str, dict]:
    "The pretraining run behind each pretrained initialisation of a record list (method -> its `pretraining` record)."
    return {r['method']: r['pretraining'] for r in recs if r.get('pretraining')}

def methods(recs) -> list[str]:
    "The initialisations of a record list, in the order of the pages (baselines, then the pretrainings, then the CNN)."
    order = list(_BASE_NAMES)
    return sorted({r['method'] for r in recs}, key=lambda m: (order.index(m) if m in order else len(order), m))

def label(recs, method: str) -> str:
    "The name an initialisation gets on the pages: pretrained ones carry their epochs ('MAE, 9 epochs')."
    base, pre = _BASE_NAMES.get(method, method), pretrainings(recs).get(method)
    return f"{base}, {epochs(pre['epochs'])}" if pre else base

def epochs(n: int) -> str:
    "'1 epoch', '5 epochs'."
    return f"{n} epoch{'s'*(n != 1)}"

def machine_line(m) -> str:
    "A record's machine in one line: legacy records store a sentence, the study runner's a dict (stages.machine)."
    if isinstance(m, str): return m
    return f"{m['cpu']}, {m['logical_cpus']} logical CPUs, {m['torch_threads']} torch threads, torch {m['torch']}, GPU: {m['gpu']}"

LEGACY = RESULTS/'legacy.json'

def legacy(name: str) -> dict | None:
    "The manifest entry of a record measured by a script that no longer exists (its original command and commit), or None for a record the study runner wrote."
    return json.loads(LEGACY.read_text(encoding='utf-8')).get(name) if LEGACY.is_file() else None

RUNNER_COMMANDS = ('python -m benchmarks.study ', 'python benchmarks/study.py ')     # the runner, as a module (now) or a script (older records)

def is_runner_command(cmd: str) -> bool:
    "Whether a record's command is the study runner's (`python -m benchmarks.study NAME ...`, or its script form in older records)."
    return cmd.startswith(RUNNER_COMMANDS)

def source_line(name: str) -> str:
    "How a record was made: the runner's command, or for a legacy record its original command, commit, and the study that measures the question now."
    d = load(name)
    cmd = (d[0]['run'] if isinstance(d, list) else d.get('meta', d))['command']
    leg = legacy(name)
    if leg is None or is_runner_command(cmd): return meta_line(name)   # the runner's own record
    now = f"; `python -m benchmarks.study {leg['study']}` measures it now" if leg.get('study') else ''
    return f"legacy record: `{leg['command'].split(' --note ')[0]}` at commit {leg['commit']}{now}"

def label_efficiency_table(recs, protocols=tuple(PROTOCOLS), fractions=FRACTIONS) -> str:
    "Test accuracy (%), mean ± std over seeds, per initialisation × protocol (rows) and label fraction (columns)."
    rows = []
    for p in protocols:
        for m in methods(recs):
            cells = [pm(list(by_seed(recs, m, p, f).values())) for f in fractions]
            if any(c != DASH for c in cells): rows.append([label(recs, m), PROTOCOLS[p], *cells])
    return md_table(['init', 'protocol', *[_fraction_head(recs, f) for f in fractions]], rows)

def _fraction_head(recs, f) -> str:
    n = next((r['train_images'] for r in recs if abs(r['label_fraction'] - f) < 1e-9), None)
    return f"{100*f:g} % labels" + (f" ({n:,} images)" if n else '')

def gains(recs, fraction: float, protocol: str = 'finetune') -> list[tuple[str, list[float]]]:
    "(name, per-seed differences) for every pretrained initialisation minus random init, and GMML minus each other one."
    out, pre = [], [m for m in methods(recs) if m in pretrainings(recs)]
    for m in pre: out.append((f"{label(recs, m)} − random init", paired(recs, m, 'random', fraction, protocol)))
    for m in methods(recs):
        if m not in ('gmml', 'random'): out.append((f"{label(recs, 'gmml')} − {label(recs, m)}", paired(recs, 'gmml', m, fraction, protocol)))
    return out

def gains_table(recs, protocol: str = 'finetune', fractions=FRACTIONS) -> str:
    "Differences in points, paired by seed, at each label fraction (the rows of `gains`)."
    cols = [dict(gains(recs, f, protocol)) for f in fractions]
    names = [n for n, _ in gains(recs, fractions[0], protocol)]
    rows = [[n, *[pm(c.get(n, []), signed=True) for c in cols]] for n in names]
    rows = [r for r in rows if any(c != DASH for c in r[1:])]
    return md_table([f'{PROTOCOLS[protocol]}, paired by seed (points)', *[f'{100*f:g} %' for f in fractions]], rows)

def pretraining_table(recs) -> str:
    "Each pretraining of a record list: epochs, steps, images/s, training minutes, its k-NN read-out before → after."
    rows = []
    for m, p in pretrainings(recs).items():
        knn = p.get('knn_curve') or []
        rows.append([label(recs, m), p['epochs'], f"{p['steps']:,}", f"{p['images_per_s']:.0f}", f"{p['train_minutes']:.1f}",
                     f"{pct(knn[0]['knn_accuracy'])} → {pct(knn[-1]['knn_accuracy'])}" if knn else DASH])
    return md_table(['pretraining', 'epochs', 'steps', 'images/s', 'training minutes', 'k-NN on held-out training images (%)'], rows)

def run_info(recs) -> dict:
    "The run a label-efficiency record list comes from: command, machine (one line), finish date, total stage minutes, and minutes per kind of stage."
    run = recs[0]['run']
    stages = {'pretraining': sum(p['minutes'] for p in pretrainings(recs).values()),
              'finetuning and evaluation': sum(r['minutes'] for r in recs if r['protocol'] == 'finetune')}
    # the frozen read-outs: what the total leaves (their records time the probes, not the embedding of the images)
    stages['frozen features'] = max(0.0, run['stage_total_minutes'] - sum(stages.values()))
    stages = {k: stages[k] for k in ('pretraining', 'frozen features', 'finetuning and evaluation')}
    return dict(command=run['command'], command_line=command_line(run), finished=run.get('finished'), total_minutes=run['stage_total_minutes'],
                machine=machine_line(run['machine']), stage_minutes=stages)

def seeds(recs) -> list[int]:
    "The seeds of a record list."
    return sorted({r['seed'] for r in recs})

def finetune_budget(recs, fraction: float) -> tuple[int, int]:
    "(epochs, steps) of the finetunes at one label fraction."
    r = next(r for r in recs if r['protocol'] == 'finetune' and abs(r['label_fraction'] - fraction) < 1e-9)
    return r.get('finetune_epochs'), r.get('finetune_steps')


# ---------------------------------------------------------------------------------------------------- follow-ups
def longer_finetune_table(names=('label_efficiency_longer_1pct', 'label_efficiency_longer', 'label_efficiency_longer_60ep')) -> str:
    "The study's finetunes run longer: per record, the label fraction, epochs before → after, each init's accuracy before → after, and GMML's lead (paired)."
    rows = []
    for name in names:
        d = load(name)
        f = d['rows'][0]['label_fraction']
        acc = lambda m, k: [r[k]['test_accuracy'] for r in sorted(d['rows'], key=lambda r: r['seed']) if r['method'] == m]
        ep = (d['rows'][0]['short']['finetune_epochs'], d['rows'][0]['longer']['finetune_epochs'])
        have = {r['method'] for r in d['rows']}
        cell = lambda m: f"{pm(acc(m, 'short'))} → {pm(acc(m, 'longer'))}" if m in have else DASH
        lead = DASH
        if {'gmml', 'random'} <= have:
            g = lambda k: [a - b for a, b in zip(acc('gmml', k), acc('random', k))]
            lead = f"{pm(g('short'), signed=True)} → {pm(g('longer'), signed=True)}"
        rows.append([f'{100*f:g} %', f'{ep[0]} → {ep[1]}', cell('random'), cell('gmml'), lead])
    return md_table(['labels', 'finetune epochs', 'random init (%)', "GMML, the study's encoder (%)", 'GMML − random init (points)'], rows)

def longer_pretrain_table(name='label_efficiency_longer_pretrain') -> str:
    "GMML pretrained longer: per label fraction and finetune length, random init, the study's GMML, the longer-pretrained GMML, and its gain over random init."
    d = load(name)
    e0, e1 = epochs(d['study_pretraining']['epochs']), epochs(d['pretraining']['epochs'])
    rows = []
    for f in d['finetunes']:
        t = f['test_accuracy']
        rows.append([f"{100*f['label_fraction']:g} %", f['finetune_epochs'], pm(t['random']), pm(t['gmml'] or []), pm(t['new']),
                     pm(f['gain_over_random'], signed=True)])
    return md_table(['labels', 'finetune epochs', 'random init (%)', f'GMML, {e0} (%)', f'GMML, {e1} (%)',
                     f'GMML {e1} − random init (points)'], rows)

def wider_encoder_table(name='wider_encoder') -> str:
    "A 192-d ViT-Tiny pretrained with GMML against the study's 96-d ViT-Nano: pretraining epochs and minutes, final k-NN, and the 1 % finetunes."
    d = load(name)
    ft = sorted(d['finetunes'], key=lambda r: r['seed'])
    acc = lambda m, k: [r[k] for r in ft if r['method'] == m]
    rows = []
    for enc, p, k in (('ViT-Nano, 96-d (the study)', d['study_pretraining'], 'study_test_accuracy'),
                      (f"ViT-Tiny, 192-d", d['pretraining'], 'test_accuracy')):
        rows.append([enc, p['epochs'], f"{p['train_minutes']:.1f}", pct(p['knn_curve'][-1]['knn_accuracy']),
                     pm(acc('random', k)), pm(acc('gmml', k)),
                     pm([a - b for a, b in zip(acc('gmml', k), acc('random', k))], signed=True)])
    return md_table(['encoder (6 blocks)', 'GMML epochs', 'training minutes', 'final k-NN (%)', 'random init, 1 % (%)',
                     'GMML, 1 % (%)', 'GMML − random init (points)'], rows)

def finetune_recipe_table(name='finetune_recipe') -> str:
    "One change at a time to the 1 % finetune, chosen on held-out training images: held-out accuracy per variant and initialisation, then the chosen variant's test accuracy."
    d = load(name)
    sel = d['selection']
    inits = list(d['plan'])
    variants = list(dict.fromkeys(v for m in inits for v in d['plan'][m]))
    def cell(m, v):
        a = [r['heldout_accuracy'] for r in sorted(sel, key=lambda r: r['seed']) if (r['method'], r['variant']) == (m, v)]
        return pm(a) + (' (chosen)' if d['chosen'].get(m) == v else '') if a else DASH
    rows = [[v + (f" ({', '.join(f'{k} {x:g}' for k, x in d['variants'][v].items())})" if d['variants'][v] else ''),
             *[cell(m, v) for m in inits]] for v in variants]
    return md_table(['finetune variant', *[f'{_BASE_NAMES.get(m, m)}: held-out accuracy (%)' for m in inits]], rows)

def finetune_recipe_test(name='finetune_recipe') -> dict[str, list[float]]:
    "{init: test accuracies of its chosen variant, by seed}."
    d = load(name)
    return {m: [r['test_accuracy'] for r in sorted(d['test'], key=lambda r: r['seed']) if r['method'] == m] for m in d['chosen']}

def command_line(m: dict) -> str:
    """How a record's run reads: its command; for a record assembled with `--report` from stages that earlier commands
    computed, those commands and then the assembling one."""
    cmd = m['command'].split(' --note ')[0]
    computed = [c for c in m.get('stage_commands') or [] if c != cmd]
    if ' --report' not in cmd or not computed: return f"`{cmd}`"
    return ' and '.join(f"`{c}`" for c in computed) + f", the record assembled from those stages by `{cmd}`"

def meta_line(name: str) -> str:
    "'command' on 'machine' for a record: a follow-up's `meta` block, a label-efficiency record list's `run`, or the legacy throughput record's own fields."
    d = load(name)
    m = d[0]['run'] if isinstance(d, list) else d.get('meta', d)
    commit = m.get('commit') or m.get('git_commit')
    return f"{command_line(m)}{f' at commit {commit}' if commit else ''} on {machine_line(m['machine'])}"

def throughput_groups(d: dict) -> dict[str, list[str]]:
    """The throughput record's `images_per_s` keys by setting, as {heading: keys}. The setting is read off each key (the
    corruption rows name their batch shape, the ViT-Nano/6 rows say so, the monitors read out with the ViT-Nano/6 GMML
    encoder, every other step is ViT-Tiny) and each heading off the record's `setup`, so that no heading claims a model
    or an image size its rows were not measured at."""
    import re
    setup = d.get('setup', '')
    bs = re.search(r'batches of (\d+)', setup)
    bs = f', batches of {bs[1]}' if bs else ''
    def model(name, batches=True):                # 'ViT-Tiny (192-d, 12 blocks, patch 4) on 3×32×32' -> its words in `setup`
        m = re.search(re.escape(name) + r'( \([^)]*\))? on (\d+×\d+×\d+)', setup)
        return f"{name}{m[1] or ''}, {m[2]} Fashion-MNIST images{bs if batches else ''}" if m else name
    def heading(k):
        if k.startswith('gmml_corrupt'):
            shape = re.search(r'\((\d+(?:×\d+)+)\)', k)
            return 'Corruption alone (`gmml_corrupt`, no model)' + (f', random {shape[1]} batches' if shape else '')
        if 'ViT-Nano/6' in k: return model('ViT-Nano/6')
        if 'monitor read-out' in k: return "The pretraining monitors' read-out, with the GMML encoder of " + model('ViT-Nano/6', batches=False)
        return model('ViT-Tiny')
    out = {}
    for k in d['images_per_s']: out.setdefault(heading(k), []).append(k)
    return out

def throughput_table(name='throughput', keys=None) -> str:
    "The images/s of each step of one throughput run (`keys`: these steps only), one table per setting under its heading (`throughput_groups`)."
    d = load(name)
    parts = []
    for head, ks in throughput_groups(d).items():
        ks = [k for k in ks if keys is None or k in keys]
        if ks: parts.append(f"**{head}**\n\n" + md_table(['step', 'images/s'], [[k, f"{d['images_per_s'][k]:.0f}"] for k in ks]))
    return '\n\n'.join(parts)

def ratio_x(v: float) -> str:
    "A ratio as a multiple: 1.5708 -> '1.57×', 0.01845 -> '0.018×' (three decimals below 0.1)."
    return f'{v:.2f}×' if v >= 0.1 else f'{v:.3f}×'

def ratio_reads_as(r: dict) -> str:
    "One ratio row (studies.compute_ratios) in words: what the numerator's time is against the denominator's, and so faster or slower (a monitor's overhead: the share it adds)."
    v = r['time_ratio']
    s = f"{r['numerator_name']} takes {ratio_x(v)} the time of {r['denominator_name']}"
    s = s[0].upper() + s[1:]
    if r.get('kind') == 'overhead': return f"{s}: it adds {100*v:.1f} % to it"
    return f"{s}: " + ('slower' if round(v, 2) > 1 else 'faster' if round(v, 2) < 1 else 'the same')

def ratios_table(name='throughput') -> str:
    "The step-time ratios of one throughput run (each of two numbers measured in that run): the ratio, its value, what it says, and the project's target where it set one."
    d = load(name)
    def target(r):
        if r.get('target') is None: return DASH
        return f"≤ {r['target']:g}×: {'met' if r['met'] else 'missed'} ({r['time_ratio']:.3f}×)"
    return md_table(['ratio (measured in one run)', 'step time ratio', 'reads as', 'target'],
                    [[r['label'], ratio_x(r['time_ratio']), ratio_reads_as(r), target(r)] for r in d['ratios']])


def host_table(name='host') -> str:
    "Per training batch of each method, at each setting of one host run: ATen ops, kernel launches, host syncs, literals and host ms, with launches relative to the classification (CE) batch."
    d = load(name)
    out = [f"`{d['command']}` on {d['machine']}; per training batch, as (long epoch − short epoch)/(long − short), "
           "counted by `torch.profiler` on the CPU (launches: the operations a GPU would launch a kernel for)."]
    for key, s in d['settings'].items():
        rows, ce = s['per_batch'], s['per_batch']['finetune, CE']['launches']
        out.append(f"\n**{s['setting']}**\n\n" + md_table(
            ['training batch', 'ATen ops', 'kernel launches', 'launches / CE', 'host syncs', 'literals', 'host ms'],
            [[k, f"{r['ops']:,.0f}", f"{r['launches']:,.0f}", f"{r['launches']/ce:.2f}×", f"{r['syncs']:.2f}", f"{r['literals']:.2f}",
              f"{r['ms']:.1f}" if r['ms'] is not None else '–'] for k, r in rows.items()]))
    return '\n'.join(out)


def legacy_file(name: str, entry: dict) -> Path:
    "Where a legacy record lives: `benchmarks/results/NAME.json`, or its `file` under benchmarks/results/ once a rerun replaced it (`history/`)."
    return RESULTS/entry.get('file', f'{name}.json')

def legacy_table() -> str:
    "The legacy records (legacy.json): each one's file, original command, the commit it ran at and the study that measures its question now."
    d = json.loads(LEGACY.read_text(encoding='utf-8'))
    rows = [[f"`{legacy_file(k, v).relative_to(RESULTS).with_suffix('')}`", f"`{v['command'].split(' --')[0]}`", v['commit'],
             f"`{v['study']}`" + (' (rerun: this file is history)' if v.get('file') else '') if v.get('study') else v.get('why', DASH)]
            for k, v in d.items() if not k.startswith('_') and legacy_file(k, v).is_file()]
    return md_table(['record', 'measured by (script since replaced)', 'commit', 'study now'], rows)

def history_sentence(name: str = 'label_efficiency') -> str:
    "What the legacy record that a rerun of study `name` replaced had measured (GMML's paired gain over random init), with where it lives; '' when there is none."
    entry = (json.loads(LEGACY.read_text(encoding='utf-8')) if LEGACY.is_file() else {}).get(name)
    if not entry or not entry.get('file') or not legacy_file(name, entry).is_file(): return ''
    old = load(legacy_file(name, entry))
    g = [pm(paired(old, 'gmml', 'random', f), signed=True) for f in FRACTIONS]
    return (f"The run this one replaced (`{entry['command'].split(' --')[0]}` at commit {entry['commit']}, kept as "
            f"`benchmarks/results/{entry['file']}`) measured GMML {g[0]} points over random init at 1 % and {g[1]} at 10 %.")


# ---------------------------------------------------------------------------------------------------- quick start
def quick_start(path: Path = QUICK_START) -> dict:
    "The quick start's record (tools/quick_start.py)."
    return load(Path(path))

def quick_start_table(rec: dict | None = None) -> str:
    "The quick start's two finetunes: accuracy and FGSM accuracy of the pretrained encoder and of random init."
    rec = rec or quick_start()
    n = rec['finetune']['test_images']
    rows = [[name, pct(rec['accuracy'][k]), pct(rec['fgsm_accuracy_1_255'][k])]
            for name, k in (('GMML-pretrained (the main job)', 'pretrained'), ('random initialisation', 'random_init'))]
    return md_table(['encoder', f'accuracy on {n:,} test images (%)', 'FGSM accuracy, ε = 1/255 (%)'], rows)

def quick_start_sentence(rec: dict | None = None, timings: bool = True) -> str:
    "What the quick start measured, in one sentence; `timings=False` (the README) leaves out the machine, the minutes and the run's note (the Results page has them)."
    rec = rec or quick_start()
    m, c = rec['minutes'], rec['pretrain']['config']
    if not timings:
        return (f"One seed, {c['epochs']} pretraining epochs on {rec['pretrain']['train_images']:,} images and {rec['finetune']['epochs']}-epoch "
                f"finetunes on {rec['finetune']['train_images']:,} labeled images: the pretrained encoder ends {rec['gap_points']:+.1f} points "
                f"{'ahead of' if rec['gap_points'] > 0 else 'behind'} random initialisation ([Results](nbs/results.ipynb) has the machine and the times).")
    return (f"Measured on {rec['machine']['cpu']} ({rec['machine']['logical_cpus']} CPUs, no GPU): the main job took "
            f"{m['pretrain']:.1f} min ({c['epochs']} epochs on {rec['pretrain']['train_images']:,} images), each finetune "
            f"{m['finetune_pretrained']:.1f} and {m['finetune_random_init']:.1f} min ({rec['finetune']['epochs']} epochs on "
            f"{rec['finetune']['train_images']:,} labeled images); the pretrained encoder ends "
            f"{rec['gap_points']:+.1f} points {'ahead of' if rec['gap_points'] > 0 else 'behind'} random initialisation."
            + (f" {rec['note']}" if rec.get('note') else ''))


# ---------------------------------------------------------------------------------------------------- the README
def readme_table(name='label_efficiency') -> str:
    "The README's one results table: finetuned test accuracy at 1 % and 10 % of the labels, and the linear probe at 1 %."
    recs = load(name)
    rows = []
    for m in methods(recs):
        cells = [pm(list(by_seed(recs, m, 'finetune', f).values())) for f in FRACTIONS]
        rows.append([label(recs, m), *cells, pm(list(by_seed(recs, m, 'linear', 0.01).values()))])
    return md_table(['ViT-Nano (6 blocks) init', *[f'finetuned, {100*f:g} % labels' for f in FRACTIONS], 'linear probe, 1 %'], rows)

def readme_summary(name='label_efficiency') -> str:
    "The sentence under the README's table: the run, and GMML's paired gain over random init at both fractions."
    recs = load(name)
    g = [pm(paired(recs, 'gmml', 'random', f), signed=True) for f in FRACTIONS]
    cnn = [pm(paired(recs, 'cnn', 'gmml', f)) for f in FRACTIONS]
    side = 'stays ahead of GMML' if statistics.mean(paired(recs, 'cnn', 'gmml', FRACTIONS[0])) > 0 else 'falls behind GMML'
    leg = legacy(name)
    earlier = (" These numbers were measured by an earlier version of the code, which the study runner has not rerun yet "
               "([Results](nbs/results.ipynb) says which).") if leg and not leg.get('file') else ''
    return (f"Fashion-MNIST test accuracy (%, 10,000 images), mean ± std over {len(seeds(recs))} seeds. GMML pretraining gains {g[0]} points over random init at 1 % "
            f"and {g[1]} at 10 % (paired by seed); the small ResNet {side}, by {cnn[0]} and {cnn[1]} points." + earlier)
