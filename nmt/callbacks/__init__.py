"""The Lightning callbacks and checkpoint plugin that ``nmt fit | validate | test | predict`` add."""

from nmt.callbacks.checkpoints import AtomicCheckpointIO, LastCheckpoint, ResumeState
from nmt.callbacks.early_stopping import EarlyStopping
from nmt.callbacks.predictions import PredictionWriter
from nmt.callbacks.progress import DeviceAwareProgressBar
from nmt.callbacks.samples import TranslationSamples

__all__ = [
    "AtomicCheckpointIO",
    "DeviceAwareProgressBar",
    "EarlyStopping",
    "LastCheckpoint",
    "PredictionWriter",
    "ResumeState",
    "TranslationSamples",
]
