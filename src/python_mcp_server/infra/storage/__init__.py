"""Storage backends: SQLite files in the state folder."""
