"""msgs subpackage."""
