"""The target database: SQLAlchemy models, engine, schema migrations and the batch loader."""
