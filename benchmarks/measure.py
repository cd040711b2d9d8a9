"""What every benchmark measures with, shared by the CPU studies (`stages.py`) and the GPU study (`gpu.py`): one timer
of fastai fits (`Timing`), one timer of plain calls (`median_seconds`) and one loader of synthetic images
(`synthetic_dls`)."""
from __future__ import annotations
import statistics, time

import torch
from fastai.callback.core import Callback, CancelFitException

N_CLASSES = 10          # the synthetic labels' classes


def _no_sync(): pass

class Timing(Callback):
    """The one timer of a fit's training: `epoch_s` (seconds of each training phase) and `train_s` (their sum), `steps`
    (host seconds of each training batch, timed after the other callbacks' `before_batch`, as the studies' records always
    were), `epoch_loss` (each epoch's mean training loss, summed on the loss's device: no host sync per step) and
    `losses` (every step's loss, a tensor). With `stop_after=n` it also times a window: the `n` training steps after
    `warmup` ones, between two calls of `sync` (`torch.cuda.synchronize` makes it device time), in `window_start` /
    `window_end`, from before the methods' callbacks (their corruption or masking counts); the fit then ends. Validation is never timed."""
    order = 100             # after the other callbacks, as the studies' records have always been timed
    def __init__(self,
                 warmup: int = 0,                # training steps before the timed window
                 stop_after: int | None = None,  # steps in the timed window, after which the fit ends (None: no window)
                 sync=None):                     # called at the window's two ends (None: nothing to wait for)
        self.warmup, self.stop_after, self.sync = warmup, stop_after, sync or _no_sync
        # a timed window starts before the methods' callbacks, so that their corruption or masking is part of it
        if stop_after is not None: self.order = -10

    def before_fit(self):
        self.t_fit, self.n, self.window_start, self.window_end = time.perf_counter(), 0, None, None
        self.train_s, self.epoch_s, self.steps, self.epoch_loss, self.losses = 0., [], [], [], []
    def before_train(self): self.t_epoch, self.tot, self._epoch_steps = time.perf_counter(), 0., 0
    def before_batch(self):
        if not self.training: return
        if self.stop_after is not None:
            if self.n == self.warmup: self.sync(); self.window_start = time.perf_counter()
            if self.n == self.warmup + self.stop_after:
                self.sync(); self.window_end = time.perf_counter()
                raise CancelFitException        # the window is timed: no validation, no more epochs
        self.t_batch = time.perf_counter()
    def after_batch(self):
        if not self.training: return
        loss = self.learn.loss.detach()
        self.losses.append(loss); self.n += 1; self._epoch_steps += 1
        # the epoch's mean loss, summed on the device; not inside a timed window, where it would be one more kernel
        if self.stop_after is None: self.tot = self.tot + loss.float()
        self.steps.append(time.perf_counter() - self.t_batch)
    def after_train(self):
        self.epoch_s.append(time.perf_counter() - self.t_epoch); self.train_s += self.epoch_s[-1]
        self.epoch_loss.append(round(float(self.tot)/max(self._epoch_steps, 1), 4))

    def step_ms(self) -> float:
        "Median training step after the first 3 (warm-up), in milliseconds."
        s = self.steps[3:] or self.steps
        return round(1000*statistics.median(s), 1)

    def window_s(self) -> float:
        "Seconds of the timed window; an error if the fit ended before it was complete."
        if self.window_end is None:
            raise RuntimeError(f"the fit ended after {self.n} steps, before the {self.warmup + (self.stop_after or 0)} "
                               "the timing needs")
        return self.window_end - self.window_start


def median_seconds(fn, repeats: int, warmup: int = 1, sync=None) -> float:
    "Median wall time of `fn()` over `repeats` calls after `warmup` untimed ones (`sync` is called before each clock read)."
    sync = sync or _no_sync
    for _ in range(warmup): fn()
    ts = []
    for _ in range(repeats):
        sync(); t0 = time.perf_counter(); fn(); sync(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def synthetic_dls(n: int, size: int, bs: int, labeled: bool, device=None, channels: int = 3, seed: int = 0):
    """fastai `DataLoaders` over `n` random uint8 images (`channels`×`size`×`size`, already on `device`) with random
    labels of `N_CLASSES` classes when `labeled`, turned into floats and normalised per batch as real data is (the
    views need the statistics); the validation set is the first batch. What the throughput, memory and host studies
    and the GPU study train on."""
    from gmml_fast.data import tensor_dls, image_batch_tfms
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8).to(device)
    y = torch.randint(0, N_CLASSES, (n,), generator=g).to(device)
    tfms = image_batch_tfms(([0.5]*channels, [0.25]*channels))
    if labeled: return tensor_dls(x, x[:bs], y, y[:bs], vocab=[str(c) for c in range(N_CLASSES)], bs=bs, after_batch=tfms,
                                  device=device)
    return tensor_dls(x, x[:bs], bs=bs, after_batch=tfms, device=device)
