"""workflows subpackage."""
