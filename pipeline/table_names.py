"""Every table and landing folder of the warehouse, by name: the data model's vocabulary.

Plain constants, no imports: the pure transformations (`pipeline.transforms`), the run, the
command line and the tests all name tables from here. Where a table lives and how to read or
count it is `pipeline.storage.tables`.
"""

__all__ = [
    "BRONZE_EVENTS",
    "BRONZE_QUARANTINE",
    "CHECKPOINTS_DIR",
    "ENFORCED_TABLES",
    "EVENTS_DIR",
    "EVENTS_STREAM",
    "EVENT_LOG",
    "GOLD_DAILY_ACTIVE_USERS",
    "GOLD_DIM_DATE",
    "GOLD_DIM_DEVICE",
    "GOLD_DIM_PAGE",
    "GOLD_DIM_USER",
    "GOLD_DIM_USER_CHANGES",
    "GOLD_ENFORCED_TABLES",
    "GOLD_FACT_EVENTS",
    "GOLD_FUNNEL_DAILY",
    "GOLD_SESSIONS",
    "GOLD_TABLES",
    "PSEUDONYMIZED_TABLES",
    "SILVER_EVENTS",
    "SILVER_LATE_EVENTS",
    "SILVER_QUARANTINE",
    "SPARK_LOG",
    "TABLES",
    "USER_CHANGES_DIR",
    "USER_MERGE_WRITER",
    "USER_STREAM",
]

EVENTS_DIR = "events"
"""The landing folder of newline-delimited JSON events."""
USER_CHANGES_DIR = "user_changes"
"""The landing folder of the user-profile CDC feed."""
SPARK_LOG = "_logs/spark.log"
"""Where the output of a Spark session a command starts goes, under the warehouse."""
CHECKPOINTS_DIR = "_checkpoints"
"""The warehouse folder of the streaming checkpoints and the runner's own state."""

BRONZE_EVENTS = "bronze_events"
BRONZE_QUARANTINE = "bronze_quarantine"
SILVER_EVENTS = "silver_events"
SILVER_QUARANTINE = "silver_quarantine"
SILVER_LATE_EVENTS = "silver_late_events"
EVENT_LOG = "_event_log"
"""The pipeline event log (`pipeline.observe.event_log`): not in `TABLES`, since every run, even one
with nothing new, appends to it."""
GOLD_DIM_USER = "gold_dim_user"
GOLD_DIM_PAGE = "gold_dim_page"
GOLD_DIM_DEVICE = "gold_dim_device"
GOLD_DIM_DATE = "gold_dim_date"
GOLD_FACT_EVENTS = "gold_fact_events"
GOLD_DAILY_ACTIVE_USERS = "gold_daily_active_users"
GOLD_FUNNEL_DAILY = "gold_funnel_daily"
GOLD_SESSIONS = "gold_sessions"

GOLD_DIM_USER_CHANGES = f"{GOLD_DIM_USER}__changes"
"""The SCD engine's change log of `gold_dim_user` (`pipeline.storage.scd_merge.change_log_path`)."""
USER_MERGE_WRITER = f"clickstream:{GOLD_DIM_USER}"
"""The writer name of the SCD engine's batch markers in `gold_dim_user` and its change log."""

EVENTS_STREAM = "events"
USER_STREAM = GOLD_DIM_USER
"""The streaming queries: each one's checkpoint is `<warehouse>/_checkpoints/<stream>`, and
its name is the writer of its batch markers (`pipeline.storage.delta_tables.append_once`). `events`
takes each micro-batch of new landing event files through bronze, silver and gold;
`gold_dim_user` merges the user change files into the SCD2 dimension."""

GOLD_TABLES: tuple[str, ...] = (
    GOLD_DIM_USER,
    GOLD_DIM_PAGE,
    GOLD_DIM_DEVICE,
    GOLD_DIM_DATE,
    GOLD_FACT_EVENTS,
    GOLD_DAILY_ACTIVE_USERS,
    GOLD_FUNNEL_DAILY,
    GOLD_SESSIONS,
)
TABLES: tuple[str, ...] = (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    SILVER_EVENTS,
    SILVER_QUARANTINE,
    SILVER_LATE_EVENTS,
    *GOLD_TABLES,
)
"""Every table a run reports, in the order it reports them."""
PSEUDONYMIZED_TABLES: tuple[str, ...] = (
    SILVER_EVENTS,
    SILVER_QUARANTINE,
    SILVER_LATE_EVENTS,
    GOLD_DIM_USER_CHANGES,
    GOLD_DIM_USER,
    GOLD_FACT_EVENTS,
    GOLD_SESSIONS,
)
"""Tables holding keyed hashes of PII (`user_key`, `email_hash`, ...): what a key rotation
re-keys, silver and the change log first (gold is recomputed from them)."""
ENFORCED_TABLES: tuple[str, ...] = (BRONZE_EVENTS, SILVER_EVENTS, GOLD_DIM_USER, GOLD_FACT_EVENTS)
"""Tables whose writing stage can enforce expectations."""
GOLD_ENFORCED_TABLES: tuple[str, ...] = (GOLD_DIM_USER, GOLD_FACT_EVENTS)
"""Gold tables with rules: `warn` and `fail` only, since every silver event must reach
`gold_fact_events` and a dimension version cannot be dropped without breaking its history.
Their rules may name `gold_dim_user` as a table (a view of it is registered while they run)."""
