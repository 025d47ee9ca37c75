"""Test support: real peers on loopback, generated PKI, process hygiene."""
