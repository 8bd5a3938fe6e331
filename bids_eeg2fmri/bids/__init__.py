"""bids subpackage."""
