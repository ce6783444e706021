"""The one definition of the leaderboard schema (DuckDB, long format).

Long format means a new task, dataset or metric is a new row, never a migration. Every
statement here is idempotent (``IF NOT EXISTS`` / ``OR REPLACE``), so opening a database
for writing applies the schema.
"""

from __future__ import annotations

SCHEMA_VERSION = "2"

RUN_COLUMNS: tuple[str, ...] = (
    "run_id", "name", "created_at", "variant", "params", "macs", "recipe_name", "recipe_hash",
    "balance", "config", "world_size", "steps", "wall_time_s", "code_version", "origin", "citation",
    "setting", "sweep_id", "seed", "notes", "venue", "verified", "checkpoint", "eval",
    "run_dir", "skipped_shards", "replaced_samples",
)

STATEMENTS: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS meta (
        key VARCHAR PRIMARY KEY,
        value VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        created_at TIMESTAMP,
        variant VARCHAR,
        params BIGINT,
        macs BIGINT,
        recipe_name VARCHAR,
        recipe_hash VARCHAR,
        balance JSON,            -- {"spec": ..., "weights": {task: w}}
        config JSON,             -- resolved training config
        world_size INTEGER,
        steps BIGINT,
        wall_time_s DOUBLE,
        code_version VARCHAR,
        origin VARCHAR NOT NULL CHECK (origin IN ('local', 'published')),
        citation VARCHAR,
        setting VARCHAR,         -- aio3 | aio5 | cdd11 | demo | <recipe name>
        sweep_id VARCHAR,
        seed BIGINT,
        notes VARCHAR,
        venue VARCHAR,
        verified BOOLEAN,        -- published rows: checked against the cited source
        checkpoint VARCHAR,      -- local rows: the weights that were evaluated
        eval JSON,               -- local rows: the evaluation signature + shard dir
        run_dir VARCHAR,         -- local rows: the run folder (absolute), the record of the run
        skipped_shards INTEGER,  -- local rows: training shards skipped as unusable
        replaced_samples BIGINT  -- local rows: training samples replaced because of them
    )""",
    # Files made by an older anyir gain the newer columns (NULL for their old rows).
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS run_dir VARCHAR",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS skipped_shards INTEGER",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS replaced_samples BIGINT",
    """CREATE TABLE IF NOT EXISTS results (
        run_id VARCHAR NOT NULL,
        task VARCHAR NOT NULL,
        dataset VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        value DOUBLE NOT NULL,
        n INTEGER,
        protocol VARCHAR,
        PRIMARY KEY (run_id, task, dataset, metric)
    )""",
    """CREATE TABLE IF NOT EXISTS image_results (
        run_id VARCHAR NOT NULL,
        task VARCHAR NOT NULL,
        dataset VARCHAR NOT NULL,
        key VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        value DOUBLE NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS balance_trajectory (
        run_id VARCHAR NOT NULL,
        step BIGINT NOT NULL,
        task VARCHAR NOT NULL,
        weight DOUBLE NOT NULL
    )""",
    # Paper-style cells: one row per run and (task, dataset) column with PSNR and SSIM side by side.
    # (DuckDB cannot keep a PIVOT whose columns come from the data inside a view, so the last
    # step, columns -> wide, happens in anyir.leaderboard.queries.)
    """CREATE OR REPLACE VIEW paper_cells AS
        SELECT r.run_id, r.name, r.origin, r.setting, r.variant, r.params, r.citation, r.verified,
               x.task, x.dataset, x.task || '/' || x.dataset AS column_name,
               max(x.value) FILTER (WHERE x.metric = 'psnr') AS psnr,
               max(x.value) FILTER (WHERE x.metric = 'ssim') AS ssim,
               max(x.protocol) FILTER (WHERE x.metric = 'ssim') AS ssim_protocol
        FROM runs r JOIN results x USING (run_id)
        GROUP BY ALL""",
)

# Rows of one run, in delete order (children first) so a re-log replaces them atomically.
RUN_TABLES: tuple[str, ...] = ("image_results", "results", "balance_trajectory", "runs")

INSERT_RUN = f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
INSERT_WEIGHT = "INSERT INTO balance_trajectory VALUES (?, ?, ?, ?)"
DELETE_RUN = {table: f"DELETE FROM {table} WHERE run_id = ?" for table in RUN_TABLES}
GET_META = "SELECT value FROM meta WHERE key = ?"
SET_META = "INSERT OR REPLACE INTO meta VALUES (?, ?)"
