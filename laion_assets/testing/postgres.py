"""A real, throwaway PostgreSQL server on 127.0.0.1 for tests and benches.

`with postgres_server(tmp_dir) as pg:` runs `initdb` and `pg_ctl start` on a free port, creates a
database and yields `pg.env` (the `DAGSTER_PG_*` variables the shipped deploy configs read). The
binaries come from the distribution's package (`scripts/install_postgres.sh`). PostgreSQL refuses to
run as root, so under root the cluster belongs to the `postgres` system user (made by the package).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD, DB = "laion", "laion-test-password", "dagster"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(name: str) -> str:
    """`name` from PATH, else from Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise RuntimeError(f"PostgreSQL's `{name}` is not installed: run scripts/install_postgres.sh")
    return found


@dataclass(frozen=True)
class PostgresServer:
    port: int
    data_dir: Path

    @property
    def env(self) -> dict[str, str]:
        return {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USER": USER,
                "DAGSTER_PG_PASSWORD": PASSWORD, "DAGSTER_PG_DB": DB}

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DB}"


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextlib.contextmanager
def postgres_server(work_dir: Path | None = None) -> Iterator[PostgresServer]:
    """initdb + pg_ctl start on 127.0.0.1 (fsync off: a test cluster), stopped and removed on exit.

    The cluster lives in a fresh directory of the system temp dir (or `work_dir`): pytest's own temp
    dirs are private to root, where the `postgres` user could not reach them."""
    made = work_dir is None
    work_dir = Path(tempfile.mkdtemp(prefix="laion-pg-")) if made else Path(work_dir)
    data, sock = work_dir / "pgdata", work_dir / "pgsock"
    work_dir.mkdir(parents=True, exist_ok=True)
    sock.mkdir(exist_ok=True)
    pwfile = work_dir / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for p in (work_dir, sock, pwfile):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    port = free_port()
    subprocess.run(_as_owner([pg_bin("initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile),
                              "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True)
    opts = f"-h 127.0.0.1 -p {port} -k {sock} -c fsync=off -c synchronous_commit=off -c max_connections=200"
    subprocess.run(_as_owner([pg_bin("pg_ctl"), "-D", str(data), "-l", str(work_dir / "postgres.log"),
                              "-o", opts, "-w", "-t", "60", "start"]), check=True, capture_output=True)
    try:
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        subprocess.run([pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, DB],
                       check=True, capture_output=True, env=env)
        yield PostgresServer(port, data)
    finally:
        subprocess.run(_as_owner([pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True)
        if made:
            shutil.rmtree(work_dir, ignore_errors=True)


def deploy_instance_yaml(config_path: Path, pg: PostgresServer, *, s3_endpoint_url: str | None = None,
                         run_launcher: dict | None = None) -> str:
    """A shipped deploy config made runnable on this machine, changing only what needs a cluster:
    the Postgres port (the test server's free port, not 5432), the run launcher (ECS/K8s launch
    nothing here: Dagster's DefaultRunLauncher, or `run_launcher`), and the compute-log bucket's
    endpoint (moto's S3 on loopback) when `s3_endpoint_url` is given. Everything else (storage
    driver, coordinator, pools, retries) is the shipped file's."""
    import yaml

    config = yaml.safe_load(Path(config_path).read_text())
    config["storage"]["postgres"]["postgres_db"]["port"] = pg.port
    config["run_launcher"] = run_launcher or {"module": "dagster", "class": "DefaultRunLauncher"}
    if s3_endpoint_url and "compute_logs" in config:
        config["compute_logs"]["config"]["endpoint_url"] = s3_endpoint_url
    return yaml.safe_dump(config, sort_keys=False)
