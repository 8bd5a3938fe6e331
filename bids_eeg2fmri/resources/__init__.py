"""resources subpackage."""
