"""The one shared training engine. Importing this package is cheap; torch is imported by loop.py."""
