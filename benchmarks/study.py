"""Run a named benchmark study (`--list` lists them) and write its records to benchmarks/results/.

    python -m benchmarks.study --list
    python -m benchmarks.study label_efficiency             # the central study (about 75 min on 2 CPU cores)
    python -m benchmarks.study label_efficiency --quick     # a smoke test of the same stages (about 2 min)
    python -m benchmarks.study wider_encoder                # a follow-up: reuses the study's finished stages
    python -m benchmarks.study label_efficiency --report    # rebuild the record from the finished stages only
    python -m benchmarks.study gpu --fmnist DIR ...         # the GPU study (benchmarks/gpu.py and its own options)

`benchmarks` is a package installed with gmml_fast (`pip install -e .`); from the repository root `python -m
benchmarks.study` also runs without an install. `python benchmarks/study.py ...` works where the package is installed.

Every stage (a pretraining, a frozen read-out, a finetune, a measurement) is saved in the state folder (--state) as it
finishes, under the hash of its settings: running a study again continues where it stopped, and a study that needs a
stage another study ran reads it back instead of computing it. Full records go to benchmarks/results/ and quick ones to
STATE/results/ (--out another folder); existing records are replaced only with --overwrite.
"""
import argparse, json, sys, warnings
from pathlib import Path

warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)   # fastai's import, not ours: keep errors one line

HERE = Path(__file__).resolve().parent
DEFAULT_STATE = Path('/tmp/gmml_fast_studies')


def fail(msg: str, code: int = 2):
    "Stop with one line on stderr and exit code `code` (2: bad input; 1: nothing to do)."
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(code)


def _check_importable():
    "`python benchmarks/study.py` needs the installed package; without it, one line that says what to type instead."
    import importlib.util
    if importlib.util.find_spec('benchmarks') is None:
        fail("cannot import the package benchmarks: run `python -m benchmarks.study ...` from the repository root, or install the package (pip install -e .)")


def parse_args(argv):
    "The command line, checked before anything is computed or any folder made."
    from benchmarks.studies import STUDIES
    ap = argparse.ArgumentParser(prog='python -m benchmarks.study', description=__doc__.split('\n')[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('name', nargs='?', help='the study to run (see --list)')
    ap.add_argument('--list', action='store_true', help='list the studies and what each measures')
    ap.add_argument('--quick', action='store_true', help='a smoke test: every stage of the study at toy size (its records are not results)')
    ap.add_argument('--state', default=str(DEFAULT_STATE), help=f'folder of the finished stages, shared by all studies (default {DEFAULT_STATE})')
    ap.add_argument('--report', action='store_true', help='write the records from the stages already finished, computing none (missing ones are listed)')
    ap.add_argument('--overwrite', action='store_true', help='replace existing records')
    ap.add_argument('--out', help='folder of the records (default: benchmarks/results; with --quick: STATE/results)')
    ap.add_argument('--threads', type=int, default=2, help='torch threads (default 2)')
    ap.add_argument('--note', help='a sentence for the record on how the run went (e.g. other work on the machine)')
    a = ap.parse_args(argv)
    if a.list: return a
    if a.name is None: fail(f"name a study: one of {', '.join(STUDIES)} (or gpu); --list says what each measures")
    if a.name not in STUDIES: fail(f"no study {a.name!r}: the studies are {', '.join(STUDIES)} (and gpu, the GPU study)")
    if a.threads < 1: fail(f"--threads must be >= 1, got {a.threads}")
    state = Path(a.state).expanduser()
    if state.exists() and not state.is_dir(): fail(f"--state {a.state} is a file; name a folder (it holds the finished stages)")
    if a.report and not state.is_dir(): fail(f"--report reads the finished stages in --state, and {a.state} does not exist")
    if a.out and Path(a.out).expanduser().exists() and not Path(a.out).expanduser().is_dir(): fail(f"--out {a.out} is a file; name a folder for the records")
    return a


def _retire_legacy(out: Path, stem: str):
    """Before a record the runner wrote replaces a legacy one in benchmarks/results/: the legacy files (`stem.json`, `.md` and
    figures) move to results/history/, and legacy.json keeps the entry with its `file` there, so the pages credit the
    runner's command for the new record and can still quote the old one. Nothing already in history/ is overwritten."""
    p = out/'legacy.json'
    if out != HERE/'results' or not p.is_file(): return
    d = json.loads(p.read_text())
    e = d.get(stem)
    if e is None or e.get('file'): return                       # not a legacy record, or already retired
    hist = out/'history'
    files = [f for f in out.glob(f'{stem}*') if f.is_file() and (f.stem == stem or f.name.startswith(f'{stem}_curves'))]
    clash = [str(hist/f.name) for f in files if (hist/f.name).exists()]
    if clash: fail(f"{', '.join(clash)} exist: move them away before a rerun retires the legacy {stem} record to history/")
    hist.mkdir(exist_ok=True)
    for f in files: f.replace(hist/f.name)
    d[stem] = dict(e, file=f'history/{stem}.json')
    p.write_text(json.dumps(d, indent=1, ensure_ascii=False) + '\n')


def main(argv=None) -> int:
    "Run the study named on the command line (or hand `gpu` to benchmarks/gpu.py) and write its records."
    argv = list(sys.argv[1:] if argv is None else argv)
    _check_importable()
    if argv[:1] == ['gpu']:                          # the GPU study has its own options and its own checks
        from benchmarks import gpu
        return gpu.main(argv[1:])
    a = parse_args(argv)
    from benchmarks.studies import STUDIES, Context
    if a.list:
        w = max(map(len, STUDIES))
        for s in STUDIES.values(): print(f"{s.name:{w}}  {s.doc}")
        print(f"{'gpu':{w}}  the GPU study: throughput, memory, data-parallel and a pretraining on one GPU (python -m benchmarks.gpu --help)")
        return 0
    st = STUDIES[a.name]
    state = Path(a.state).expanduser().resolve()
    out = Path(a.out).expanduser().resolve() if a.out else (state/'results' if a.quick else HERE/'results')
    taken = [str(out/f'{s}.{e}') for s in st.stems for e in ('json', 'md') if (out/f'{s}.{e}').exists()]
    if taken and not a.overwrite: fail(f"{', '.join(taken)} exist; pass --overwrite to replace them (or --out another folder)")
    import torch
    from benchmarks.stages import Store, StageFileError, log
    torch.set_num_threads(a.threads)
    store = Store(state, compute=not a.report)
    log(f"{a.name}{' (quick)' if a.quick else ''}: stages in {state}" + (' (report only: nothing is computed)' if a.report else ''))
    try: outputs = st.run(Context(store, a.quick, argv, a.note))
    except StageFileError as e: fail(str(e), 1)
    if not outputs: fail(f"nothing to write: none of the stages {a.name} needs has finished in {state}", 1)
    out.mkdir(parents=True, exist_ok=True)
    for o in outputs: _retire_legacy(out, o.stem)
    for o in outputs:
        path = out/f'{o.stem}.json'
        path.write_text(json.dumps(o.record, indent=1) + '\n')
        (out/f'{o.stem}.md').write_text(o.markdown(path))
        for suffix, draw in o.figures.items(): draw(out/f'{o.stem}{suffix}')
        print((out/f'{o.stem}.md').read_text())
    missing = sorted(set(store.missing))
    log(f"done: {len(store.ran)} stages computed, {len(store.reused)} read back" + (f", {len(missing)} not run: {', '.join(missing)}" if missing else '')
        + f"; records in {out}: {', '.join(o.stem for o in outputs)}")
    return 0


if __name__ == '__main__': sys.exit(main())
