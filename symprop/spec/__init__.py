"""Stage 1: the network spec (TOML or Python), validated; custom expressions parsed safely."""

from symprop.spec.model import Layer, Spec, SpecError, load_spec, spec_from_dict, validate
from symprop.spec.registry import ACTIVATIONS, LOSSES, Param

__all__ = ["ACTIVATIONS", "LOSSES", "Layer", "Param", "Spec", "SpecError", "load_spec", "spec_from_dict", "validate"]
