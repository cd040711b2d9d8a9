"""The Fidelity page (nbs/fidelity.ipynb): every row is complete, and every switch it names exists in the API and has
the stated effect (the page's rows are read from the notebook itself, so the page and this test cannot disagree)."""
import json
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
METHODS = ('GMML', 'MAE', 'SimMIM', 'DRLoc', 'ME', 'MAE-aux', 'FGSM')

@pytest.fixture(scope='module')
def page():
    "The namespace of the page's code cells (definitions and fixtures; the rendering cells only return markdown)."
    ns = {}
    cells = [c for c in json.loads((ROOT/'nbs'/'fidelity.ipynb').read_text(encoding='utf-8'))['cells'] if c['cell_type'] == 'code']
    for c in cells:
        body = '\n'.join(l for l in ''.join(c['source']).splitlines() if not l.startswith('#|'))
        if body.startswith('Markdown('): continue
        exec(compile(body, 'fidelity.ipynb', 'exec'), ns)
    return ns

def test_every_method_has_a_table_of_complete_rows(page):
    fid = page['FIDELITY']
    assert tuple(fid) == METHODS
    for method, rows in fid.items():
        assert rows, method
        for r in rows:
            assert all(r[k] for k in ('quantity', 'paper', 'official', 'ours')), (method, r)
            assert r['switch'] or r['note'], f'{method} / {r["quantity"]}: no switch and no reason'
            assert (r['switch'] is None) == (r['check'] is None), (method, r['quantity'])
        table = page['fidelity_table'](method)
        assert table.count('\n') == len(rows) + 1 and all(r['quantity'] in table for r in rows)

def test_every_switch_exists_and_has_its_effect(page):
    n = 0
    for method, rows in page['FIDELITY'].items():
        for r in rows:
            if r['switch'] is None: continue
            obj = eval(r['switch'], page)
            assert eval(r['check'], page, dict(obj=obj)), f"{method} / {r['quantity']}: {r['switch']}"
            n += 1
    assert n >= 20

def test_the_mae_reference_variance_is_the_default():
    "The one default this page changed: MAE's norm_pix uses the sample variance, as facebookresearch/mae's forward_loss."
    import torch
    from gmml_fast.losses import MAELoss, normalize_patches
    assert MAELoss().unbiased
    t = torch.randn(2, 5, 12)
    torch.testing.assert_close(normalize_patches(t), (t - t.mean(-1, keepdim=True))/(t.var(-1, keepdim=True) + 1e-6).sqrt())
