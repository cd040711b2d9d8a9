"CIFAR-10/100 python batches: genuine ones (Python 2 pickles, as CIFAR ships them) load through `load_dataset`; a batch whose pickle names any function is refused with one error, before anything in it runs."
import os, pathlib, pickle, struct
import numpy as np
import pytest

from gmml_fast import datasets
from gmml_fast.files import read_cifar_batch
from gmml_fast.datasets import CIFAR10_CLASSES, load_dataset, pretrain_dls, finetune_dls

# --- writing batches the way CIFAR's own files are written: Python 2 `cPickle`, protocol 2 ---------------------------
# Python 3 cannot write a Python 2 `str`, and it is what CIFAR's keys, names and raw array bytes are: opcode by opcode, then.
def _py2(o) -> bytes:
    "The protocol-2 opcodes of `o` as Python 2 pickled it: str/bytes as Python 2 strings, uint8 arrays as numpy 1 wrote them."
    if o is None: return b'N'
    if o is True or o is False: return b'\x88' if o else b'\x89'
    if isinstance(o, int): return b'J' + struct.pack('<i', o)                                        # BININT
    if isinstance(o, (str, bytes)):
        s = o.encode('latin1') if isinstance(o, str) else o
        return (b'U' + bytes([len(s)]) if len(s) < 256 else b'T' + struct.pack('<i', len(s))) + s    # SHORT_BINSTRING / BINSTRING
    if isinstance(o, tuple): return b'(' + b''.join(map(_py2, o)) + b't'
    if isinstance(o, list): return b'](' + b''.join(map(_py2, o)) + b'e'
    if isinstance(o, dict): return b'}(' + b''.join(_py2(k) + _py2(v) for k, v in o.items()) + b'u'
    if isinstance(o, np.ndarray):
        assert o.dtype == np.uint8 and o.flags.c_contiguous
        dtype = b'cnumpy\ndtype\n' + _py2(('u1', 0, 1)) + b'R' + _py2((3, '|', None, None, None, -1, -1, 0)) + b'b'
        empty = b'cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n' + _py2((0,)) + _py2('b') + b'tR'
        return empty + b'(' + _py2(1) + _py2(o.shape) + dtype + _py2(False) + _py2(o.tobytes()) + b't' + b'b'
    raise TypeError(type(o))

def _write_py2(path, d): path.write_bytes(b'\x80\x02' + _py2(d) + b'.')

def _cifar10(root, n_per_batch=2, n_test=3, seed=0):
    "torchvision's cifar-10-batches-py under `root`: five training batches, a test batch and batches.meta, each with every key the real ones have."
    rng, folder = np.random.default_rng(seed), root/'cifar-10-batches-py'
    folder.mkdir(parents=True)
    x = rng.integers(0, 256, (5*n_per_batch + n_test, 3, 32, 32), dtype=np.uint8)
    y = [int(v) for v in rng.integers(0, 10, len(x))]
    for i in range(5):
        s = slice(i*n_per_batch, (i + 1)*n_per_batch)
        _write_py2(folder/f'data_batch_{i + 1}', {'batch_label': f'training batch {i + 1} of 5', 'labels': y[s],
                                                   'data': x[s].reshape(n_per_batch, 3072), 'filenames': [f'img_{j}.png' for j in range(n_per_batch)]})
    _write_py2(folder/'test_batch', {'batch_label': 'testing batch 1 of 1', 'labels': y[-n_test:],
                                     'data': x[-n_test:].reshape(n_test, 3072), 'filenames': [f't_{j}.png' for j in range(n_test)]})
    _write_py2(folder/'batches.meta', {'num_cases_per_batch': n_per_batch, 'label_names': list(CIFAR10_CLASSES), 'num_vis': 3072})
    return folder, x, y

def test_genuine_cifar10_batches_load(tmp_path):
    folder, x, y = _cifar10(tmp_path)
    with open(folder/'data_batch_1', 'rb') as f: plain = pickle.load(f, encoding='latin1')     # what the reader used to do
    assert isinstance(plain['data'], np.ndarray) and plain['batch_label'] == 'training batch 1 of 5'
    ours = read_cifar_batch(folder/'data_batch_1')
    assert ours.keys() == plain.keys() and np.array_equal(ours['data'], plain['data']) and ours['data'].dtype == np.uint8
    assert {k: v for k, v in ours.items() if k != 'data'} == {k: v for k, v in plain.items() if k != 'data'}
    xt, yt, names = load_dataset('cifar10', 'train', root=tmp_path)
    assert tuple(xt.shape) == (10, 3, 32, 32) and str(xt.dtype) == 'torch.uint8' and np.array_equal(xt.numpy(), x[:10])
    assert yt.tolist() == y[:10] and str(yt.dtype) == 'torch.int64' and names == CIFAR10_CLASSES
    xv, yv, _ = load_dataset('cifar10', 'test', root=tmp_path)
    assert tuple(xv.shape) == (3, 3, 32, 32) and np.array_equal(xv.numpy(), x[10:]) and yv.tolist() == y[10:]

def test_genuine_cifar100_files_load(tmp_path):
    "CIFAR-100's train/test/meta, with fine and coarse labels; its class names come from meta."
    folder, rng = tmp_path/'cifar-100-python', np.random.default_rng(1)
    folder.mkdir()
    x = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    fine = [f'class_{i}' for i in range(100)]
    _write_py2(folder/'train', {'filenames': ['a.png'] * 4, 'batch_label': 'training batch 1 of 1', 'fine_labels': [5, 99, 0, 42],
                                'coarse_labels': [1, 2, 3, 4], 'data': x.reshape(4, 3072)})
    _write_py2(folder/'meta', {'fine_label_names': fine, 'coarse_label_names': [f'super_{i}' for i in range(20)]})
    xt, yt, names = load_dataset('cifar100', 'train', root=tmp_path)
    assert np.array_equal(xt.numpy(), x) and yt.tolist() == [5, 99, 0, 42] and names == tuple(fine)

def test_python3_pickles_of_a_batch_load(tmp_path):
    "A batch re-saved by Python 3 (protocol 4: numpy 2 names `numpy._core.multiarray`) reads the same."
    a = np.arange(2*3072).astype(np.uint8).reshape(2, 3072)
    with open(tmp_path/'b', 'wb') as f: pickle.dump({'data': a, 'labels': [1, 2], 'batch_label': b'raw bytes'}, f, protocol=4)
    d = read_cifar_batch(tmp_path/'b')
    assert np.array_equal(d['data'], a) and d['labels'] == [1, 2] and d['batch_label'] == b'raw bytes'

# --- doctored batches -------------------------------------------------------------------------------------------------
class _Shell:
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return os.system, (f'touch {self.marker}',)

class _WriteFile:
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return pathlib.Path.write_text, (pathlib.Path(self.marker), 'pwned')

class _Eval:
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return eval, (f"open({str(self.marker)!r}, 'w').close()",)

def _py2_os_system(marker) -> bytes:
    "A protocol-0 pickle, as Python 2 would write `os.system('touch marker')`."
    return b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."

_PAYLOADS = {'os.system': _Shell, 'pathlib.Path.write_text': _WriteFile, 'builtins.eval': _Eval}
_WHAT = {'os.system': f'{os.system.__module__}.system', 'pathlib.Path.write_text': 'pathlib.Path.write_text', 'builtins.eval': 'builtins.eval'}

@pytest.mark.parametrize('payload', list(_PAYLOADS))
@pytest.mark.parametrize('batch', ['data_batch_1', 'data_batch_4', 'test_batch', 'batches.meta'])
def test_a_batch_that_names_a_function_is_refused_before_it_runs(tmp_path, payload, batch):
    folder, _, _ = _cifar10(tmp_path/'data')
    marker = tmp_path/'pwned'
    with open(folder/batch, 'wb') as f:          # a genuine-looking dict, the payload hidden in one value
        pickle.dump({'data': np.zeros((2, 3072), np.uint8), 'labels': _PAYLOADS[payload](marker)}, f, protocol=4)
    split = 'test' if batch in ('test_batch', 'batches.meta') else 'train'
    with pytest.raises(ValueError) as e: load_dataset('cifar10', split, root=tmp_path/'data')
    assert str(e.value) == (f"{folder/batch} is not a CIFAR batch: it asks to load '{_WHAT[payload]}'; gmml_fast reads only "
                            "arrays, lists, dicts, bytes, strings and numbers from CIFAR files")
    assert not marker.exists()

def test_a_python2_pickle_of_os_system_is_refused(tmp_path):
    folder, _, _ = _cifar10(tmp_path/'data')
    marker = tmp_path/'pwned'
    (folder/'data_batch_1').write_bytes(_py2_os_system(marker))
    with pytest.raises(ValueError, match=r"data_batch_1 is not a CIFAR batch: it asks to load 'os\.system'; gmml_fast reads only"):
        load_dataset('cifar10', 'train', root=tmp_path/'data')
    assert not marker.exists()
    with open(folder/'data_batch_1', 'rb') as f: pickle.load(f, encoding='latin1')       # the same file, read the old way:
    assert marker.exists()                                                              # it runs (so the payload is real)

def test_the_cli_says_one_line_and_runs_nothing(tmp_path, capsys):
    folder, _, _ = _cifar10(tmp_path/'data')
    marker = tmp_path/'pwned'
    (folder/'data_batch_3').write_bytes(_py2_os_system(marker))
    from gmml_fast.train import main
    rc = main(['pretrain', '--data', 'cifar10', '--data_root', str(tmp_path/'data'), '--out', str(tmp_path/'out')])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and 'data_batch_3 is not a CIFAR batch' in err and "'os.system'" in err, err
    assert not marker.exists()

# --- how often each file is read while the loaders are built ----------------------------------------------------------
def _count_reads(monkeypatch):
    counts, read = {}, read_cifar_batch
    def counting(path):
        counts[path.name] = counts.get(path.name, 0) + 1
        return read(path)
    monkeypatch.setattr(datasets, 'read_cifar_batch', counting)   # the name datasets reads CIFAR files through
    return counts

@pytest.mark.parametrize('build', [pretrain_dls, finetune_dls])
def test_each_cifar10_file_is_read_once_per_loader_build(tmp_path, monkeypatch, build):
    _cifar10(tmp_path)
    counts = _count_reads(monkeypatch)
    dls = build('cifar10', bs=4, root=tmp_path)
    assert len(dls.train_ds) == 10 and len(dls.valid_ds) == 3
    splits = {k: v for k, v in counts.items() if k != 'batches.meta'}
    assert splits == {**{f'data_batch_{i}': 1 for i in range(1, 6)}, 'test_batch': 1}, counts
    assert 1 <= counts['batches.meta'] <= 2, counts          # class names: read with each split today (CIFAR-10's are built in)

@pytest.mark.parametrize('command,options', [('pretrain', ['--monitor', '20']), ('finetune', ['--label_fraction', '1', '--n_valid', '10'])])
def test_a_command_line_run_reads_each_cifar10_split_once(tmp_path, monkeypatch, capsys, command, options):
    "The whole run — preset, loaders, the k-NN monitor's labeled images, the report's 'N of M test images' — from one read of each file."
    _cifar10(tmp_path/'data', n_per_batch=8, n_test=12)
    counts = _count_reads(monkeypatch)
    from gmml_fast.train import main
    rc = main([command, '--data', 'cifar10', '--data_root', str(tmp_path/'data'), '--out', str(tmp_path/'out'), '--epochs', '1',
               '--depth', '1', '--bs', '8', *options])
    assert rc == 0, capsys.readouterr().err
    splits = {k: v for k, v in counts.items() if k != 'batches.meta'}
    assert splits == {**{f'data_batch_{i}': 1 for i in range(1, 6)}, 'test_batch': 1}, counts
    (run,) = (tmp_path/'out').iterdir()
    if command == 'finetune': assert '10 of 12 test images' in (run/'result.json').read_text()
    else: assert 'knn' in (run/'history.csv').read_text().splitlines()[0]
