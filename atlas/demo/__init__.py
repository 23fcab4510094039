"""The embedded demo: a generated world with a planted shortcut, and a small CNN."""
