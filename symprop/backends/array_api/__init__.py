"""The array-API backend: one module for any namespace array-api-compat knows."""
