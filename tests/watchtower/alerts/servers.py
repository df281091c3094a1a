"""Real Prometheus and Alertmanager (Debian binaries) for the end-to-end test: loopback only,
free ports, temporary configuration and data directories, bounded start-up waits."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml

from watchtower.sandbox.servers import LOOPBACK, Server, ServerUnavailable, free_port


@dataclass
class HttpServer(Server):
    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def get_json(self, path: str) -> Any:
        response = urllib3.request("GET", f"{self.url}{path}", timeout=5, retries=False)
        return response.json()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""


def _spawn(name: str, argv: list[str], workdir: Path) -> HttpServer:
    binary = shutil.which(argv[0])
    if binary is None:
        shutil.rmtree(workdir, ignore_errors=True)
        raise ServerUnavailable(
            f"{argv[0]} not found: apt-get install prometheus prometheus-alertmanager"
        )
    port = int(next(a for a in argv if a.startswith("--web.listen-address=")).rsplit(":", 1)[1])
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([binary, *argv[1:]], stdout=log, stderr=subprocess.STDOUT)
    # stop() ends the process, then removes its configuration, data and log.
    server = HttpServer(name=name, port=port, process=process, workdir=workdir, log_path=log_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_text = server.log()
            server.stop()
            raise ServerUnavailable(f"{name} exited with status {process.returncode}: {log_text}")
        try:
            if (
                urllib3.request("GET", f"{server.url}/-/ready", timeout=0.5, retries=False).status
                == 200
            ):
                return server
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise ServerUnavailable(f"{name} was not ready after 20 s")


def start_alertmanager(
    *,
    webhook_url: str,
    token: str,
    repeat_interval: str = "1h",
    cluster_port: int | None = None,
    peers: tuple[int, ...] = (),
) -> HttpServer:
    """One route to the webhook with the bearer token from a file; a notification a second.

    With `cluster_port`, it gossips on that loopback port with the Alertmanagers on `peers`
    (an HA pair: each sends, the later one after its peer timeout, unless the notification log
    the first gossiped says it was sent)."""
    workdir = Path(tempfile.mkdtemp(prefix="watchtower-alertmanager-"))
    token_file = workdir / "webhook-token"
    token_file.write_text(token)
    os.chmod(token_file, 0o600)
    config = {
        "route": {
            "receiver": "watchtower",
            "group_by": ["..."],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": "watchtower",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials_file": str(token_file)}
                        },
                    }
                ],
            }
        ],
    }
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    if cluster_port is None:
        cluster = ["--cluster.listen-address="]  # no gossip port on every interface
    else:
        cluster = [
            f"--cluster.listen-address={LOOPBACK}:{cluster_port}",
            f"--cluster.advertise-address={LOOPBACK}:{cluster_port}",
            *(f"--cluster.peer={LOOPBACK}:{p}" for p in peers),
            "--cluster.peer-timeout=1s",
            "--cluster.gossip-interval=100ms",
            "--cluster.pushpull-interval=1s",
            "--cluster.settle-timeout=2s",
        ]
    return _spawn(
        "alertmanager",
        [
            "prometheus-alertmanager",
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            *cluster,
        ],
        workdir,
    )


def start_prometheus(
    *,
    scrape: str,
    alertmanager: str | list[str],
    rules: dict[str, Any],
    port: int | None = None,
    resend_delay: str = "1m",
) -> HttpServer:
    """Scrape `scrape` (host:port) and evaluate `rules` every second; alerts to `alertmanager`
    (every one of them, as Prometheus sends to each member of an HA cluster)."""
    targets = [alertmanager] if isinstance(alertmanager, str) else alertmanager
    workdir = Path(tempfile.mkdtemp(prefix="watchtower-prometheus-"))
    (workdir / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(workdir / "rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": targets}]}]},
        "scrape_configs": [{"job_name": "watchtower", "static_configs": [{"targets": [scrape]}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = port or free_port()
    return _spawn(
        "prometheus",
        [
            "prometheus",
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            f"--rules.alert.resend-delay={resend_delay}",
        ],
        workdir,
    )
