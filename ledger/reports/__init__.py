"""Finance reports: the settlement report per department and period (issue 10)."""
