"""Shared pytest set-up: a headless matplotlib, and the `slow` marker.

Tests marked `@pytest.mark.slow` (end-to-end runs in subprocesses, multi-process training, the study runner) are the
ones a contributor's `bash run.sh test` leaves out to stay within about 10 minutes on two cores; CI runs them
(`GMML_FAST_SLOW=1`, set by `.ci/run`), and so does `GMML_FAST_SLOW=1 pytest tests`. Each skipped test says how to run it."""
import os

import pytest

os.environ.setdefault('MPLBACKEND', 'Agg')


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: an end-to-end or multi-process test; runs with GMML_FAST_SLOW=1 (CI does)')


def pytest_collection_modifyitems(config, items):
    if os.environ.get('GMML_FAST_SLOW') == '1': return
    skip = pytest.mark.skip(reason='slow: set GMML_FAST_SLOW=1 to run it (CI does, through .ci/run)')
    for item in items:
        if 'slow' in item.keywords: item.add_marker(skip)
