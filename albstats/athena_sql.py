"""Athena SQL rewriting: the ``day`` partition bounds every read of ``alb_logs`` gets.

Why a module of its own: the engine (:mod:`albstats.engines.athena`) and ``albstats sql show`` must
add exactly the same bounds, so both call these functions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from albstats.errors import UsageError

#: Placeholder names of the bounds in the rewritten SQL, bound like every other value.
DAY_FROM, DAY_TO = "albstats_day_from", "albstats_day_to"


def parse_one(sql: str) -> Any:
    """The one Trino statement in ``sql`` as a sqlglot tree, or a one-line :class:`UsageError` (a parse or
    tokenizer error, such as an unclosed quote, or more than one statement)."""
    import sqlglot

    try:
        stmts = [s for s in sqlglot.parse(sql, read="trino") if s is not None]
    except sqlglot.errors.SqlglotError as e:
        raise UsageError(f"SQL does not parse as Athena (Trino) SQL: {str(e).splitlines()[0]}") from None
    if len(stmts) != 1:
        raise UsageError(f"expected one SQL statement, got {len(stmts)}")
    return stmts[0]


def day_range(since: datetime | None, until: datetime | None, now: datetime | None = None) -> tuple[str, str]:
    """The ``day`` partition values (``yyyy/MM/dd``) a window needs: since's day to the day after until's."""
    if since is None:
        raise ValueError("since is needed")
    end = until or (now or datetime.now(UTC))
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date() + timedelta(days=1)
    return since.astimezone(UTC).strftime("%Y/%m/%d"), last.strftime("%Y/%m/%d")


def references_day(sql: str) -> bool:
    """Does the SQL filter on the ``day`` partition itself?"""
    from sqlglot import exp

    tree = parse_one(sql)
    return any(c.name.lower() == "day" for c in tree.find_all(exp.Column))


def rewrite(
    sql: str,
    database: str | None,
    table: str,
    *,
    day_predicate: bool,
    days: tuple[str, str] | None = None,
    pretty: bool = False,
) -> str:
    """Point every ``alb_logs`` at ``"database"."table"``, each one wrapped with the ``day`` predicate.

    The predicate's bounds are the placeholders ``:albstats_day_from``/``:albstats_day_to``, bound
    like every other value, or, given ``days`` (from :func:`day_range`), those two literals (what
    ``albstats sql show`` prints for the Athena console). ``database=None`` keeps the table name
    unqualified. A CTE named ``alb_logs`` and tables in other databases are left alone.
    """
    from sqlglot import exp

    tree = parse_one(sql)
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    target = exp.table_(table, db=database, quoted=True)
    low: exp.Expression
    high: exp.Expression
    if days is not None:
        low, high = (exp.Literal.string(d) for d in days)
    else:
        low, high = exp.Placeholder(this=DAY_FROM), exp.Placeholder(this=DAY_TO)

    def repl(node: exp.Expression) -> exp.Expression:
        if (
            isinstance(node, exp.Table)
            and node.name.lower() == "alb_logs"
            and not node.args.get("db")
            and "alb_logs" not in ctes
        ):
            alias = node.alias or "alb_logs"
            if not day_predicate:
                aliased = target.copy()
                aliased.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
                return aliased
            between = exp.Between(this=exp.column("day"), low=low.copy(), high=high.copy())
            sub = exp.select("*").from_(target.copy()).where(between)
            return exp.Subquery(this=sub, alias=exp.TableAlias(this=exp.to_identifier(alias)))
        return node

    return tree.transform(repl).sql(
        "trino", comments=False, pretty=pretty, normalize_functions="lower" if pretty else None
    )


def console_day_bounds(sql: str, since: datetime, until: datetime | None, table: str = "alb_logs") -> str:
    """Console SQL (values already literals) with the same ``day`` bounds the engine adds, as literals.

    Why: pasted into the Athena console without them, a query scans (and bills) every day folder.
    The same :func:`rewrite` and :func:`day_range` as the engine, so the two cannot disagree.
    """
    lines = sql.splitlines()
    n = 0
    while n < len(lines) and (lines[n].startswith("--") or not lines[n].strip()):
        n += 1
    header = "".join(line + "\n" for line in lines[:n])  # the query's own header comment, as written
    return header + rewrite(sql, None, table, day_predicate=True, days=day_range(since, until), pretty=True) + "\n"
