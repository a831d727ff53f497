"""symprop: symbolic backpropagation compiled to standalone NumPy modules.

The pipeline, one module per stage (imports flow one way):
spec -> symbolic (scalar math) -> ir (layer program, unroll, CSE) -> backends (printer + templates) -> emit.
See docs/architecture.md.
"""

__version__ = "0.1.0"
