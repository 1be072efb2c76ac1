"""slam subpackage."""
