"""The networks: plain ``nn.Module``s, one per architecture, chosen with ``model.net.class_path``."""

from nmt.networks.bahdanau import BahdanauNet
from nmt.networks.base import Seq2SeqNet
from nmt.networks.gru import GRUNet
from nmt.networks.luong import LuongNet
from nmt.networks.transformer import TransformerNet

__all__ = ["BahdanauNet", "GRUNet", "LuongNet", "Seq2SeqNet", "TransformerNet"]
