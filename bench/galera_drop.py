"""What dropping a shadow copy's old table costs the service's writes on a Galera cluster.

    python bench/galera_drop.py [--rows 2000000] [--rounds 1]   # needs .ci/topology/mariadb.sh

A table shaped like ``audit_events`` (its seven secondary indexes) with ``--rows`` rows is made
on each node by itself (``wsrep_on`` off, so no 2M-row write set crosses the cluster), then
dropped two ways while the service's request-counter ``UPDATE`` runs on every node (one
connection per node, 100 statements/s): under TOI through node 1 (a plain ``DROP TABLE``), and
on each node by itself through ``llm_proxy_db.dialects.mysql.node_drop`` (what ``setup`` does
with a large old table).  Printed per way: the drop's wall time and the longest ``UPDATE`` on
each node.  A 100-row table under TOI is the baseline.  2M rows take about 8 minutes to build
on the 2-core machine (three nodes at once).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mariadb_data  # noqa: E402
import mysql_topology  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from llm_proxy_db.dialects.mysql import node_drop  # noqa: E402

DATABASE = "llmproxy_bench_drop"
TABLE = "_audit_events_old"
SHAPE = f"""CREATE TABLE `{TABLE}` (
  id VARCHAR(191) PRIMARY KEY, timestamp DATETIME(6) NOT NULL, action VARCHAR(255) NOT NULL,
  actor VARCHAR(255) NOT NULL, project_id VARCHAR(191), request_id VARCHAR(191), correlation_id VARCHAR(191),
  client_ip VARCHAR(45), method VARCHAR(10), path TEXT, user_agent TEXT, outcome VARCHAR(20) NOT NULL,
  INDEX (timestamp), INDEX (action), INDEX (project_id), INDEX (client_ip), INDEX (request_id),
  INDEX (outcome), INDEX (client_ip, action)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
FILL = f"""INSERT INTO `{TABLE}` SELECT CONCAT('e', LPAD(seq, 9, '0')), '2025-06-01 12:00:00' + INTERVAL seq SECOND,
  ELT(1 + seq % 4, 'token.create', 'token.use', 'project.update', 'token.revoke'), 'system',
  CONCAT('p', seq % 10000), UUID(), UUID(), CONCAT('10.0.', seq % 255, '.', seq % 250), 'POST',
  '/manage/tokens', 'curl/8.0 bench', 'success' FROM seq_{{first}}_to_{{last}}"""


def build_on_each_node(nodes: list[mariadb_data.Server], rows: int) -> float:
    """The table on every node, each filled by itself; seconds taken."""
    started = time.perf_counter()

    def fill(node: mariadb_data.Server) -> None:
        parts = [FILL.format(first=first, last=min(rows, first + 499_999)) for first in range(1, rows + 1, 500_000)]
        node.run("SET SESSION wsrep_on = OFF; " + SHAPE + ";\n" + ";\n".join(parts) + ";", DATABASE)

    threads = [threading.Thread(target=fill, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


class CounterProbe(threading.Thread):
    """The service's request-counter UPDATE on one node, 100 a second; the longest in a window."""

    def __init__(self, node: mariadb_data.Server) -> None:
        super().__init__(daemon=True)
        self.node, self.stop, self.timings = node, threading.Event(), []  # type: ignore[var-annotated]

    def run(self) -> None:
        connection = self.node.connect(DATABASE)
        number = 0
        try:
            while not self.stop.is_set():
                number += 1
                started = time.perf_counter()
                with connection.cursor() as cursor:
                    cursor.execute("UPDATE counters SET n = n + 1 WHERE id = %s", (1 + number % 1000,))
                self.timings.append(time.perf_counter() - started)
                time.sleep(0.01)
        finally:
            connection.close()


def timed(nodes: list[mariadb_data.Server], drop: Callable[[], None]) -> dict[str, object]:
    """``drop()`` with a probe on every node: its wall time and the longest UPDATE per node (ms)."""
    probes = [CounterProbe(node) for node in nodes]
    for probe in probes:
        probe.start()
    time.sleep(2)
    started = time.perf_counter()
    drop()
    took = time.perf_counter() - started
    time.sleep(2)
    for probe in probes:
        probe.stop.set()
        probe.join()
    return {"drop_s": round(took, 3), "longest_update_ms": [round(max(p.timings) * 1000) for p in probes]}


def drop_under_toi(nodes: list[mariadb_data.Server]) -> None:
    """The plain ``DROP TABLE`` through node 1."""
    nodes[0].run(f"DROP TABLE `{TABLE}`;", DATABASE)


def drop_node_by_node(nodes: list[mariadb_data.Server]) -> None:
    """What ``setup`` does with a large old table (``node_drop.drop_node_by_node``)."""
    engines = [sa.create_engine(node.url(DATABASE).replace("mysql://", "mysql+pymysql://"), poolclass=sa.pool.NullPool)
               for node in nodes]
    try:
        sessions = [engine.connect() for engine in engines]
        if not node_drop.drop_node_by_node(sessions[0], TABLE, sessions[1:]):
            raise RuntimeError("the node-by-node drop declined (too small, a node missing, or no SUPER)")
        for session in sessions:
            session.close()
    finally:
        for engine in engines:
            engine.dispose()


def main() -> int:
    """Build, drop both ways, print; exit 2 when the cluster is not there."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    urls, _, _ = mysql_topology.topology_urls()
    why = mysql_topology.unavailable(urls)
    if why is not None:
        print(f"galera_drop: Galera {why}", file=sys.stderr)
        return 2
    nodes = [mariadb_data.Server.from_url(url) for url in urls]
    nodes[0].run(f"DROP DATABASE IF EXISTS {DATABASE}; CREATE DATABASE {DATABASE};")
    nodes[0].run("CREATE TABLE counters (id INT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0);"
                 "INSERT INTO counters (id) SELECT seq FROM seq_1_to_1000;", DATABASE)
    try:
        baseline_node = nodes[0]
        baseline_node.run(SHAPE + "; " + FILL.format(first=1, last=100) + ";", DATABASE)
        print(f"100 rows, TOI: {timed(nodes, partial(drop_under_toi, nodes))}", flush=True)
        for _ in range(args.rounds):
            for name, drop in (("TOI", drop_under_toi), ("node by node", drop_node_by_node)):
                built = build_on_each_node(nodes, args.rows)
                print(f"{args.rows} rows (built in {built:.0f} s), {name}: {timed(nodes, partial(drop, nodes))}",
                      flush=True)
    finally:
        nodes[0].run(f"DROP DATABASE IF EXISTS {DATABASE};")
    return 0


if __name__ == "__main__":
    sys.exit(main())
