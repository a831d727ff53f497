"""The derivation shown to people: a view of the IR, rendered as text, LaTeX, Markdown or SymPy."""

from symprop.explain.model import FORMATS, ExplainError, Explanation, explain, parse_label, plain, render

__all__ = ["FORMATS", "ExplainError", "Explanation", "explain", "parse_label", "plain", "render"]
