"""Bulk inserts for the cold start: 100k lines and their first sightings in one poll.

SQLAlchemy's executemany path builds and type-processes a parameter dict per row, which
is ~70 % of a cold poll at 100k lines (bench/RESULTS.md). Here the INSERT is compiled
once for the dialect, each column's own bind processor is applied to plain tuples, and
processed values are memoised (a cold poll stamps every row with the same few
timestamps), then the rows go to the database in one batch: COPY on PostgreSQL, the
driver's executemany on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert


def insert_rows(
    connection: Connection, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """INSERT ``rows`` (tuples in ``columns`` order) into ``table`` as one executemany."""
    dialect = connection.dialect
    compiled = insert(table).values({c: bindparam(c) for c in columns}).compile(dialect=dialect)
    processors: list[tuple[int, Callable[[Any], Any]]] = [
        (i, p) for i, c in enumerate(columns)
        if (p := table.c[c].type._cached_bind_processor(dialect)) is not None
    ]
    memo: dict[tuple[int, Any], Any] = {}
    converted: list[list[Any]] = []
    for row in rows:
        values = list(row)
        for index, processor in processors:
            value = values[index]
            key = (index, tuple(value) if type(value) is list else value)
            try:
                values[index] = memo[key]
            except KeyError:
                values[index] = memo[key] = processor(value)
            except TypeError:  # unhashable: nothing to share
                values[index] = processor(value)
        converted.append(values)
    if not converted:
        return
    if dialect.name == "postgresql":
        # COPY is PostgreSQL's bulk path: one stream instead of a statement per row.
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        names = ", ".join(dialect.identifier_preparer.quote(c) for c in columns)
        with cursor.copy(f"COPY {dialect.identifier_preparer.format_table(table)} "
                         f"({names}) FROM STDIN") as copy:
            for row in converted:
                copy.write_row(row)
        return
    if compiled.positional:
        order = [columns.index(name) for name in compiled.positiontup or ()]
        params: list[Any] = [tuple(row[i] for i in order) for row in converted]
    else:
        params = [dict(zip(columns, row, strict=True)) for row in converted]
    connection.exec_driver_sql(compiled.string, params)
