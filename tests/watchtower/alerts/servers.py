"""Real Prometheus and Alertmanager (Debian binaries) for the end-to-end test: the sandbox's own
starters (watchtower/sandbox/servers.py), loopback only, free ports, temporary directories."""

from watchtower.sandbox.servers import HttpServer, start_alertmanager, start_prometheus

__all__ = ["HttpServer", "start_alertmanager", "start_prometheus"]
