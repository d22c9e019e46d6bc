"""Chain-of-thought prompting for tlcli: templates, answer extraction, self-consistency, evaluation."""
