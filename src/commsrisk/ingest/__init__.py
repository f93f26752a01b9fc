"""Outside formats in, `Message`s out: every reader lives here.

`tabular` reads CSV, JSON Lines and Parquet row by row with line numbers; `messages` validates
those rows (or stdin lines) into `Message`s, reporting each bad line with its reason. Readers
for e-mail and chat exports belong beside them.
"""
