"""The municipal store: receives every hall's batches; the single source for scores and reports."""
