"""nmt: neural machine translation on PyTorch Lightning."""

__version__ = "0.1.0"
