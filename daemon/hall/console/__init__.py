"""The hall web console: window staff page and duty manager page, served by the daemon."""
