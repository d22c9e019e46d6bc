"""Built-in plugin: learn from unlabelled images (self-supervised pretraining, pseudo-labelling)."""
