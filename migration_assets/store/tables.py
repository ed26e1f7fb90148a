"""The Core tables behind the models, typed as tables: one handle each, for bulk statements."""

from migration_assets.store.models import (
    AuditEntry,
    ContentItem,
    ContentVector,
    DataIntegrityCheck,
    Embedding,
    JournalTransaction,
    KnowledgeItem,
    LegacyMapping,
    MigrationBackup,
    MigrationItem,
    MigrationRun,
    MigrationWave,
    RecordWarning,
    RejectedRecord,
    RunDependency,
    table_of,
)

CONTENT = table_of(ContentItem)
KNOWLEDGE = table_of(KnowledgeItem)
EMBEDDINGS = table_of(Embedding)
CONTENT_VECTORS = table_of(ContentVector)
MAPPINGS = table_of(LegacyMapping)
RUNS = table_of(MigrationRun)
ITEMS = table_of(MigrationItem)
REJECTED = table_of(RejectedRecord)
WARNINGS = table_of(RecordWarning)
CHECKS = table_of(DataIntegrityCheck)
BACKUPS = table_of(MigrationBackup)
WAVES = table_of(MigrationWave)
JOURNAL_TXS = table_of(JournalTransaction)
DEPENDENCIES = table_of(RunDependency)
AUDIT = table_of(AuditEntry)
