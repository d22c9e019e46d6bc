"""Built-in plugin: knowledge distillation of a trained run or a CLIP zero-shot head into a small student."""
