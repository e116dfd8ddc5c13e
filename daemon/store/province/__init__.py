"""第十五条: the store delivers every result to the provincial 好差评 system, through a delivery
profile per province (profiles.py: the TOML files; mapping.py: store records to the province's
records; delivery.py: the outbox, batches, retries, quarantine). docs/province.md."""
