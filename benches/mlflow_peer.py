"""MLflow, the peer of `cargo bench --bench history` (part e).

Usage: python mlflow_peer.py DIR RUNS

Logs a few thousand real runs with MLflow's own client into a sqlite store
in DIR (3 metrics, 2 params, 2 tags each, as the issue measured), times
that (runs per second), multiplies them inside sqlite to RUNS, then times
the first page of 100 of `search_runs` without a filter and with a metric,
a tag and a param filter (median of 5). Prints one line per figure as
`name<TAB>value`, which the Rust bench prints beside labbench's own.

Needs `pip install mlflow-skinny sqlalchemy alembic` in the Python that
runs it (the bench finds it through LABBENCH_BENCH_MLFLOW_PYTHON).
"""

import logging
import os
import sqlite3
import statistics
import sys
import time

logging.disable(logging.WARNING)

import mlflow  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402

REAL_RUNS = 2000


def log_real_runs(client, experiment_id):
    """Logs REAL_RUNS runs as a training script would; returns runs/s."""
    start = time.perf_counter()
    for i in range(REAL_RUNS):
        run = client.create_run(experiment_id)
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[
                Metric("auc", 0.5 + (i * 7919 % 1000) / 2000, now, 10),
                Metric("loss", (i * 104729 % 1000) / 1000, now, 10),
                Metric("acc", (i * 1299709 % 1000) / 1000, now, 10),
            ],
            params=[Param("lr", str((i % 20) / 10000)), Param("batch", str(32 << (i % 4)))],
            tags=[
                RunTag("kind", "baseline" if i % 10 == 0 else "sweep"),
                RunTag("project", f"p{i % 20}"),
            ],
        )
        client.set_terminated(run.info.run_id)
    return REAL_RUNS / (time.perf_counter() - start)


def multiply(db, target):
    """Copies the logged runs inside sqlite until there are `target`."""
    con = sqlite3.connect(db)
    tables = [
        name
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
        if any(col[1] == "run_uuid" for col in con.execute(f"PRAGMA table_info({name})"))
    ]
    copies = max(target // REAL_RUNS, 1)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    for copy in range(1, copies):
        for table in tables:
            columns = [col[1] for col in con.execute(f"PRAGMA table_info({table})")]
            chosen = []
            for col in columns:
                if col == "run_uuid":
                    chosen.append(f"run_uuid || '{copy:07d}'")
                elif table == "runs" and col in ("start_time", "end_time"):
                    chosen.append(f"{col} - {copy} * 86400")
                elif table == "runs" and col == "name":
                    chosen.append(f"name || '-{copy}'")
                else:
                    chosen.append(col)
            con.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"SELECT {', '.join(chosen)} FROM {table} WHERE length(run_uuid) = 32"
            )
        if copy % 50 == 0:
            con.commit()
    con.commit()
    (runs,) = con.execute("SELECT count(*) FROM runs").fetchone()
    con.execute("ANALYZE")
    con.close()
    return runs


def first_page_ms(client, experiment_id, filter_string):
    times = []
    rows = 0
    for _ in range(5):
        start = time.perf_counter()
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=100)
        times.append((time.perf_counter() - start) * 1000)
        rows = len(page)
    return statistics.median(times), rows


def main():
    directory, target = sys.argv[1], int(sys.argv[2])
    db = os.path.join(directory, "mlflow.db")
    if os.path.exists(db):
        os.remove(db)
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    client = mlflow.MlflowClient()
    experiment_id = client.create_experiment("bench")
    print(f"mlflow version\t{mlflow.__version__}", flush=True)
    print(f"runs logged per second\t{log_real_runs(client, experiment_id):.0f}", flush=True)
    print(f"runs\t{multiply(db, target)}", flush=True)
    for name, filter_string in [
        ("no filter", ""),
        ("metric auc > 0.95", "metrics.auc > 0.95"),
        ("tag kind = baseline", "tags.kind = 'baseline'"),
        ("param lr = 0.0001", "params.lr = '0.0001'"),
    ]:
        ms, rows = first_page_ms(client, experiment_id, filter_string)
        print(f"first page, {name}\t{ms:.1f} ms ({rows} rows)", flush=True)
    print(f"store bytes per run\t{os.path.getsize(db) / target:.0f}", flush=True)


if __name__ == "__main__":
    main()
