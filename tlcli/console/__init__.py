"""What the user sees and hands in: output, errors, secrets masking, option files."""
