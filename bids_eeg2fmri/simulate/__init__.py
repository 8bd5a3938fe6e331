"""simulate subpackage."""
