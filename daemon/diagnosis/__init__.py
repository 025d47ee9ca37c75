"""The diagnosis: the hint catalogue and the pure rules from findings to hints."""
