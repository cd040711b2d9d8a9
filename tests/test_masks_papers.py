"""The masks of the papers, checked against the papers' algorithms.

BEiT (Bao, Dong, Piao and Wei, *BEiT: BERT Pre-Training of Image Transformers*, 2021, arXiv:2106.08254, Algorithm 1, as its
released `MaskingGenerator` runs it): a plain-Python transcription (loops, the standard `random` module) is compared in
distribution with the batched `beit_block_mask` on BEiT's setting (14×14 patches, 75 masked, blocks of at least 16), and
every batched mask must be a union of whole rectangles that never exceeds the target. SimMIM (Xie et al., 2021,
arXiv:2111.09886): `random_cell_mask` hides exactly ceil(ratio·cells²) whole cells.
"""
import math, random
import pytest
import torch
from hypothesis import given, settings, strategies as st, HealthCheck

from gmml_fast.masking import beit_block_mask, random_cell_mask, _beit_rounds
from gmml_fast.rng import rng_key

ROWS = COLS = 14
TARGET, MIN_AREA, ASPECT, ATTEMPTS, ROUNDS = 75, 16, (0.3, 1/0.3), 10, 50
N_MASKS = 4000

def algorithm1(rng: random.Random, rows: int, cols: int, target: int, min_area: int = 16, max_area=None,
               aspect=(0.3, 1/0.3), attempts: int = 10):
    "One BEiT mask, written as loops: the mask (rows of bools), the rectangles accepted, and the number of attempts made."
    cap = target if max_area is None else max_area
    log_lo, log_hi = math.log(aspect[0]), math.log(aspect[1])
    mask = [[False]*cols for _ in range(rows)]
    masked, rects, tries = 0, [], 0
    while masked < target:
        remaining = min(target - masked, cap)
        added = 0
        for _ in range(attempts):                     # one call: stops at its first accepted rectangle
            tries += 1
            area = rng.uniform(min_area, remaining)    # bounds in either order
            ratio = math.exp(rng.uniform(log_lo, log_hi))
            h = int(round(math.sqrt(area*ratio)))
            w = int(round(math.sqrt(area/ratio)))
            if h < rows and w < cols:
                top = rng.randint(0, rows - h)
                left = rng.randint(0, cols - w)
                new = sum(not mask[i][j] for i in range(top, top + h) for j in range(left, left + w))
                if 0 < new <= remaining:
                    for i in range(top, top + h):
                        for j in range(left, left + w): mask[i][j] = True
                    added = new
                    rects.append((top, left, h, w))
                    break
        if added == 0: break                            # a whole call accepted nothing: the image stops
        masked += added
    return mask, rects, tries

@pytest.fixture(scope='module')
def reference():
    rng = random.Random(0)
    runs = [algorithm1(rng, ROWS, COLS, TARGET, MIN_AREA) for _ in range(N_MASKS)]
    count = torch.tensor([sum(map(sum, m)) for m, _, _ in runs], dtype=torch.float64)
    return dict(count=count, rects=torch.tensor([len(r) for _, r, _ in runs], dtype=torch.float64),
                tries=torch.tensor([t for _, _, t in runs], dtype=torch.float64))

@pytest.fixture(scope='module')
def batched():
    r = _beit_rounds(rng_key(0), N_MASKS, (ROWS, COLS), TARGET, MIN_AREA, None, ASPECT, ATTEMPTS, ROUNDS, record=True)
    return dict(r, count=r['mask'].sum((1, 2)).double(), n_rects=r['accepted'].sum(0).double(), tries=r['attempts'].double())

def _z_means(a: torch.Tensor, b: torch.Tensor) -> float:
    "Difference of two sample means in units of its standard error."
    return ((a.mean() - b.mean())/torch.sqrt(a.var()/len(a) + b.var()/len(b))).item()

def test_the_transcription_is_algorithm_1(reference):
    "Sanity of the reference itself: never above the target, about 40 % on average, whole blocks of >= 1 token."
    rng = random.Random(1)
    for _ in range(50):
        m, rects, tries = algorithm1(rng, ROWS, COLS, TARGET, MIN_AREA)
        union = {(i, j) for t, l, h, w in rects for i in range(t, t + h) for j in range(l, l + w)}
        assert union == {(i, j) for i in range(ROWS) for j in range(COLS) if m[i][j]}
        assert len(union) <= TARGET and all(h < ROWS and w < COLS for _, _, h, w in rects)
    assert 70 < reference['count'].mean() <= TARGET

def test_batched_masks_are_unions_of_whole_rectangles(batched):
    "Every batched mask is exactly the union of the rectangles it accepted, each placed inside the grid, and never exceeds the target."
    top, left, h, w = batched['rects'].unbind(-1)
    ar = torch.arange(ROWS)
    boxes = (((ar >= top[..., None]) & (ar < (top + h)[..., None]))[..., :, None]
             & ((ar >= left[..., None]) & (ar < (left + w)[..., None]))[..., None, :])
    acc = batched['accepted']
    assert torch.equal((boxes & acc[..., None, None]).any(0), batched['mask'])
    assert (h[acc] < ROWS).all() and (w[acc] < COLS).all() and (h[acc] >= 1).all() and (w[acc] >= 1).all()
    assert (top[acc] >= 0).all() and (top[acc] + h[acc] <= ROWS).all() and (left[acc] >= 0).all() and (left[acc] + w[acc] <= COLS).all()
    assert (batched['count'] <= TARGET).all()
    # each accepted rectangle added at least one new token: the masked count grows with every acceptance
    assert (batched['count'] >= batched['n_rects']).all()
    # the public function is the same computation
    assert torch.equal(beit_block_mask(N_MASKS, ROWS, TARGET/(ROWS*COLS), key=rng_key(0)), batched['mask'].reshape(N_MASKS, -1))

def test_almost_every_image_stops_by_beits_rule_before_the_cap(batched):
    stopped = (~batched['capped']).double().mean().item()
    assert stopped > 0.999, f"only {stopped:.4%} of the images stopped within {ROUNDS} rounds"
    # the images the cap did not cut made the number of attempts BEiT's loops make
    assert (batched['tries'][~batched['capped']] <= ROUNDS).all()

def test_batched_and_loop_agree_in_distribution(reference, batched):
    "Mean and distribution of the masked count, share reaching the target, rectangles and attempts per mask: within sampling error."
    a, b = batched['count'], reference['count']
    assert abs(_z_means(a, b)) < 4, (a.mean(), b.mean())
    pa, pb = (a == TARGET).double().mean(), (b == TARGET).double().mean()
    p = (pa + pb)/2
    assert abs((pa - pb)/torch.sqrt(2*p*(1 - p)/N_MASKS)) < 4, (pa, pb)
    assert abs(_z_means(batched['n_rects'], reference['rects'])) < 4, (batched['n_rects'].mean(), reference['rects'].mean())
    assert abs(_z_means(batched['tries'], reference['tries'])) < 4, (batched['tries'].mean(), reference['tries'].mean())
    # two-sample Kolmogorov-Smirnov distance of the masked counts, against its 0.1 % critical value
    grid = torch.arange(0, TARGET + 1, dtype=torch.float64)
    cdf = lambda x: (x[:, None] <= grid[None]).double().mean(0)
    d = (cdf(a) - cdf(b)).abs().max().item()
    assert d < 1.95*math.sqrt(2/N_MASKS), d
    # chi-square over bins of the masked count, each expected to hold plenty of masks
    edges = [-1, 71, 72, 73, 74, 75]                      # the counts pile up near the target: <= 71, 72, 73, 74, 75
    hist = lambda x: torch.stack([((x > lo) & (x <= hi)).sum() for lo, hi in zip(edges, edges[1:])]).double()
    ha, hb = hist(a), hist(b)
    assert (ha + hb).min() > 40, (ha, hb)
    chi2 = (((ha - hb)**2)/(ha + hb)).sum().item()      # two samples of equal size; 4 degrees of freedom
    assert chi2 < 18.47, (chi2, ha, hb)                 # the 0.1 % point of chi-square with 4 degrees of freedom

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

@FAST
@given(st.integers(1, 20), st.integers(1, 20), st.floats(0.01, 1), st.integers(1, 32), st.integers(0, 2**40))
def test_beit_masks_never_exceed_the_target_on_any_grid(gh, gw, ratio, min_area, seed):
    target = math.ceil(ratio*gh*gw - 1e-6)
    m = beit_block_mask(3, (gh, gw), ratio, min_area=min_area, seed=seed)
    assert m.shape == (3, gh*gw) and m.dtype == torch.bool
    assert (m.sum(1) <= target).all()
    if gh == 1 or gw == 1: assert not m.any()            # no rectangle is strictly smaller than a side of one token
    assert torch.equal(m, beit_block_mask(3, (gh, gw), ratio, min_area=min_area, seed=seed))

def test_beit_max_area_bounds_every_block():
    "With max_area, no accepted rectangle adds more than max_area new tokens (it may be larger where it overlaps earlier ones)."
    B, cap = 500, 20
    r = _beit_rounds(rng_key(3), B, (ROWS, COLS), TARGET, 4, cap, ASPECT, ATTEMPTS, ROUNDS, record=True)
    assert r['accepted'].any() and (r['mask'].sum((1, 2)) <= TARGET).all()
    ar, covered = torch.arange(ROWS), torch.zeros(B, ROWS, COLS, dtype=torch.bool)
    for rect, acc in zip(r['rects'], r['accepted']):    # replay, round by round
        top, left, h, w = rect.unbind(-1)
        box = (((ar >= top[:, None]) & (ar < (top + h)[:, None]))[:, :, None]
               & ((ar >= left[:, None]) & (ar < (left + w)[:, None]))[:, None, :])
        assert ((box & ~covered).sum((1, 2))[acc] <= cap).all()
        covered = covered | (box & acc[:, None, None])
    assert torch.equal(covered, r['mask'])

@pytest.mark.parametrize('grid,cells,ratio', [(12, 6, 0.6), (14, 7, 0.6), ((8, 12), 4, 0.5), (12, None, 0.75), (10, 10, 0.07)])
def test_simmim_cells_are_whole_and_counted_up(grid, cells, ratio):
    gh, gw = (grid, grid) if isinstance(grid, int) else grid
    c = cells or None
    ch, cw = (gh, gw) if c is None else (c, c)
    m = random_cell_mask(64, grid, ratio, cells, seed=0)
    assert m.shape == (64, gh*gw)
    v = m.view(64, ch, gh//ch, cw, gw//cw)
    assert torch.equal(v.amin((2, 4)), v.amax((2, 4)))
    assert (v.amin((2, 4)).sum((1, 2)) == math.ceil(ratio*ch*cw - 1e-6)).all()
    # every cell is chosen about equally often
    share = v.amin((2, 4)).double().mean(0)
    assert (share - share.mean()).abs().max() < 0.3

def test_simmim_cells_must_divide_the_grid():
    with pytest.raises(ValueError, match=r'cells=5 .* one of 1, 2, 3, 4, 6, 12'): random_cell_mask(2, 12, 0.6, 5)
    with pytest.raises(ValueError, match=r'one of 1, 2, 4'): random_cell_mask(2, (8, 12), 0.6, 3)
