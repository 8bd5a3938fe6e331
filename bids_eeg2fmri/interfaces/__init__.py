"""interfaces subpackage."""
