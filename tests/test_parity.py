"""Parity with the papers' formulas: each formula gmml_fast claims to reproduce, written again here from its published
description (loops and numpy, no library code), and compared with the library on the same inputs.

Sources: MAE (He et al. 2021, arXiv:2111.06377, §3 and the reference `forward_loss`: per-patch MSE, targets optionally
normalised by the patch's mean and sample variance); SimMIM (Xie et al. 2021, arXiv:2111.09886, §3: L1 on the masked
pixels); GMML (Atito et al. 2022, arXiv:2205.14986, Eq. 1-2: L1 on the manipulated pixels); DRLoc as the thesis states
it (Floros 2024, Eq. 3.2 and 3.4: normalised absolute offsets, L1 averaged over pairs) and ME (Eq. 3.8); FGSM
(Goodfellow et al. 2014, arXiv:1412.6572: x + ε·sign(∇x), here in pixel units and clipped to [0, 1])."""
import numpy as np
import pytest
import torch
from torch import nn

from gmml_fast.patches import patchify
from gmml_fast.losses import MAELoss, MaskedL1Loss, masked_l1_loss
from gmml_fast.auxiliary import drloc_targets, drloc_loss
from gmml_fast.masked_aux import me_loss
from gmml_fast.evaluate import fgsm_perturb

rng = np.random.default_rng(0)

def _patches_by_hand(img: np.ndarray, p: int) -> np.ndarray:
    "MAE's patch order: patches row by row; inside a patch, pixel rows, then pixel columns, then channels (p, q, c)."
    B, C, H, W = img.shape
    out = []
    for b in range(B):
        toks = []
        for i in range(H//p):
            for j in range(W//p):
                toks.append([img[b, c, i*p + u, j*p + v] for u in range(p) for v in range(p) for c in range(C)])
        out.append(toks)
    return np.array(out)

@pytest.mark.parametrize('C,p', [(1, 4), (3, 4), (3, 2)])
def test_patchify_is_maes_patch_order(C, p):
    img = rng.normal(size=(2, C, 8, 12)).astype(np.float32)
    np.testing.assert_array_equal(patchify(torch.from_numpy(img), p).numpy(), _patches_by_hand(img, p))

def _mae_loss_by_hand(pred, tokens, mask, norm_pix, ddof=1, eps=1e-6):
    "He et al.: per-patch mean squared error over the patch's values, averaged over the masked patches."
    t = tokens.copy()
    if norm_pix:
        for b in range(t.shape[0]):
            for n in range(t.shape[1]):
                v = tokens[b, n]
                t[b, n] = (v - v.mean())/np.sqrt(v.var(ddof=ddof) + eps)
    per_patch = ((pred - t)**2).mean(-1)
    return (per_patch*mask).sum()/mask.sum()

@pytest.mark.parametrize('norm_pix', [False, True])
@pytest.mark.parametrize('C,p', [(3, 4), (3, 2), (1, 4)])
def test_mae_loss_matches_the_reference_formula(norm_pix, C, p):
    img = rng.normal(size=(2, C, 8, 8)).astype(np.float64)
    tokens = _patches_by_hand(img, p)
    pred = rng.normal(size=tokens.shape)
    mask = rng.random(tokens.shape[:2]) < 0.75
    mask[0, 0] = True
    want = _mae_loss_by_hand(pred, tokens, mask, norm_pix)
    got = MAELoss(norm_pix=norm_pix, patch_size=p)(torch.from_numpy(pred), torch.from_numpy(img), torch.from_numpy(mask))
    assert float(got) == pytest.approx(want, rel=1e-9)
    if norm_pix:          # the population-variance variant is a switch away, and really differs at small patches
        pop = MAELoss(norm_pix=True, patch_size=p, unbiased=False)(torch.from_numpy(pred), torch.from_numpy(img), torch.from_numpy(mask))
        assert float(pop) == pytest.approx(_mae_loss_by_hand(pred, tokens, mask, True, ddof=0), rel=1e-9)
        assert abs(float(pop) - want) > 1e-4*want

def _masked_l1_by_hand(pred, target, mask):
    "Mean absolute error over the pixels (all channels) where the one-channel mask is set."
    err = np.abs(pred - target)
    m = np.broadcast_to(mask, err.shape)
    return err[m].mean()

def test_gmml_masked_l1_is_eq_1_2():
    x, xr = rng.normal(size=(3, 3, 16, 16)), rng.normal(size=(3, 3, 16, 16))
    mask = rng.random((3, 1, 16, 16)) < 0.4
    got = MaskedL1Loss()(torch.from_numpy(xr), torch.from_numpy(x), torch.from_numpy(mask))
    assert float(got) == pytest.approx(_masked_l1_by_hand(xr, x, mask), rel=1e-12)
    assert float(masked_l1_loss(torch.from_numpy(xr), torch.from_numpy(x), whole_image=True)) == pytest.approx(np.abs(xr - x).mean())

def test_simmim_loss_is_l1_over_masked_pixels_per_channel():
    "SimMIM: the L1 error summed over the masked pixels, divided by the number of masked pixels and by the channels."
    x, xr = rng.normal(size=(2, 3, 16, 16)), rng.normal(size=(2, 3, 16, 16))
    mask = rng.random((2, 1, 16, 16)) < 0.6
    by_hand = (np.abs(x - xr)*mask).sum()/mask.sum()/3
    assert float(MaskedL1Loss()(torch.from_numpy(xr), torch.from_numpy(x), torch.from_numpy(mask))) == pytest.approx(by_hand, rel=1e-12)

def test_drloc_targets_and_loss_are_the_thesis_equations():
    rows, cols, B, m = 5, 7, 2, 9
    p = torch.from_numpy(np.stack([rng.integers(0, rows, (B, m)), rng.integers(0, cols, (B, m))], -1))
    q = torch.from_numpy(np.stack([rng.integers(0, rows, (B, m)), rng.integers(0, cols, (B, m))], -1))
    want = np.array([[[abs(int(p[b, k, 0]) - int(q[b, k, 0]))/rows, abs(int(p[b, k, 1]) - int(q[b, k, 1]))/cols]
                      for k in range(m)] for b in range(B)])
    t = drloc_targets(p, q, rows, cols)
    np.testing.assert_allclose(t.numpy(), want, rtol=1e-6)
    d = torch.rand(B, m, 2)
    assert float(drloc_loss(d, t)) == pytest.approx(np.mean([abs(d[b, k, 0] - t[b, k, 0]) + abs(d[b, k, 1] - t[b, k, 1])
                                                             for b in range(B) for k in range(m)]), rel=1e-5)

def test_me_loss_is_eq_3_8():
    B, D, h, w, r = 2, 6, 4, 4, 0.75
    E, Eh = rng.normal(size=(B, D, h, w)), rng.normal(size=(B, D, h, w))
    tok = np.zeros((B, h*w), bool)
    for b in range(B): tok[b, rng.permutation(h*w)[:round(r*h*w)]] = True
    M = np.broadcast_to(tok.reshape(B, 1, h, w), E.shape)
    args = torch.from_numpy(E), torch.from_numpy(Eh), torch.from_numpy(tok)
    assert float(me_loss(*args, ratio=r)) == pytest.approx(((E - Eh)**2*M).mean()/r, rel=1e-9)    # E[(E − Ê)² ⊙ M]/r
    assert float(me_loss(*args)) == pytest.approx(((E - Eh)**2)[M].mean(), rel=1e-9)              # the same when r·N is whole

def test_fgsm_is_a_signed_gradient_step_in_pixel_space():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3*4*4, 5)).double().eval()
    mean, std = (0.3, 0.4, 0.5), (0.2, 0.25, 0.3)
    px = torch.rand(4, 3, 4, 4, dtype=torch.float64)*0.8 + 0.1           # pixels in [0.1, 0.9]
    m, s = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1), torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    y, eps = torch.tensor([0, 1, 2, 3]), 4/255
    xp = px.clone().requires_grad_(True)                                # the gradient with respect to the pixels
    nn.functional.cross_entropy(model((xp - m)/s), y, reduction='sum').backward()
    want = ((px + eps*xp.grad.sign()).clamp(0, 1) - m)/s
    got = fgsm_perturb(model, (px - m)/s, y, eps, stats=(list(mean), list(std)))
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)          # the stats are float32
