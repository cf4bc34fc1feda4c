"""Wire models returned by tools, one file per tool group."""
