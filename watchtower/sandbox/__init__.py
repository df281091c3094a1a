"""The local stack: the servers the demo and the tests start on loopback."""
