"""The Fidelity page (nbs/fidelity.ipynb): every row is complete, every switch it names exists in the API and has the
stated effect, every check can fail (it is False on gmml_fast's default), and every paper recipe is on the page (the
page's rows are read from the notebook itself, so the page and this test cannot disagree)."""
import json
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT/'nbs'/'fidelity.ipynb'
METHODS = ('GMML', 'MAE', 'SimMIM', 'BEiT', 'Finetuning', 'DRLoc', 'ME', 'MAE-aux', 'FGSM')

def _cells(): return json.loads(PAGE.read_text(encoding='utf-8'))['cells']

@pytest.fixture(scope='module')
def page():
    "The namespace of the page's code cells (definitions, fixtures, measurements and the final check; the cells that only render markdown are skipped)."
    ns = {}
    for c in _cells():
        if c['cell_type'] != 'code': continue
        body = '\n'.join(l for l in ''.join(c['source']).splitlines() if not l.startswith('#|'))
        if body.startswith('Markdown('): continue
        exec(compile(body, 'fidelity.ipynb', 'exec'), ns)
    return ns

def _switched(page):
    return [(m, r) for m, rows in page['FIDELITY'].items() for r in rows if r['switch'] is not None]

def test_every_method_has_a_table_of_complete_rows(page):
    fid = page['FIDELITY']
    assert tuple(fid) == METHODS
    for method, rows in fid.items():
        assert rows, method
        for r in rows:
            assert all(r[k] for k in ('quantity', 'paper', 'official', 'ours')), (method, r)
            assert r['switch'] or r['note'], f'{method} / {r["quantity"]}: no switch and no reason'
            has = [r[k] is not None for k in ('switch', 'base', 'check')]
            assert all(has) or not any(has), f'{method} / {r["quantity"]}: switch, base and check go together'
        table = page['fidelity_table'](method)
        assert table.count('\n') == len(rows) + 1 and all(r['quantity'] in table for r in rows)

def test_every_switch_exists_and_has_its_effect(page):
    rows = _switched(page)
    for method, r in rows:
        obj = eval(r['switch'], page)
        assert eval(r['check'], page, dict(obj=obj)) is True, f"{method} / {r['quantity']}: {r['switch']}"
    assert len(rows) >= 30

def test_every_check_can_fail(page):
    "The check of every switched row is False on the base: gmml_fast's default object for the same quantity."
    for method, r in _switched(page):
        assert r['base'] != r['switch'], f"{method} / {r['quantity']}: the base is the switch"
        obj = eval(r['base'], page)
        assert eval(r['check'], page, dict(obj=obj)) is False, f"{method} / {r['quantity']}: {r['check']} holds on {r['base']}"

def test_the_page_names_every_paper_recipe(page):
    "Every named paper recipe (and alias) is on the page, with a table of where its values come from."
    from gmml_fast.recipe import NAMED_RECIPES, RECIPE_ALIASES
    from gmml_fast.sources import RECIPE_SOURCES
    text = '\n'.join(''.join(c['source']) for c in _cells())
    papers = [n for n in NAMED_RECIPES if not n.endswith('@v1')]
    assert papers and set(papers) <= set(RECIPE_SOURCES)
    for n in papers + list(RECIPE_ALIASES): assert f'`{n}`' in text, f'{n} is not on the Fidelity page'
    for n in papers: assert f"recipe_sources_table('{n}')" in text, f'no sources table for {n}'
    assert set(page['PAPER_BATCH']) == set(papers)

def test_the_measurements_hold(page):
    "The numbers the rows quote: comb1/comb2 corrupt less than single aliens, and gmml_fast's DRLoc loss is twice the official one."
    cov = page['COVERAGE']
    assert max(cov['comb1'][0], cov['comb2'][0]) < min(cov[a][0] for a in ('noise', 'zeros', 'replace'))
    assert abs(page["DRLOC_FACTOR"] - 2) < 1e-9
    assert page['BEIT']['high'] <= 75

def test_the_mae_reference_variance_is_the_default():
    "MAE's norm_pix uses the sample variance, as facebookresearch/mae's forward_loss."
    import torch
    from gmml_fast.losses import MAELoss, normalize_patches
    assert MAELoss().unbiased
    t = torch.randn(2, 5, 12)
    torch.testing.assert_close(normalize_patches(t), (t - t.mean(-1, keepdim=True))/(t.var(-1, keepdim=True) + 1e-6).sqrt())
