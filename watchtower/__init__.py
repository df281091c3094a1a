"""Watchtower: probes, checks, runbooks and the cutover sign-off for the image service."""
