"""Archives in bulk: a firm's exports scored into Parquet, resumable after a kill, and the same on Spark."""
