"""The MTLS probe: the RMX's own TLS handshake with the Front End, then a SIP OPTIONS."""
