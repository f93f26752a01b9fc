"""Reviewers' decisions: an append-only store of labeled messages, fed by the service and by imports.

`store.ReviewStore` (SQLAlchemy 2: a SQLite file by default, PostgreSQL by URL; migrated with the
Alembic revisions in `migrations/` when opened) takes batches of `schema.ReviewDecision`, each in
one transaction, and reads back the latest decision per message (`snapshot`) for training and
monitoring. `importer` reads review tools' exports into decisions.
"""
