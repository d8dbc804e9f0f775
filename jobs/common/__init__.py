"""jobs/common package."""
