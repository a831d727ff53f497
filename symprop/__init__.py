"""symprop: symbolic backpropagation compiled to standalone NumPy modules.

The pipeline, one module per stage (imports flow one way):
spec -> elementwise/graph (symbolic network) -> derive (backprop) -> optimize (CSE) -> emit (Jinja + printer).
"""

__version__ = "0.1.0"
