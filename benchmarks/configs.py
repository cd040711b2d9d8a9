"""The configuration of every stage kind as a checked dataclass (the library's `Checked` with `hp` fields): a study
makes them, `stages.Store` runs them. A value out of range is one error naming the field when the config is made,
before anything is computed; `key_dict()` is the plain dict a stage's name is the hash of (the same dict the studies
wrote before the configs were typed, so every finished stage is still found)."""
from __future__ import annotations
from dataclasses import dataclass, field
from typing import ClassVar

from gmml_fast.checked import Checked, hp

ARCH, DEPTH, SIZE = 'nano_28', 6, 28     # ViT-Nano (96-d, 3 heads), 6 blocks, 28 px images in 4 px patches: 7×7 tokens


def _hp_dict(help: str):
    "A dict field (a fresh empty dict by default) with a help line, checked like the `hp` fields."
    return field(default_factory=dict, metadata=hp(None, help).metadata)


@dataclass(frozen=True)
class StageConfig(Checked):
    "What one stage computes: its `kind` (a key of `stages.STAGES`) and its fields."
    kind: ClassVar[str] = ''

    def key_dict(self) -> dict:
        "The fields as plain values (a nested config as its own `key_dict`): what the stage's name hashes and its record keeps."
        return {k: v.key_dict() if isinstance(v, StageConfig) else v for k, v in self.to_dict().items()}


@dataclass(frozen=True)
class _EncoderStage(StageConfig):
    "The ViT a stage builds: preset, blocks and image size (shared by the pretraining, finetuning and read-out stages)."
    arch: str = hp(ARCH, 'encoder preset')
    depth: int = hp(DEPTH, 'encoder blocks', within='[1, inf)')
    size: int = hp(SIZE, 'image side in pixels', within='[1, inf)')


@dataclass(frozen=True)
class PretrainStage(_EncoderStage):
    "Pretrain `method` with `recipe` + `overrides` on `images` pool images; k-NN read-outs on `n_bank` + `n_query` images."
    kind: ClassVar[str] = 'pretrain'
    method: str = hp('gmml', 'the pretraining method', choices=('gmml', 'mae', 'simmim'))
    recipe: str = hp('gmml@v1', 'the named recipe')
    overrides: dict = _hp_dict('recipe fields that replace the named recipe\'s')
    decoder: dict | None = hp(None, "GMML's `LightDecoder` arguments", none='the recipe\'s decoder')
    images: int = hp(60000, 'unlabeled training images (drawn from the pool)', within='[1, inf)')
    epochs: int = hp(5, 'pretraining epochs', within='[1, inf)')
    bs: int = hp(128, 'batch size', within='[1, inf)')
    seed: int = hp(0, 'seed of the weights and the random streams', within='[0, inf)')
    n_bank: int = hp(10000, 'labeled pool images of the k-NN bank', within='[1, inf)')
    n_query: int = hp(2000, 'held-out training images the read-outs query', within='[1, inf)')


@dataclass(frozen=True)
class FinetuneStage(_EncoderStage):
    "Finetune a classifier on `fraction` of the labels with `recipe` + `overrides`, then evaluate it once."
    kind: ClassVar[str] = 'finetune'
    model: str = hp('vit', "'vit' (from `pretrain`, or random init) or 'cnn' (the small ResNet)", choices=('vit', 'cnn'))
    pretrain: PretrainStage | None = hp(None, 'the pretraining whose encoder is finetuned', none='random init',
                                        objects=(PretrainStage,))
    fraction: float = hp(0.01, 'share of the 60,000 training labels', within='(0, 1]')
    seed: int = hp(0, 'seed of the labeled subset, the head and the shuffling', within='[0, inf)')
    recipe: str = hp('finetune@v1', 'the named finetuning recipe')
    overrides: dict = _hp_dict('recipe fields that replace the named recipe\'s')
    epochs: int = hp(80, 'finetuning epochs', within='[1, inf)')
    bs: int = hp(64, 'batch size (at most the labeled images)', within='[1, inf)')
    evaluate: str = hp('test', "score on the 'test' images or the 'heldout' training images (to choose a setting)",
                       choices=('test', 'heldout'))
    n_test: int | None = hp(None, 'test images scored', within='[1, 10000]', none='all 10,000')
    n_query: int = hp(2000, 'held-out training images (never trained on)', within='[1, inf)')


@dataclass(frozen=True)
class FrozenStage(_EncoderStage):
    "k-NN and linear-probe test accuracy of an encoder's frozen features on every labeled subset."
    kind: ClassVar[str] = 'frozen'
    pretrain: PretrainStage | None = hp(None, 'the pretraining whose encoder is read out', none='random init',
                                        objects=(PretrainStage,))
    fractions: list = field(default_factory=lambda: [0.01, 0.1], metadata=hp(None, 'label fractions').metadata)
    seeds: list = field(default_factory=lambda: [0, 1, 2], metadata=hp(None, 'seeds of the labeled subsets').metadata)
    n_test: int | None = hp(None, 'test images scored', within='[1, 10000]', none='all 10,000')
    n_query: int = hp(2000, 'held-out training images (never trained on)', within='[1, inf)')


@dataclass(frozen=True)
class ReadoutStage(_EncoderStage):
    "The held-out k-NN and linear-probe read-out of a randomly initialised encoder."
    kind: ClassVar[str] = 'readout'
    n_bank: int = hp(10000, 'labeled pool images of the k-NN bank', within='[1, inf)')
    n_query: int = hp(2000, 'held-out training images queried', within='[1, inf)')
    seed: int = hp(0, 'seed of the random weights', within='[0, inf)')


@dataclass(frozen=True)
class MemoryStage(StageConfig):
    "The memory of one training step, measured in a fresh process."
    kind: ClassVar[str] = 'memory'
    method: str = hp('gmml', 'the step measured', choices=('gmml', 'mae', 'finetune'))
    arch: str = hp('tiny_32', 'encoder preset')
    size: int = hp(32, 'image side in pixels', within='[1, inf)')
    bs: int = hp(64, 'batch size', within='[1, inf)')
    precision: str = hp('32', 'training precision', choices=('32', 'bf16', 'fp16'))
    machine: str = hp('', 'where it ran (measurements are not shared between machines)')
    code: str = hp('', 'the commit of the code measured, + if it had changes (nor between versions of the code)')


@dataclass(frozen=True)
class ThroughputStage(StageConfig):
    "Images/s of every step the project compares, measured in one process."
    kind: ClassVar[str] = 'throughput'
    batches: int = hp(8, 'batches per epoch', within='[1, inf)')
    epochs: int = hp(3, 'epochs per learner (the first is a warm-up)', within='[2, inf)')
    repeats: int = hp(5, 'timed repeats of the corruption alone', within='[1, inf)')
    machine: str = hp('', 'where it ran (measurements are not shared between machines)')
    code: str = hp('', 'the commit of the code measured, + if it had changes (nor between versions of the code)')


@dataclass(frozen=True)
class HostStage(StageConfig):
    "ATen ops, kernel launches, host syncs, literals and host ms per training batch of every library learner."
    kind: ClassVar[str] = 'host'
    setting: str = hp('tiny', 'the encoder and batch size (`stages.HOST_SETTINGS`)', choices=('tiny', 'nano'))
    machine: str = hp('', 'where it ran (measurements are not shared between machines)')
    code: str = hp('', 'the commit of the code measured, + if it had changes (nor between versions of the code)')
    short: int = hp(20, 'batches of the short epoch', within='[1, inf)')
    long: int = hp(60, 'batches of the long epoch', within='[2, inf)')
    repeats: int = hp(3, 'timings of each epoch (the median counts)', within='[0, inf)')

    def check(self):
        if self.long <= self.short: raise ValueError(f"long must exceed short, got long={self.long}, short={self.short}")
