"""The recipes and the command line generated from them: every field rejects every kind of bad value with one error that
names it, and every command-line option reaches the learner the command builds."""
import math
from dataclasses import fields

import pytest
import torch
from fastai.callback.training import GradientClip
from fastai.callback.mixup import MixUp, CutMix

from gmml_fast.recipe import GMMLRecipe, MAERecipe, SimMIMRecipe, FinetuneRecipe, NAMED_RECIPES
from gmml_fast.checked import _interval, in_interval, field_kind as _kind
from gmml_fast.data import tensor_dls
from gmml_fast.config import PretrainConfig, FinetuneConfig
from gmml_fast.runs import _pretrain_learner, _finetune_learner
from gmml_fast.train import parser
from gmml_fast.auxiliary import DRLoc
from gmml_fast.masked_aux import ME, MAEAux

RECIPES = (GMMLRecipe, MAERecipe, SimMIMRecipe, FinetuneRecipe)

def bad_values(f):
    "Values field `f` must refuse, derived from its declaration: outside each end of its interval, NaN, a fraction for an integer, a wrong type, an unknown choice, None where None means nothing."
    m, kind, out = f.metadata, _kind(f), []
    if m['none'] is None: out.append(None)
    if m['within']:
        lo, hi, lo_open, hi_open = _interval(m['within'])
        if math.isfinite(lo): out += [lo] if lo_open else [lo - 1 if kind == 'int' else lo - 1e-6]
        if math.isfinite(hi): out += [hi] if hi_open else [hi + 1 if kind == 'int' else hi + 1e-6]
        out += [float('nan'), 'one']
        if kind == 'int': out.append(lo + 1.5 if math.isfinite(lo) else 1.5)
    if m['choices']: out += ['no-such-' + f.name, 3]
    if kind == 'bool': out += ['yes', 1]
    if kind == 'dict': out.append([1])
    return out

CASES = [(cls, f, v) for cls in RECIPES + (PretrainConfig, FinetuneConfig) for f in fields(cls) if 'help' in f.metadata
         for v in bad_values(f)]

def test_every_field_declares_what_it_allows():
    "A numeric field without an interval, or a str field without choices that is not free text, would accept anything."
    free_text = {'data', 'data_root', 'arch', 'out', 'pretrained', 'recipe'}
    for cls in RECIPES + (PretrainConfig, FinetuneConfig):
        for f in fields(cls):
            if 'help' not in f.metadata: continue
            kind = _kind(f)
            if kind in ('int', 'float'): assert f.metadata['within'], f"{cls.__name__}.{f.name}"
            if kind == 'str' and f.name not in free_text: assert f.metadata['choices'], f"{cls.__name__}.{f.name}"
    assert len(CASES) > 150

@pytest.mark.parametrize('cls,f,v', CASES, ids=[f"{c.__name__}.{f.name}={v!r}" for c, f, v in CASES])
def test_every_bad_value_is_one_error_naming_the_field(cls, f, v):
    with pytest.raises(ValueError) as e: cls(**{f.name: v})
    msg = str(e.value)
    assert msg.startswith(f"{f.name} must be ") and '\n' not in msg, msg

def test_the_ends_of_closed_intervals_are_allowed():
    for cls in RECIPES:
        for f in fields(cls):
            spec = f.metadata['within']
            if not spec: continue
            lo, hi, lo_open, hi_open = _interval(spec)
            for end, is_open in ((lo, lo_open), (hi, hi_open)):
                if is_open or not math.isfinite(end): continue
                v = int(end) if _kind(f) == 'int' else end
                assert getattr(cls(**{f.name: v}), f.name) == v
    assert in_interval(0, '[0, 1)') and not in_interval(1, '[0, 1)') and in_interval(1, '(0, 1]')

def test_named_recipes_are_checked_and_distinct():
    assert len({r.key for r in NAMED_RECIPES.values()}) == len(NAMED_RECIPES)
    for name, r in NAMED_RECIPES.items():
        assert name.startswith(r.method + '@') and type(r)(**r.to_dict()) == r
    with pytest.raises(ValueError, match='exactly one of them'): GMMLRecipe(lr=1e-3, base_lr=5e-4)

# --- the generated command line -------------------------------------------------------------------------------------
def _dls(labeled: bool, n=64, bs=16):
    g = torch.Generator().manual_seed(0)
    x, xv = torch.rand(n, 1, 28, 28, generator=g), torch.rand(16, 1, 28, 28, generator=g)
    if not labeled: return tensor_dls(x, xv, bs=bs)
    y, yv = torch.arange(n) % 10, torch.arange(16) % 10
    return tensor_dls(x, xv, y, yv, vocab=[str(i) for i in range(10)], bs=bs)

def _probe(learn, name):
    "What the learner does with recipe field `name`: read from the learner's own parts, not from its recipe."
    m, cbs = learn.model, learn.cbs
    clip = [c.max_norm for c in cbs if isinstance(c, GradientClip)]
    cb = getattr(learn, 'gmml', None) or getattr(learn, 'mae', None) or getattr(learn, 'sim_mim', None)
    enc = m.encoder
    probes = dict(
        lr=lambda: learn.lr[-1] if isinstance(learn.lr, list) else learn.lr, wd=lambda: learn.wd,
        wd_end=lambda: getattr(learn.recipe, 'wd_end', None), beta2=lambda: learn.opt_func.keywords['sqr_mom'],
        clip=lambda: clip[0] if clip else None,
        drop_path=lambda: getattr(enc.blocks[-1].drop_path1, 'drop_prob', 0.0),
        augment=lambda: (cb.augment is not None) if cb is not None else next((c.policy for c in cbs if type(c).__name__ == 'BatchAugment'), None),
        corruption=lambda: cb.corruption.name, align=lambda: cb.corruption.align, ratio=lambda: cb.corruption.ratio,
        fusion=lambda: m.fusion, whole_image=lambda: learn.loss_func.whole_image,
        mask_ratio=lambda: m.mask_ratio, mask=lambda: m.mask, dummy_token=lambda: m.dummy_token is not None,
        decoder_dim=lambda: m.decoder_embed.out_features, decoder_depth=lambda: len(m.decoder_blocks),
        decoder_heads=lambda: m.decoder_blocks[0].attn.num_heads,
        norm_pix=lambda: learn.loss_func.norm_pix, alpha=lambda: learn.loss_func.alpha,
        pool=lambda: m.pool, head_drop=lambda: m.head_drop,
        layer_decay=lambda: round(learn.lr[-2]/learn.lr[-1], 6),
        label_smoothing=lambda: learn.loss_func.func.label_smoothing,
        mixup=lambda: next((c.distrib.concentration1.item() for c in cbs if isinstance(c, MixUp)), 0.0),
        cutmix=lambda: next((c.distrib.concentration1.item() for c in cbs if isinstance(c, CutMix)), 0.0),
        drloc=lambda: next((c.lam for c in cbs if isinstance(c, DRLoc)), None),
        me=lambda: next((c.lam for c in cbs if isinstance(c, ME)), None),
        mae=lambda: next((c.lam for c in cbs if isinstance(c, MAEAux)), None))
    return probes[name]()

# one non-default value per option, as typed on the command line, and what the learner must then show
PRETRAIN_VALUES = {
    'gmml': dict(lr=('2e-3', 2e-3), wd=('0.1', 0.1), wd_end=('none', None), beta2=('0.9', 0.9), clip=('1.5', 1.5),
                 drop_path=('0.2', 0.2), augment=(None, False), corruption=('comb1', 'comb1'), align=('4', 4),
                 ratio=('0.5', 0.5), fusion=('mean', 'mean'), whole_image=(None, True)),
    'mae': dict(mask_ratio=('0.5', 0.5), decoder_dim=('48', 48), decoder_depth=('1', 1), decoder_heads=('2', 2),
                dummy_token=(None, True), norm_pix=(None, True), alpha=('0.5', 0.5), clip=('2', 2.0), beta2=('0.99', 0.99)),
    'simmim': dict(mask_ratio=('0.4', 0.4), mask=('blockwise', 'blockwise'), clip=('none', None), drop_path=('0', 0.0)),
}
FINETUNE_VALUES = dict(lr=('1e-3', 1e-3), wd=('0.1', 0.1), pool=('cls', 'cls'), layer_decay=('0.8', 0.8),
                       label_smoothing=('0', 0.0), mixup=('0.4', 0.4), augment=('trivialaugment', 'trivialaugment'),
                       drloc=('0.3', 0.3), me=('0.2', 0.2), mae=('0.1', 0.1), head_drop=('0.1', 0.1), drop_path=('0.1', 0.1),
                       beta2=('0.99', 0.99), clip=('1', 1.0))

def _argv(values):
    argv = []
    for k, (typed, want) in values.items():
        argv += [f'--{k}' if want else f'--no-{k}'] if typed is None else [f'--{k}', typed]
    return argv

def _config(cfg_cls, argv):
    ns = vars(parser(cfg_cls).parse_args(argv)); ns.pop('resume'); ns.pop('stop_after')
    cfg = cfg_cls.from_options(**ns)
    r = cfg.training_recipe(); cfg = cfg.completed(r)
    return cfg, r

@pytest.mark.parametrize('method', ['gmml', 'mae', 'simmim'])
def test_every_pretrain_option_reaches_the_learner(method, tmp_path):
    values = PRETRAIN_VALUES[method]
    cfg, r = _config(PretrainConfig, ['--method', method, '--depth', '2', '--epochs', '3', '--warmup', '0.2'] + _argv(values))
    assert (r.epochs, r.warmup) == (3, 0.2)                       # the fit reads these two from the recipe
    learn = _pretrain_learner(cfg, r, _dls(False), tmp_path)
    for k, (_, want) in values.items():
        got = _probe(learn, k)
        assert got == pytest.approx(want) if isinstance(want, float) else got == want, (k, got, want)
    assert len(learn.model.encoder.blocks) == 2

def test_the_pretraining_defaults_are_the_recipes(tmp_path):
    "No option given: the learner the command builds and gmml_learner(dls) train with the same settings."
    from gmml_fast.learner import gmml_learner
    cfg, r = _config(PretrainConfig, [])
    assert r == GMMLRecipe() and cfg.method == 'gmml' and cfg.arch == 'nano_28'
    assert (r.lr, r.wd, r.wd_end, r.clip, r.drop_path, r.epochs, r.warmup) == (1e-3, 0.04, 0.4, 3.0, 0.1, 2, 0.1)   # what the committed runs used
    a, b = _pretrain_learner(cfg, r, _dls(False), tmp_path), gmml_learner(_dls(False), encoder_kwargs=dict(depth=6))
    for k in ('lr', 'wd', 'wd_end', 'beta2', 'clip', 'drop_path', 'augment', 'corruption'):
        assert _probe(a, k) == _probe(b, k), k

def test_every_finetune_option_reaches_the_learner(tmp_path):
    cfg, r = _config(FinetuneConfig, ['--depth', '2', '--epochs', '3', '--warmup', '0.1'] + _argv(FINETUNE_VALUES))
    assert (r.epochs, r.warmup) == (3, 0.1)
    learn = _finetune_learner(cfg, r, _dls(True), dict(pretrained=None, arch=cfg.arch, size=28, depth=2, patch_size=None), tmp_path)
    for k, (_, want) in FINETUNE_VALUES.items():
        got = _probe(learn, k)
        assert got == pytest.approx(want) if isinstance(want, float) else got == want, (k, got, want)
    cfg, r = _config(FinetuneConfig, ['--cutmix', '1.0'])
    assert _probe(_finetune_learner(cfg, r, _dls(True), dict(pretrained=None, arch='nano_28', size=28, depth=1, patch_size=None), tmp_path), 'cutmix') == 1.0

def test_base_lr_on_the_command_line_scales_with_the_batch(tmp_path):
    "--base_lr alone replaces the recipe's peak lr by base_lr × bs/256 (pretraining and finetuning)."
    cfg, r = _config(PretrainConfig, ['--base_lr', '4e-3', '--depth', '1'])
    assert (r.lr, r.base_lr) == (None, 4e-3)
    assert _probe(_pretrain_learner(cfg, r, _dls(False, bs=16), tmp_path), 'lr') == pytest.approx(4e-3*16/256)
    cfg, r = _config(FinetuneConfig, ['--base_lr', '8e-3', '--depth', '1'])
    learn = _finetune_learner(cfg, r, _dls(True, bs=16), dict(pretrained=None, arch='nano_28', size=28, depth=1, patch_size=None), tmp_path)
    assert _probe(learn, 'lr') == pytest.approx(8e-3*16/256)

def test_the_finetuning_defaults_are_the_recipes(tmp_path):
    "No option given: the command's classifier and finetune_learner(dls) use the same settings, and they are the committed ones."
    from gmml_fast.learner import finetune_learner
    cfg, r = _config(FinetuneConfig, [])
    assert r == FinetuneRecipe() and (r.lr, r.pool, r.epochs, r.label_smoothing) == (2e-3, 'avg', 20, 0.1)
    a = _finetune_learner(cfg, r, _dls(True), dict(pretrained=None, arch='nano_28', size=28, depth=6, patch_size=None), tmp_path)
    b = finetune_learner(_dls(True), encoder_kwargs=dict(depth=6))
    for k in ('lr', 'wd', 'beta2', 'clip', 'pool', 'label_smoothing', 'drop_path', 'head_drop', 'mixup', 'drloc'):
        assert _probe(a, k) == _probe(b, k), k

def test_every_recipe_field_with_a_plain_value_is_an_option():
    for cfg_cls in (PretrainConfig, FinetuneConfig):
        opts = {a.dest for a in parser(cfg_cls)._actions}
        for c in cfg_cls.recipe_classes:
            for f in fields(c):
                if _kind(f) in ('int', 'float', 'str', 'bool'): assert f.name in opts, (cfg_cls.command, f.name)
