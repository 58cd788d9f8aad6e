"""The variants whose step differs from GANModule's: each overrides one or two of its hooks (module.py)."""
