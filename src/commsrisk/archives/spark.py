"""The same archive job on Spark, for archives beyond one machine: Parquet in, the same rows out.

Each Spark task runs `mapInPandas` over its part of the archive; the Python worker builds the
Scorer once (the first batch it sees) and keeps it, as Spark reuses its Python workers. Rows go
through the same functions as `score-archive` (`inputs.tabular_item`, `rows.scored_columns`),
so a message gets the same key, the same columns and the same decisions on both; scores agree
to float rounding (the classifier pads its batches differently).

The model is named by location (a folder every executor can read, or a `models:/name@alias`
URI of a registry every executor can reach); settings come from each executor's environment
(`COMMSRISK_*`), as for every other entry point.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from commsrisk.archives.inputs import InputOptions, tabular_item
from commsrisk.archives.rows import SCHEMA, content_key, message_columns, scored_columns
from commsrisk.schema import Explain

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from commsrisk.scoring import Scorer

SOURCE_COLUMN = "_commsrisk_source"
POSITION_COLUMN = "_commsrisk_position"
REASON = "reject_reason"
WORKER_CACHE = 50_000
"""Scored columns kept per Python worker, by content key, so repeated messages are scored once."""

_worker: dict[str, Any] = {}
"""The Scorer and the cache of this Python worker, built on its first batch."""


def spark_schema(include_text: bool = False) -> Any:
    """The results' Spark schema: the Parquet results' columns, and the reason for rejected rows."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema

    fields = [field.with_nullable(True) for field in SCHEMA]  # a rejected row has no key nor scores
    fields += [pa.field(REASON, pa.string()), *([pa.field("text", pa.string())] if include_text else [])]
    return from_arrow_schema(pa.schema(fields))


def score_dataframe(
    frame: DataFrame,
    *,
    classifier_location: str,
    reading: InputOptions | None = None,
    explain: Explain = "signals",
    include_text: bool = False,
    torch_threads: int = 1,
) -> DataFrame:
    """Score a DataFrame of message records (with `SOURCE_COLUMN` and `POSITION_COLUMN`).

    One row out per row in: scored rows have `reject_reason` null, rejected ones only their
    key, source, position and reason.
    """
    options = reading or InputOptions()

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        scorer, cache = _scorer_of_worker(classifier_location, torch_threads)
        for batch in batches:
            yield _score_batch(scorer, cache, batch, options, explain, include_text)

    return frame.mapInPandas(score_batches, schema=spark_schema(include_text))


def read_archive_parquet(spark: SparkSession, paths: list[str], partitions: int | None = None) -> DataFrame:
    """Parquet files of messages as a DataFrame, each row with its file name and 1-based row number.

    The file name and row number are those `score-archive` reports (Spark's hidden `_metadata`
    columns); the rows are spread over `partitions` tasks (default: the cluster's parallelism).
    """
    from pyspark.sql import functions as F

    frame = spark.read.parquet(*paths)
    frame = frame.select(
        "*",
        F.col("_metadata.file_name").alias(SOURCE_COLUMN),
        (F.col("_metadata.row_index") + 1).alias(POSITION_COLUMN),
    )
    return frame.repartition(partitions or spark.sparkContext.defaultParallelism)


def write_results(scored: DataFrame, out: str) -> None:
    """Results under `out`/results partitioned by sent date, rejected records under `out`/rejected."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
    results = scored.filter(F.col(REASON).isNull()).drop(REASON)
    results = results.withColumn(
        "sent_date", F.coalesce(F.date_format(F.col("sent_at"), "yyyy-MM-dd"), F.lit("unknown"))
    )
    results.write.mode("overwrite").partitionBy("sent_date").parquet(f"{out}/results")
    rejected = scored.filter(F.col(REASON).isNotNull()).select("source", "position", F.col(REASON).alias("reason"))
    rejected.write.mode("overwrite").parquet(f"{out}/rejected")
    scored.unpersist()


def _scorer_of_worker(classifier_location: str, torch_threads: int) -> tuple[Scorer, OrderedDict[str, Any]]:
    """This worker's Scorer and cache, built once (Spark reuses Python workers between tasks)."""
    key = f"{classifier_location}|{torch_threads}"
    if _worker.get("key") != key:
        from commsrisk.scoring import build_scorer
        from commsrisk.settings import Settings

        settings = Settings.load()
        settings = settings.model_copy(
            update={"model": settings.model.model_copy(update={"torch_threads": torch_threads})}
        )
        _worker.update(key=key, scorer=build_scorer(settings, classifier_location=classifier_location))
        _worker["cache"] = OrderedDict()
    return _worker["scorer"], _worker["cache"]


def _score_batch(
    scorer: Scorer,
    cache: OrderedDict[str, Any],
    batch: pd.DataFrame,
    options: InputOptions,
    explain: Explain,
    include_text: bool,
) -> pd.DataFrame:
    sources = batch.pop(SOURCE_COLUMN).tolist()
    positions = batch.pop(POSITION_COLUMN).tolist()
    records = batch.astype(object).where(batch.notna(), None).to_dict(orient="records")
    items = [
        tabular_item(Path(source).name, int(position), _plain(record), None, options)
        for source, position, record in zip(sources, positions, records, strict=True)
    ]
    keys = [content_key(item.message) if item.message is not None else "" for item in items]
    new = {key: item.message for item, key in zip(items, keys, strict=True) if item.message and key not in cache}
    results = scorer.score_batch(list(new.values()), explain=explain) if new else []
    for key, result in zip(new, results, strict=True):
        cache[key] = scored_columns(result, key)
        if len(cache) > WORKER_CACHE:
            cache.popitem(last=False)
    columns = [*SCHEMA.names, REASON, *(["text"] if include_text else [])]
    rows = []
    for item, key in zip(items, keys, strict=True):
        if item.message is None:  # every column present, so that pandas keeps None (not NaN) for lists
            empty = dict.fromkeys(columns)
            rows.append(
                {**empty, "message_id": "", "source": item.source, "position": item.position, REASON: item.reason}
            )
            continue
        shared = new_or_cached(cache, key)
        row = {**message_columns(item.message, item.source, item.position), **shared, REASON: None}
        if include_text:
            row["text"] = item.message.text
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def new_or_cached(cache: OrderedDict[str, Any], key: str) -> dict[str, Any]:
    """The scored columns of `key`, marked as recently used."""
    cache.move_to_end(key)
    return cache[key]


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """A record of Python values: pandas timestamps as datetimes, numpy scalars and arrays as Python ones."""
    plain: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
        elif hasattr(value, "tolist"):
            value = value.tolist()
        plain[name] = value
    return plain
