"""Moved to tlcli.models.embedder (the one text encoder); this name keeps old imports working."""

from tlcli.models.embedder import Embedder, TextEmbedder, resolve_device, resolve_precision  # noqa: F401
