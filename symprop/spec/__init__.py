"""Stage 1: the network spec (TOML or Python), validated; custom expressions parsed safely."""

from symprop.spec.model import ACTIVATIONS, LOSSES, Layer, Param, Spec, SpecError, load_spec, spec_from_dict, validate

__all__ = ["ACTIVATIONS", "LOSSES", "Layer", "Param", "Spec", "SpecError", "load_spec", "spec_from_dict", "validate"]
