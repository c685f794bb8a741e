"""One home per database dialect.

:mod:`llm_proxy_db.dialects.base` declares what a dialect provides (the :class:`Dialect`
protocol); :mod:`llm_proxy_db.dialects.mysql` is MySQL 8 and MariaDB.  SQLite and PostgreSQL
still live in the modules that branch on ``Settings.is_sqlite``; they move behind the same
protocol in a later step (issue 10), after which adding a dialect means one new module here
plus the revisions' dialect branches.
"""
