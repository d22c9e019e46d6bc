"""Content-keyed caches of computed rows (image features)."""
