"""Content-keyed stores of computed rows: image features and teacher outputs (images.py), text
embeddings (texts.py)."""
