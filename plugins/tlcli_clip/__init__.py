"""Built-in plugin: CLIP zero-shot classification, linear probes on cached features, CoOp soft prompts."""
