"""Text transfer on a frozen sentence encoder (zero-shot, probe) and soft-prompt tuning (Lester et al. 2021)."""
