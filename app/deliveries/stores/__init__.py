"""Where deliveries are written: SQLite through sqlite3 (web processes), any database through SQLAlchemy."""
