"""The delivery log: every verified webhook delivery, recorded before it is answered and swept until processed.

records (pure values), stores (SQLite through sqlite3, any database through SQLAlchemy), recorder (group
commit on the web process), enqueuers (Redis directly or through the broker), outcomes (the worker's
writer) and sweeper. Importing this package loads nothing: web processes keep SQLAlchemy and dramatiq out.
"""
