"""Reading the legacy content store: discovery of files and one parser per format.

Nothing in this package knows about Dagster or the target database.
"""

from migration_assets.sources.discovery import FileStatus, SourceFile, scan_source
from migration_assets.sources.parse import ParsedFile, parse_file

__all__ = ["FileStatus", "ParsedFile", "SourceFile", "parse_file", "scan_source"]
