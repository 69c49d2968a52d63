"""Set-based writes for projections that process a page of events at a time.

A projection folds a page of events into rows in memory (it first reads the rows it needs,
with one query per table), then writes the result with a few statements: binary ``COPY``
for new rows, one ``UPDATE ... FROM`` for changed rows, one ``INSERT ... SELECT`` for
upserts and one ``DELETE ... USING`` for removals. The final state is the one the
per-event statements would have produced, so a read model does not depend on how the log
was cut into pages.

The rows of an ``UPDATE``/``INSERT``/``DELETE`` come from ``unnest()`` of array parameters
when they are few (one round trip: the live case), else from a temporary staging table
filled by binary ``COPY`` (catching up and rebuilding: adapting arrays element by element
costs ~13 us a row, binary COPY ~0.6 us). Array columns (``text[]``) only go through COPY.

Table and column names passed here are constants of the projection modules, never input.
Column types must be the exact types of the table (binary COPY sends typed values).

Every row written here goes through ``safe_rows``: text from engines cannot be refused, and
PostgreSQL refuses NUL in ``text`` (and psycopg cannot encode an unpaired surrogate), so
each such character of a ``text`` or ``text[]`` value becomes U+FFFD where it is written
(``warest.domain.text.safe``); the read model never stops on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from itertools import chain
from operator import itemgetter
from typing import Any, TypeVar

import psycopg

from warest.domain.text import safe

Cursor = psycopg.Cursor[Any]
Columns = Mapping[str, str]
"""Column name -> its SQL type."""
Page = Sequence[tuple[Any, int]]
"""Decoded events of one page with their positions (notification ids), in log order."""

STAGE_ABOVE = 64
"""Row sources with more rows than this go through a staging table."""


def _names(columns: Iterable[str]) -> str:
    return ", ".join(columns)


_SURROGATE = re.compile("[\ud800-\udfff]")


def safe_rows(columns: Columns, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
    """``rows`` with their ``text`` and ``text[]`` values made ``safe``: the same object when
    nothing needs it (the usual case, found with one scan of their joined text; about 0.05 us
    a value)."""
    texts = [i for i, t in enumerate(columns.values()) if t == "text"]
    arrays = [i for i, t in enumerate(columns.values()) if t == "text[]"]
    if not rows or not (texts or arrays):
        return rows
    values: list[Iterable[Any]] = []
    if texts:
        pick = itemgetter(*texts)
        values.append(chain.from_iterable(map(pick, rows)) if len(texts) > 1 else map(pick, rows))
    for i in arrays:
        values.append(chain.from_iterable(row[i] for row in rows if row[i]))
    try:
        joined = "".join(filter(None, chain.from_iterable(values)))  # None and "" left out
    except TypeError:  # not only strings: checked value by value
        joined = "\x00"
    if "\x00" not in joined and (joined.isascii() or _SURROGATE.search(joined) is None):
        return rows
    return [_safe_row(row, texts, arrays) for row in rows]


def _safe_row(row: Sequence[Any], texts: Sequence[int], arrays: Sequence[int]) -> list[Any]:
    made = list(row)
    for i in texts:
        if isinstance(made[i], str):
            made[i] = safe(made[i])
    for i in arrays:
        if made[i] is not None:
            made[i] = [safe(v) if isinstance(v, str) else v for v in made[i]]
    return made


def copy_rows(cur: Cursor, table: str, columns: Columns, rows: Sequence[Sequence[Any]]) -> None:
    """Plain inserts through binary ``COPY`` (a duplicate key raises, as ``INSERT`` would)."""
    with cur.copy(f"COPY {table} ({_names(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(columns.values()))
        for row in safe_rows(columns, rows):
            copy.write_row(row)


class Writes:
    """The statements that store one page, and the rows they use.

    The projection hands its rows over: a few go into a statement as arrays (one round
    trip: the live case), more are copied into a staging table at once (catching up).
    ``run()`` executes the statements, in the order they were made. ``deferred``: the
    caller runs them in a pipeline while it prepares the next page, so new rows are
    staged as well and their ``INSERT`` is one of the statements; otherwise they are
    copied into their table at once.
    """

    def __init__(self, cur: Cursor, *, deferred: bool = False) -> None:
        self.cur = cur
        self.deferred = deferred
        self._statements: list[Callable[[], Any]] = []
        self._planned = False

    def insert(self, table: str, columns: Columns, rows: Sequence[Sequence[Any]]) -> None:
        """Plain inserts of new rows (a duplicate key raises, as ``INSERT`` would)."""
        if not rows:
            return
        if not self.deferred:
            self._statements.append(partial(copy_rows, self.cur, table, columns, rows))
            return
        source = self._stage(table, columns, rows)
        names = _names(columns)
        self._execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {source}", None)

    def upsert(
        self, table: str, purpose: str, columns: Columns, rows: Sequence[Sequence[Any]], on_conflict: str
    ) -> None:
        """``INSERT ... SELECT <rows> <on_conflict>``; ``rows`` must not repeat a key."""
        if rows:
            source, params = self._source(purpose, columns, rows)
            names = _names(columns)
            self._execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {source} {on_conflict}", params)

    def update(
        self, table: str, purpose: str, keys: Columns, columns: Columns, rows: Sequence[Sequence[Any]]
    ) -> None:
        """Sets ``columns`` of the rows matching ``keys``; each row is its keys, then its columns."""
        if rows:
            source, params = self._source(purpose, {**keys, **columns}, rows, join=True)
            assignments = ", ".join(f"{c} = u.{c}" for c in columns)
            match = " AND ".join(f"t.{k} = u.{k}" for k in keys)
            self._execute(f"UPDATE {table} AS t SET {assignments} FROM {source} WHERE {match}", params)

    def delete(self, table: str, purpose: str, keys: Columns, rows: Sequence[Sequence[Any]]) -> None:
        """Deletes the rows matching ``keys``."""
        if rows:
            source, params = self._source(purpose, keys, rows, join=True)
            match = " AND ".join(f"t.{k} = u.{k}" for k in keys)
            self._execute(f"DELETE FROM {table} AS t USING {source} WHERE {match}", params)

    def run(self) -> None:
        statements, self._statements = self._statements, []
        for statement in statements:
            statement()

    def _execute(self, statement: str, params: Any) -> None:
        self._statements.append(partial(self.cur.execute, statement, params))

    def _source(
        self, purpose: str, columns: Columns, rows: Sequence[Sequence[Any]], *, join: bool = False
    ) -> tuple[str, Any]:
        """A ``FROM`` item (aliased ``u``) with ``rows``, and the parameters it needs.

        ``join``: the rows are matched against the table by key. Index lookups are then
        planned, not a hash join over a scan of the whole read model (a staging table has
        no statistics, and a page is small next to the table it changes).
        """
        if len(rows) <= STAGE_ABOVE:
            arrays = ", ".join(f"%s::{t}[]" for t in columns.values())
            params = [list(column) for column in zip(*safe_rows(columns, rows), strict=True)]
            return f"unnest({arrays}) AS u({_names(columns)})", params
        if join and not self._planned:
            self.cur.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
            self._planned = True
        return self._stage(purpose, columns, rows), None

    def _stage(self, purpose: str, columns: Columns, rows: Sequence[Sequence[Any]]) -> str:
        """Copies ``rows`` into the staging table of ``purpose`` (created once per connection).

        Its rows go at commit (``ON COMMIT DELETE ROWS`` truncates the file in place; the
        ``TRUNCATE`` command would create a new one each time); the ``DELETE`` before the
        ``COPY`` only matters for a second use in one transaction.
        """
        stage = f"page_{purpose}"
        definition = ", ".join(f"{c} {t}" for c, t in columns.items())
        self.cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({definition}) ON COMMIT DELETE ROWS;"
            f" DELETE FROM pg_temp.{stage}"
        )
        copy_rows(self.cur, f"pg_temp.{stage}", columns, rows)
        return f"pg_temp.{stage} AS u"


class Folded:
    """A page applied in memory: what a projection's ``fold(page, cur, previous)`` returns."""

    def store(self, out: Writes) -> None:
        """Hands the page's rows and statements to ``out``."""
        raise NotImplementedError

    def news(self) -> bool:
        """Whether those who follow the read model (``ReadModels.follow``) have anything to
        look at after this page; waits for its position end either way."""
        return True

    def write(self, cur: Cursor, *, deferred: bool = False) -> Callable[[], None]:
        """Stages the page's rows now; the result executes its statements (see ``Writes``)."""
        out = Writes(cur, deferred=deferred)
        self.store(out)
        return out.run


class PagedProjection:
    """A projection that folds pages of events (``fold``) and writes them set-based; one
    event on its own is a page of one."""

    def fold(self, page: Page, cur: Cursor, previous: Any = None) -> Folded:
        raise NotImplementedError

    def process(self, event: Any, cur: Cursor, position: int) -> None:
        self.fold([(event, position)], cur).write(cur)()


S = TypeVar("S", bound=Folded)


def fold_page(state_class: Callable[[Cursor, Page, Any], S], handler: Any, page: Page, cur: Cursor,
              previous: Any) -> S:  # fmt: skip
    """``state_class(cur, page, previous)`` with ``handler`` applied to each event; ``previous``
    is passed on only when it is a state of the same class (the page before, still in the
    tables' place)."""
    state = state_class(cur, page, previous if isinstance(previous, state_class) else None)  # type: ignore[arg-type]
    apply_all(handler, page, state)
    return state


def apply_all(handler: Any, page: Page, state: Any) -> None:
    """``handler(event, state, position)`` for each event of ``page``; ``handler`` is a
    ``functools.singledispatch`` function, resolved once per event class (its own cache
    is a weak dictionary, looked up in Python code)."""
    resolved: dict[type, Callable[[Any, Any, int], None]] = {}
    for event, position in page:
        cls = type(event)
        function = resolved.get(cls)
        if function is None:
            function = resolved[cls] = handler.dispatch(cls)
        function(event, state, position)


def select_rows(
    cur: Cursor, table: str, key: str, key_type: str, columns: Sequence[str], keys: Iterable[Any]
) -> list[tuple[Any, ...]]:
    """``key`` and ``columns`` of the rows whose ``key`` is one of ``keys`` (binary results:
    no timestamps parsed from text)."""
    wanted = list(keys)
    if not wanted:
        return []
    with cur.connection.cursor(binary=True) as binary:
        return binary.execute(
            f"SELECT {key}, {_names(columns)} FROM {table} WHERE {key} = ANY(%s::{key_type}[])", (wanted,)
        ).fetchall()
