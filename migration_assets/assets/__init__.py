"""Dagster assets: thin functions that call the service layer and report what happened."""
