"""Host services: the hall daemon (and, later, the municipal store)."""
