"""Backends: one printer, template folder and context builder per target (see base.py)."""
