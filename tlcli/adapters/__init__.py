"""Parameter-efficient adapters the engine can add to any task's model (LoRA)."""
