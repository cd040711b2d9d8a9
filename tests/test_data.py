"The embedded Fashion-MNIST data and the DataLoaders built on it."
import gzip
import numpy as np
import pytest
import torch

from gmml_fast.datasets import finetune_dls, pretrain_dls
from gmml_fast.data import stratified_subset, sample_photos
from gmml_fast.files import load_fashion_mnist, find_fashion_mnist, read_idx, FMNIST_ENV

def test_fashion_mnist_is_real_and_complete():
    xtr, ytr = load_fashion_mnist('train'); xte, yte = load_fashion_mnist('test')
    assert xtr.shape == (60000, 1, 28, 28) and xte.shape == (10000, 1, 28, 28)
    assert xtr.dtype == torch.uint8 and ytr.dtype == torch.int64
    assert set(ytr.tolist()) == set(range(10)) and set(yte.tolist()) == set(range(10))
    # real images, not noise: mostly black background, a bright object, and distinct images
    assert 0.25 < xtr.float().mean().item()/255 < 0.32
    assert (xtr[:100] == 0).float().mean() > 0.3
    assert len({bytes(xtr[i].numpy()) for i in range(1000)}) == 1000

def test_label_fraction_stratified_and_seeded():
    dls = finetune_dls('fashion_mnist', bs=64, label_fraction=0.01, seed=0, size=32)
    y = dls.train.labels
    assert len(y) == 600 and torch.bincount(y).tolist() == [60]*10
    again = finetune_dls('fashion_mnist', bs=64, label_fraction=0.01, seed=0, size=32)
    assert torch.equal(dls.train.images, again.train.images) and torch.equal(y, again.train.labels)
    other = finetune_dls('fashion_mnist', bs=64, label_fraction=0.01, seed=1, size=32)
    assert not torch.equal(dls.train.images, other.train.images)
    assert len(dls.valid.images) == 10000

def test_ten_percent():
    _, y = load_fashion_mnist('train')
    idx = stratified_subset(y, 0.1, seed=5)
    assert len(idx) == 6000 and torch.bincount(y[idx]).tolist() == [600]*10 and len(set(idx.tolist())) == 6000

def test_unlabeled_batches_have_no_labels():
    dls = pretrain_dls('fashion_mnist', bs=32, size=32, channels=3)
    for dl in (dls.train, dls.valid):
        b = next(iter(dl))
        assert isinstance(b, tuple) and len(b) == 1
        assert b[0].shape == (dl.bs, 3, 32, 32) and b[0].dtype == torch.float32
    assert len(dls.train) == 60000//32   # drop_last on the training set

def test_batches_cover_the_set_once_per_epoch():
    dls = finetune_dls('fashion_mnist', bs=100, label_fraction=0.01, normalize=False, size=32)
    ys = torch.cat([yb for _, yb in dls.train])
    assert len(ys) == 600 and torch.bincount(ys).tolist() == [60]*10

@pytest.mark.parametrize('kw,msg', [(dict(label_fraction=0), 'label_fraction must be in'),
                                    (dict(label_fraction=1.5), 'label_fraction must be in'),
                                    (dict(channels=2), 'channels must be 1 or 3'),
                                    (dict(valid='train'), "valid must be 'test'"),
                                    (dict(size=20, mode='pad'), "mode='pad' cannot shrink")])
def test_bad_arguments_get_clear_errors(kw, msg):
    with pytest.raises(ValueError, match=msg): finetune_dls("fashion_mnist", **{"size": 32, **kw})

def test_env_var_and_missing_data(tmp_path, monkeypatch):
    src = find_fashion_mnist()
    # a copy of the test split only: not a complete dataset, so the env var folder is rejected with a clear message
    with pytest.raises(FileNotFoundError, match='dataset-fashion-mnist'): find_fashion_mnist(tmp_path)
    for f in src.iterdir():
        if f.name.endswith('.gz'): (tmp_path/f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv(FMNIST_ENV, str(tmp_path))
    assert find_fashion_mnist() == tmp_path

def test_read_idx_rejects_garbage(tmp_path):
    bad = tmp_path/'bad.gz'
    with gzip.open(bad, 'wb') as f: f.write(b'not an idx file')
    with pytest.raises(ValueError, match='not an IDX file'): read_idx(bad)
    ok = tmp_path/'ok'
    ok.write_bytes(b'\x00\x00\x08\x02' + (2).to_bytes(4, 'big') + (3).to_bytes(4, 'big') + bytes(range(6)))
    assert np.array_equal(read_idx(ok), np.arange(6, dtype=np.uint8).reshape(2, 3))

def test_sample_photos():
    p = sample_photos()
    assert p.shape == (2, 3, 427, 640) and p.dtype == torch.uint8 and p.float().std() > 30
    assert sample_photos(size=32, normalize=True).shape == (2, 3, 32, 32)
