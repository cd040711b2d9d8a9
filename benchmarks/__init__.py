"""The benchmark studies of gmml_fast: one runner, its stages, its named studies and the renderer of their records.

* `benchmarks.study` — the runner: `python -m benchmarks.study --list`, `python -m benchmarks.study NAME [--quick]`;
* `benchmarks.stages` — the stages a study is made of (pretrainings, read-outs, finetunes, measurements) and the folder
  that keeps them;
* `benchmarks.studies` — the named studies and the records each writes to `benchmarks/results/`;
* `benchmarks.report` — the Results page's and the README's tables, rendered from those records
  (`from benchmarks import report`);
* `benchmarks.gpu` — the GPU study (`python -m benchmarks.gpu --help`; `bash benchmarks/gpu_check.sh` runs it after
  the CUDA tests).

setup.py installs this package next to `gmml_fast` (`pip install -e .`), so it imports from anywhere; from the
repository root `python -m benchmarks.study` works without an install too. Importing the package imports none of its
modules (they need torch and fastai).
"""
