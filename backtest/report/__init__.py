"""Reports of replay results: terminal tables, Parquet, and a single-file HTML page with plots."""
