-- Run once by the postgres image when its data volume is new. The image creates the instance's
-- database (POSTGRES_DB=dagster); the migration target gets a database of its own: both keep
-- their schema version in a table named alembic_version, so they cannot share one.
CREATE DATABASE content;
