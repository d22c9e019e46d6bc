"""Instruction tuning (sft) and preference tuning (dpo) of causal language models."""
