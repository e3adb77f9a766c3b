"""Exports: the document schema (schema.py), one row per measured run (rows.py), writers by
format (writers.py) and `neurontui report`, the comparison of exports (compare.py)."""
